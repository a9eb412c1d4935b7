"""The job seccomp filter: in a child process under it, every refused call fails and ordinary
Python (imports, files, fork/exec, threads) still works."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest
from tinychat_rlm.sandbox import seccomp

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="seccomp is Linux only")

# Runs in a fresh interpreter: a filter cannot be taken off again.
CHILD = textwrap.dedent(
    """
    import ctypes, errno, json, os, socket, subprocess, sys, tempfile, threading
    from tinychat_rlm.sandbox import seccomp

    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long

    def call(number, *args):
        args = [ctypes.c_long(a) for a in args] or [ctypes.c_long(-1)] * 6
        ctypes.set_errno(0)
        result = libc.syscall(ctypes.c_long(number), *args)
        if result == 0 and os.getpid() != PID:  # a clone that went through: the copy leaves
            os._exit(0)
        return result, ctypes.get_errno()

    PID = os.getpid()
    CLONE_NEWUSER, CLONE_NEWNET, CLONE_NEWNS, SIGCHLD = 0x10000000, 0x40000000, 0x20000, 17
    machine = seccomp._machine()
    numbers = seccomp._REFUSED[machine]
    out = {}
    if sys.argv[1] == "baseline":
        out["unshare_user"] = call(numbers["unshare"], CLONE_NEWUSER)
        print(json.dumps(out))
        sys.exit(0)

    gate, seen = threading.Event(), {}
    def early_thread():  # started before the filter: TSYNC must cover it too
        gate.wait()
        try:
            socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            seen["socket"] = "allowed"
        except OSError as exc:
            seen["socket"] = exc.errno
    thread = threading.Thread(target=early_thread)
    thread.start()

    seccomp.apply_to_current_process()
    gate.set()
    thread.join()
    out["early_thread_socket"] = seen["socket"]

    out["refused"] = {name: call(number) for name, number in numbers.items()}
    out["unshare_user"] = call(numbers["unshare"], CLONE_NEWUSER)
    clone = seccomp._CLONE[machine]
    out["clone_newuser"] = call(clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)
    out["clone_newnet"] = call(clone, CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0)
    out["clone_newns"] = call(clone, CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0)
    out["clone3"] = call(seccomp._CLONE3, 0, 0)
    families = {"inet": socket.AF_INET, "inet6": socket.AF_INET6, "unix": socket.AF_UNIX,
                "netlink": socket.AF_NETLINK, "packet": socket.AF_PACKET}
    out["sockets"] = {}
    for name, family in families.items():
        try:
            socket.socket(family, socket.SOCK_DGRAM if name != "unix" else socket.SOCK_STREAM)
            out["sockets"][name] = "allowed"
        except OSError as exc:
            out["sockets"][name] = exc.errno

    # ordinary Python
    import decimal, hashlib, sqlite3, collections  # noqa: F401
    a, b = socket.socketpair()
    a.sendall(b"ping")
    out["socketpair"] = b.recv(4).decode()
    with tempfile.TemporaryDirectory() as scratch:
        path = os.path.join(scratch, "f.txt")
        with open(path, "w") as f:
            f.write("hello")
        with open(path) as f:
            out["file"] = f.read()
    out["subprocess"] = subprocess.run(
        [sys.executable, "-c", "print(6 * 7)"], capture_output=True, text=True, check=True
    ).stdout.strip()
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    out["fork_status"] = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    results = []
    workers = [threading.Thread(target=lambda i=i: results.append(i * i)) for i in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    out["threads"] = sorted(results)
    print(json.dumps(out))
    """
)


def run_child(mode: str) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_filter_is_a_whole_number_of_bpf_instructions():
    program = seccomp.job_filter()
    assert len(program) % 8 == 0
    assert 8 < len(program) // 8 < 256


def test_every_refused_call_fails_and_ordinary_python_still_works():
    out = run_child("filtered")
    for name, (result, code) in out["refused"].items():
        assert (result, code) == (-1, 1), f"{name} was not refused with EPERM"
    assert out["unshare_user"] == [-1, 1]
    for flag in ("clone_newuser", "clone_newnet", "clone_newns"):
        assert out[flag] == [-1, 1], flag
    assert out["clone3"] == [-1, 38]  # ENOSYS: libc falls back to clone
    assert out["sockets"] == dict.fromkeys(["inet", "inet6", "unix", "netlink", "packet"], 1)
    assert out["early_thread_socket"] == 1
    assert out["socketpair"] == "ping"
    assert out["file"] == "hello"
    assert out["subprocess"] == "42"
    assert out["fork_status"] == 7
    assert out["threads"] == [0, 1, 4, 9]


def test_the_refusal_is_the_filters_doing():
    """Without the filter this machine lets a child make a user namespace, so the EPERM above
    is the filter's, not the platform's."""
    result, code = run_child("baseline")["unshare_user"]
    if result != 0:
        pytest.skip(f"this platform refuses user namespaces by itself (errno {code})")
    assert result == 0


@pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap not installed")
def test_the_raw_program_works_as_bwrap_seccomp(tmp_path):
    program = tmp_path / "filter.bpf"
    program.write_bytes(seccomp.job_filter())
    code = "import socket\ntry:\n socket.socket()\nexcept PermissionError:\n print('refused')"
    with open(program, "rb") as f:
        done = subprocess.run(
            [
                "bwrap",
                "--ro-bind",
                "/",
                "/",
                "--dev",
                "/dev",
                "--seccomp",
                str(f.fileno()),
                sys.executable,
                "-c",
                code,
            ],
            pass_fds=(f.fileno(),),
            capture_output=True,
            text=True,
            timeout=60,
        )
    if done.returncode != 0 and "bwrap:" in done.stderr:
        pytest.skip(f"bubblewrap cannot run here: {done.stderr.strip()}")
    assert done.stdout.strip() == "refused", done.stderr
    assert os.path.exists(program)


@pytest.mark.parametrize(
    ("machine", "header"),
    [
        ("x86_64", "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"),
        ("aarch64", "/usr/include/asm-generic/unistd.h"),
    ],
)
def test_syscall_numbers_match_the_kernel_headers(machine, header):
    if not os.path.exists(header):
        pytest.skip(f"{header} not installed")
    with open(header) as f:
        text = f.read()
    expected = dict(seccomp._REFUSED[machine], clone=seccomp._CLONE[machine], clone3=seccomp._CLONE3)
    for name, number in expected.items():
        assert re.search(rf"#define __NR(3264)?_{name}\s+{number}\b", text), name
