"""The sandbox pool's runner server (RLM_SANDBOX=pool): PID 1 of a `sandbox` container,
one RLM job at a time.

Standard library only: copied into the pool image next to runner.py and seccomp.py and run
as `python3 -I /sandbox/pool_runner.py`. It refuses to start unless it is PID 1 (it kills
every other process it can see after each job).

    rlm-service ──TCP──▶ this server: holds no secret, non-dumpable, never reads the connection
                           └─ the job: a forked child in its own session and process group,
                              oom_score_adj 1000, the seccomp job filter (no socket(), no
                              namespaces, no ptrace, …), speaking runner.py's protocol

On each new connection:
- a peer that is not one of SANDBOX_ALLOWED_PEERS (DNS names or addresses, resolved for each
  connection; `*` leaves the choice to the network, as Kubernetes' NetworkPolicy does) is
  closed at once, before a byte is read or written;
- while a job runs, the server writes `{"type": "busy"}` and closes;
- otherwise it writes `{"type": "idle"}` and the connection becomes the job's: the child
  speaks runner.py's JSON-lines protocol on it (the host sends `init` first).
The job ends when its child exits, when rlm-service closes the connection, or after
SANDBOX_MAX_JOB_SECONDS. The server then kills every other process in the container, empties
the scratch space (/tmp, /dev/shm, /dev/mqueue and System V IPC objects) and is idle again.
A job child killed by the kernel (memory, CPU) is reported to the host as a `fatal` line.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import json
import os
import resource
import select
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

DEFAULT_PORT = 8010
SCRATCH_DIRS = ("/tmp", "/dev/shm", "/dev/mqueue")
JOB_DIR = "/tmp"
PR_SET_DUMPABLE = 4
IPC_RMID = 0
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}
JOB_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": JOB_DIR, "LANG": "C.UTF-8", "TMPDIR": JOB_DIR}

_libc = ctypes.CDLL(None, use_errno=True)


def log(event: str, **fields: object) -> None:
    """One JSON line on the container's log (stderr); never anything a job sent."""
    line = json.dumps({"event": event, **fields})
    with contextlib.suppress(OSError):
        os.write(2, line.encode() + b"\n")


def load_sibling(name: str) -> ModuleType:
    """runner.py / seccomp.py from this file's folder (`python -I` puts no folder on sys.path)."""
    path = Path(__file__).with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"tinychat_sandbox_{name}", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def set_dumpable(value: int) -> None:
    if _libc.prctl(PR_SET_DUMPABLE, value, 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"prctl(PR_SET_DUMPABLE, {value}) failed: {os.strerror(errno)}")


# -- who may connect -------------------------------------------------------------------------


class AllowedPeers:
    """The peers jobs may come from, resolved through DNS for every connection (a new
    rlm-service replica is allowed at once; an address that changed hands is not)."""

    def __init__(self, spec: str) -> None:
        self.names = [name.strip() for name in spec.split(",") if name.strip()]
        self.anyone = self.names == ["*"]

    def addresses(self, family: int) -> set[str]:
        found: set[str] = set()
        for name in self.names:
            try:
                # One family only: an AAAA query nobody answers would cost each connection.
                infos = socket.getaddrinfo(name, None, family=family, type=socket.SOCK_STREAM)
            except OSError:
                continue  # not started yet, or gone: its connections are refused
            found |= {normalised(info[4][0]) for info in infos if isinstance(info[4][0], str)}
        return found

    def allows(self, address: str) -> bool:
        if self.anyone:
            return True
        address = normalised(address)
        return address in self.addresses(socket.AF_INET6 if ":" in address else socket.AF_INET)


def normalised(address: str) -> str:
    return address.removeprefix("::ffff:")


# -- the job -------------------------------------------------------------------------------


class Job:
    def __init__(self, pid: int, connection: socket.socket, peer: str) -> None:
        self.pid = pid
        self.connection = connection
        self.peer = peer
        self.started = time.monotonic()
        self.exit_status: int | None = None


def become_job(connection: socket.socket, runner: ModuleType, seccomp: ModuleType) -> None:
    """In the forked child: drop everything of the server, then run the REPL. Never returns."""
    code = 70
    try:
        os.setsid()  # its own session and process group
        signal.set_wakeup_fd(-1)
        for number in (*STOP_SIGNALS, signal.SIGCHLD):
            signal.signal(number, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        fd = connection.fileno()
        os.dup2(fd, 0)
        os.dup2(fd, 1)
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 2)
        os.closerange(3, resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        # /proc/self/oom_score_adj is writable only while the process is dumpable.
        set_dumpable(1)
        with open("/proc/self/oom_score_adj", "w") as adj:
            adj.write("1000")  # the kernel's first choice when the container runs out of memory
        set_dumpable(0)
        os.chdir(JOB_DIR)
        os.umask(0o077)
        os.environ.clear()
        os.environ.update(JOB_ENV)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        cpu = int(os.environ.get("SANDBOX_JOB_CPU_SECONDS", "0") or 0)
        if cpu:
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        seccomp.apply_to_current_process()  # last: nothing after this needs a refused call
        code = runner.main()
    except BaseException:
        code = 71
    finally:
        os._exit(code or 0)


# -- the server ------------------------------------------------------------------------------


class Server:
    def __init__(self, listener: socket.socket, peers: AllowedPeers, *, max_job_seconds: float) -> None:
        self.listener = listener
        self.peers = peers
        self.max_job_seconds = max_job_seconds
        self.runner = load_sibling("runner")
        self.seccomp = load_seccomp()
        self.job: Job | None = None
        self.jobs_done = 0
        self.wake_reader, wake_writer = os.pipe()
        os.set_blocking(self.wake_reader, False)
        os.set_blocking(wake_writer, False)
        signal.set_wakeup_fd(wake_writer)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        # A handler, so the kernel delivers them to PID 1 at all; blocked, so that only a
        # signal from outside the container (sender pid 0 here) stops the server: a job
        # may send SIGTERM to PID 1, to no effect.
        for number in STOP_SIGNALS:
            signal.signal(number, lambda *_: None)
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)

    def serve_forever(self) -> None:
        poller = select.poll()
        poller.register(self.listener, select.POLLIN)
        poller.register(self.wake_reader, select.POLLIN)
        while not self.stop_requested():
            for fd, _ in poller.poll(1000):
                if fd == self.wake_reader:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self.wake_reader, 512)
                elif fd == self.listener.fileno():
                    self.accept(poller)
                elif self.job and fd == self.job.connection.fileno():
                    self.end_job(poller, "the host closed the connection")
            self.reap()
            if self.job and self.job.exit_status is not None:
                self.end_job(poller, describe_exit(self.job.exit_status))
            elif self.job and time.monotonic() - self.job.started > self.max_job_seconds:
                self.end_job(poller, f"the job ran longer than {self.max_job_seconds:g} s")
        if self.job:
            self.end_job(poller, "the runner is stopping")
        log("stopped", jobs=self.jobs_done)

    def stop_requested(self) -> bool:
        while (info := signal.sigtimedwait(STOP_SIGNALS, 0)) is not None:
            if info.si_pid == 0:  # sent from outside this PID namespace: docker, the kubelet
                return True
            log("ignored_signal", signal=info.si_signo, sender=info.si_pid)
        return False

    def accept(self, poller: select.poll) -> None:
        try:
            connection, address = self.listener.accept()
        except OSError:
            return
        peer = normalised(address[0])
        if not self.peers.allows(peer):
            connection.close()  # before a byte is read or written
            log("refused_peer", peer=peer)
            return
        if self.job is not None:
            with contextlib.suppress(OSError):
                connection.settimeout(1.0)
                connection.sendall(b'{"type": "busy"}\n')
            connection.close()
            return
        try:
            tune(connection)
            connection.sendall(b'{"type": "idle"}\n')
        except OSError:
            connection.close()
            return
        pid = os.fork()
        if pid == 0:
            become_job(connection, self.runner, self.seccomp)
        self.job = Job(pid, connection, peer)
        # Only the end of the host's side is watched: the job's bytes are never read here.
        poller.register(connection, select.POLLRDHUP)

    def reap(self) -> None:
        """Collect every exited child (orphans of the job are the server's children too)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if self.job and pid == self.job.pid:
                self.job.exit_status = status

    def end_job(self, poller: select.poll, reason: str) -> None:
        job = self.job
        assert job is not None
        began = time.monotonic()
        if job.exit_status is not None and os.WIFSIGNALED(job.exit_status):
            # The kernel ended it (out of memory, CPU time): tell the host why.
            fatal = {"type": "fatal", "error": reason}
            with contextlib.suppress(OSError):
                job.connection.settimeout(1.0)
                job.connection.sendall(json.dumps(fatal).encode() + b"\n")
        with contextlib.suppress(OSError, ValueError):
            poller.unregister(job.connection)
        with contextlib.suppress(OSError):
            job.connection.shutdown(socket.SHUT_RDWR)
        job.connection.close()
        left = kill_everything_else()
        wipe_scratch()
        self.job = None
        self.jobs_done += 1
        log(
            "job_done",
            reason=reason,
            seconds=round(began - job.started, 3),
            cleanup_ms=round((time.monotonic() - began) * 1000, 2),
            processes_left=left,
        )


def describe_exit(status: int) -> str:
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        name = signal.Signals(number).name if number in signal.Signals.__members__.values() else str(number)
        if number == signal.SIGKILL:
            return "the job was killed (SIGKILL): it went over the sandbox's memory or another limit"
        if number == signal.SIGXCPU:
            return "the job used up its CPU time limit"
        return f"the job was killed by {name}"
    return f"the job ended (exit code {os.WEXITSTATUS(status)})"


def tune(connection: socket.socket) -> None:
    connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    # A host that vanished without closing (a lost node) frees the runner within a minute.
    connection.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (("TCP_KEEPIDLE", 20), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, option):
            connection.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)


# -- clean-up between jobs ---------------------------------------------------------------------


def other_processes() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit() and name != "1"]


def kill_everything_else(within: float = 5.0) -> int:
    """SIGKILL every process in the container but this one, until none is left; returns how
    many were still there when time ran out (0 normally)."""
    deadline = time.monotonic() + within
    while True:
        with contextlib.suppress(ProcessLookupError):
            os.kill(-1, signal.SIGKILL)  # from PID 1: everyone in the namespace but itself
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        left = other_processes()
        if not left or time.monotonic() > deadline:
            return len(left)
        time.sleep(0.0005)


def wipe_scratch() -> None:
    for directory in SCRATCH_DIRS:
        if not os.path.isdir(directory):
            continue
        for entry in os.scandir(directory):
            remove(entry.path)
    remove_ipc_objects()


def remove(path: str) -> None:
    def unlock_and_retry(function, failed: str, _exc) -> None:  # type: ignore[no-untyped-def]
        # A job may have taken its own permissions away (chmod 000): the owner can restore them.
        with contextlib.suppress(OSError):
            os.chmod(os.path.dirname(failed), 0o700)
            os.chmod(failed, 0o700)
            function(failed)

    try:
        if os.path.isdir(path) and not os.path.islink(path):
            os.chmod(path, 0o700)
            shutil.rmtree(path, onerror=unlock_and_retry)
        else:
            os.unlink(path)
    except OSError as exc:
        log("wipe_failed", path=path, error=exc.strerror)


def remove_ipc_objects() -> None:
    """System V shared memory, message queues and semaphores outlive their processes."""
    removers: dict[str, Callable[[int], object]] = {
        "shm": lambda ident: _libc.shmctl(ident, IPC_RMID, None),
        "msg": lambda ident: _libc.msgctl(ident, IPC_RMID, None),
        "sem": lambda ident: _libc.semctl(ident, 0, IPC_RMID),
    }
    for kind, remover in removers.items():
        try:
            lines = Path(f"/proc/sysvipc/{kind}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 1 and fields[1].isdigit():
                remover(int(fields[1]))


# -- start -----------------------------------------------------------------------------------


def load_seccomp() -> ModuleType:
    """The job filter (seccomp.py), installed once in a throw-away child to prove the kernel
    takes it. Without it the server does not start: fail closed."""
    module = load_sibling("seccomp")
    pid = os.fork()
    if pid == 0:
        try:
            module.apply_to_current_process()
        except BaseException:
            os._exit(1)
        try:
            socket.socket()  # must be refused now
        except PermissionError:
            os._exit(0)
        os._exit(2)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise OSError("the seccomp job filter could not be installed (or did not refuse socket())")
    return module


def is_listening(port: int) -> bool:
    """The health check: a LISTEN socket on `port`, read from /proc (no connection is made,
    so a check never takes a job slot)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    return True
    return False


def listen(host: str, port: int) -> socket.socket:
    """IPv4 and IPv6 where the container has both (an IPv6 cluster), else IPv4."""
    if host:
        return socket.create_server((host, port), backlog=64)
    if socket.has_dualstack_ipv6():
        with contextlib.suppress(OSError):
            return socket.create_server(("::", port), family=socket.AF_INET6, backlog=64, dualstack_ipv6=True)
    return socket.create_server(("0.0.0.0", port), backlog=64)


def main(argv: list[str]) -> int:
    port = int(os.environ.get("SANDBOX_PORT", DEFAULT_PORT))
    if argv[1:] == ["--check"]:
        return 0 if is_listening(port) else 1
    if os.getpid() != 1:
        print(
            "pool_runner: must be PID 1 of its own PID namespace (run it as a container's command)",
            file=sys.stderr,
        )
        return 2
    if os.geteuid() == 0:
        print("pool_runner: refuses to run as root; run the container as a non-root user", file=sys.stderr)
        return 2
    peers = AllowedPeers(os.environ.get("SANDBOX_ALLOWED_PEERS", ""))
    if not peers.names:
        print(
            "pool_runner: SANDBOX_ALLOWED_PEERS is not set: name the hosts jobs may come from "
            "(e.g. rlm-service), or * where a network policy allows only them",
            file=sys.stderr,
        )
        return 2
    set_dumpable(0)  # no job can read this process's memory or open its descriptors
    try:
        max_job_seconds = float(os.environ.get("SANDBOX_MAX_JOB_SECONDS", "1800"))
        listener = listen(os.environ.get("SANDBOX_HOST", ""), port)
        server = Server(listener, peers, max_job_seconds=max_job_seconds)
    except Exception as exc:
        print(f"pool_runner: cannot start: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    kill_everything_else()
    wipe_scratch()
    log("listening", port=port, allowed_peers=peers.names)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
