"""A seccomp-BPF syscall filter for sandboxed job code, written out by hand (no libseccomp).

job_filter() -> bytes            the raw BPF program (struct sock_filter[]), e.g. for
                                 `bwrap --seccomp FD`
apply_to_current_process()       sets no_new_privs and installs the filter on every thread of
                                 this process; raises OSError when the kernel refuses

The filter refuses, with EPERM, whatever would let code leave or widen its sandbox: new
namespaces (unshare, setns, clone with any CLONE_NEW* flag), mounts and root changes (the old
and the new mount API, pivot_root, chroot), looking into other processes (ptrace,
process_vm_readv/writev), kernel attack surface a REPL never needs (bpf, the key ring,
io_uring, perf_event_open, userfaultfd, kexec, module loading, open_by_handle_at) and socket()
for every address family: the sandbox talks only over the pipes it was given (socketpair stays
allowed: it reaches nothing). clone3 answers ENOSYS, because its flags live in memory a filter
cannot read; libc then falls back to clone, whose flags the filter does check. A syscall made
through another ABI than the process's own (i386 via int 0x80, x32) kills the process: its
numbers would mean different calls.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
import sys

__all__ = ["apply_to_current_process", "job_filter"]

# linux/audit.h
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_X32_SYSCALL_BIT = 0x40000000

# The refused calls: name, x86_64 number (asm/unistd_64.h), aarch64 (asm-generic/unistd.h).
_REFUSED_TABLE = (
    ("socket", 41, 198),
    ("ptrace", 101, 117),
    ("pivot_root", 155, 41),
    ("chroot", 161, 51),
    ("mount", 165, 40),
    ("umount2", 166, 39),
    ("init_module", 175, 105),
    ("delete_module", 176, 106),
    ("kexec_load", 246, 104),
    ("add_key", 248, 217),
    ("request_key", 249, 218),
    ("keyctl", 250, 219),
    ("unshare", 272, 97),
    ("perf_event_open", 298, 241),
    ("open_by_handle_at", 304, 265),
    ("setns", 308, 268),
    ("process_vm_readv", 310, 270),
    ("process_vm_writev", 311, 271),
    ("finit_module", 313, 273),
    ("kexec_file_load", 320, 294),
    ("bpf", 321, 280),
    ("userfaultfd", 323, 282),
    ("io_uring_setup", 425, 425),
    ("io_uring_enter", 426, 426),
    ("io_uring_register", 427, 427),
    ("open_tree", 428, 428),
    ("move_mount", 429, 429),
    ("fsopen", 430, 430),
    ("fsconfig", 431, 431),
    ("fsmount", 432, 432),
    ("fspick", 433, 433),
    ("mount_setattr", 442, 442),
)
_REFUSED: dict[str, dict[str, int]] = {
    "x86_64": {name: number for name, number, _ in _REFUSED_TABLE},
    "aarch64": {name: number for name, _, number in _REFUSED_TABLE},
}
_CLONE = {"x86_64": 56, "aarch64": 220}
_CLONE3 = 435
_SECCOMP_SYSCALL = {"x86_64": 317, "aarch64": 277}

# linux/sched.h: every flag that makes a new namespace (CLONE_NEWTIME shares its bit with the
# exit signal in clone's flags and exists only for clone3 and unshare, both refused whole).
_CLONE_NEW_FLAGS = (
    0x00020000  # CLONE_NEWNS
    | 0x02000000  # CLONE_NEWCGROUP
    | 0x04000000  # CLONE_NEWUTS
    | 0x08000000  # CLONE_NEWIPC
    | 0x10000000  # CLONE_NEWUSER
    | 0x20000000  # CLONE_NEWPID
    | 0x40000000  # CLONE_NEWNET
)

# linux/filter.h and linux/seccomp.h
_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_JSET_K = 0x45  # BPF_JMP | BPF_JSET | BPF_K
_RET_K = 0x06  # BPF_RET | BPF_K
_RET_KILL_PROCESS = 0x80000000
_RET_ERRNO = 0x00050000
_RET_ALLOW = 0x7FFF0000
# struct seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6]
_OFFSET_NR = 0
_OFFSET_ARCH = 4
_OFFSET_ARG0_LOW = 16 if sys.byteorder == "little" else 20

_PR_SET_NO_NEW_PRIVS = 38
_SECCOMP_SET_MODE_FILTER = 1
_SECCOMP_FILTER_FLAG_TSYNC = 1


def _machine() -> str:
    machine = platform.machine().lower()
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    if sys.platform != "linux" or machine not in _AUDIT_ARCH:
        raise OSError(errno.ENOTSUP, f"no seccomp filter for {sys.platform}/{machine}")
    return machine


class _Program:
    """BPF instructions with jumps to named labels, resolved when assembled (jump offsets
    are relative and at most 255, which this short program never comes near)."""

    def __init__(self) -> None:
        self._code: list[tuple[int, str | int, str | int, int]] = []
        self._labels: dict[str, int] = {}

    def label(self, name: str) -> None:
        self._labels[name] = len(self._code)

    def load(self, offset: int) -> None:
        self._code.append((_LD_W_ABS, 0, 0, offset))

    def jump(self, op: int, k: int, if_true: str | int = 0, if_false: str | int = 0) -> None:
        self._code.append((op, if_true, if_false, k))

    def ret(self, value: int) -> None:
        self._code.append((_RET_K, 0, 0, value))

    def assemble(self) -> bytes:
        out = bytearray()
        for pc, (op, jt, jf, k) in enumerate(self._code):
            out += struct.pack("=HBBI", op, self._offset(pc, jt), self._offset(pc, jf), k)
        return bytes(out)

    def _offset(self, pc: int, target: str | int) -> int:
        if isinstance(target, int):
            return target
        return self._labels[target] - pc - 1


def job_filter() -> bytes:
    """The filter for this machine's architecture, as the kernel's struct sock_filter array."""
    machine = _machine()
    prog = _Program()
    prog.load(_OFFSET_ARCH)
    prog.jump(_JEQ_K, _AUDIT_ARCH[machine], if_false="kill")
    prog.load(_OFFSET_NR)
    if machine == "x86_64":
        prog.jump(_JGE_K, _X32_SYSCALL_BIT, if_true="kill")
    prog.jump(_JEQ_K, _CLONE3, if_true="enosys")
    prog.jump(_JEQ_K, _CLONE[machine], if_true="clone")
    for number in sorted(_REFUSED[machine].values()):
        prog.jump(_JEQ_K, number, if_true="eperm")
    prog.ret(_RET_ALLOW)
    prog.label("clone")
    prog.load(_OFFSET_ARG0_LOW)
    prog.jump(_JSET_K, _CLONE_NEW_FLAGS, if_true="eperm")
    prog.ret(_RET_ALLOW)
    prog.label("eperm")
    prog.ret(_RET_ERRNO | errno.EPERM)
    prog.label("enosys")
    prog.ret(_RET_ERRNO | errno.ENOSYS)
    prog.label("kill")
    prog.ret(_RET_KILL_PROCESS)
    return prog.assemble()


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def apply_to_current_process() -> None:
    """no_new_privs, then the filter on every thread of this process (TSYNC). Irreversible."""
    _install(job_filter())


def _install(program: bytes) -> None:
    """Install any BPF program (tests use it to make a platform that refuses namespaces)."""
    machine = _machine()
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"prctl(PR_SET_NO_NEW_PRIVS): {os.strerror(code)}")
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    libc.syscall.restype = ctypes.c_long
    result = libc.syscall(
        ctypes.c_long(_SECCOMP_SYSCALL[machine]),
        ctypes.c_uint(_SECCOMP_SET_MODE_FILTER),
        ctypes.c_uint(_SECCOMP_FILTER_FLAG_TSYNC),
        ctypes.byref(fprog),
    )
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, f"seccomp(SECCOMP_SET_MODE_FILTER): {os.strerror(code)}")
    if result > 0:  # TSYNC names the thread that could not take the filter
        raise OSError(errno.EBUSY, f"seccomp: thread {result} could not take the filter")
