"""The sandbox runner: one RLM job's persistent Python REPL, driven over JSON lines.

Standard library only: this file is copied into the sandbox image and run as
`python3 -I runner.py`, by the process backend as well as inside a container.

Protocol (one JSON object per line; the host speaks first):

    host → runner   {"type": "init", "context": str | [str], "output_limit": 20000, "limits": {…},
                     "names": [str]}                     (names: optional, one per document)
                    or, for a large context, "context_bytes": n | [n, …] instead of "context":
                    the text(s) follow the line as raw UTF-8, n bytes each, in order
    runner → host   {"type": "ready"}
    host → runner   {"type": "exec", "id": 1, "code": "…"}
    runner → host   {"type": "llm_query", "id": 7, "prompts": ["…"]}        (zero or more, in a cell;
                                                            ids 1, 2, 3, … in order; at most
                                                            QUERIES_IN_FLIGHT not yet answered)
                    {…, "rlm": {"context": null | str | [str], "names": [str] | null}}
                                                            (rlm_query: one prompt, a sub-RLM)
    host → runner   {"type": "llm_reply", "id": 7, "answers": ["…"]}        or {"…", "error": "…"}
                                                            (as each is answered: in any order)
    runner → host   {"type": "result", "id": 1, "stdout", "stderr", "final", "variables",
                     "error", "truncated_chars"}
    runner → host   {"type": "fatal", "error": "…"}                          (then the runner exits)

Two processes, so that cell code cannot reach the protocol channel at all:

    host ══ protocol (stdin/stdout, or the pool's socket) ══ runner (this process)
                                                               │  forked once, after init
                                                               └─ the cell process: the namespace,
                                                                  every cell of the job

- The runner holds the channel. It is non-dumpable (the same uid cannot open its memory or its
  /proc/<pid>/fd), and the job's seccomp filter (installed before the fork) refuses ptrace.
- The cell process keeps five descriptors and no other: 0 (/dev/null), 1 and 2 (pipes the
  runner reads as the cell's stdout and stderr, capped head and tail here, whatever wrote to
  them: print, os.write, a subprocess), and a private pipe pair. Every other descriptor,
  the channel's included, is closed right after the fork.
- On the private pipes the cell process can only ask, one JSON line each:
  `{"ask": [prompt, …], "n": k}` (llm_query, llm_query_batched), `{"ask": [prompt], "n": k,
  "rlm": {…}}` (rlm_query) and `{"done": {"final", "variables", "error"}, "cell": c}` (cell c
  ended). The runner sends `{"exec": code, "cell": c}` and `{"reply": k, "answers": […]}` or
  `{"reply": k, "error": "…"}`; a message with a number not awaited is skipped on either
  side, so a cell that writes into its own pipes can confuse nothing but the messages it
  wrote. A large llm_query_batched is several requests, two of them out at once (the
  runner reads no further request while two wait for the host). The runner never blocks
  writing to the cell process: what it sends waits in a buffer until the pipe takes it,
  so a cell busy writing a request cannot stall the replies. The runner checks every
  request, drops a line that is not one, gives every llm_query the id it chooses, and writes
  every protocol line itself. A request line over the line limit, or the cell process
  dying, ends the job with a `fatal` line that says why.

The host trusts no line all the same: it caps every field and checks every id.
"""

from __future__ import annotations

import builtins
import codecs
import contextlib
import ctypes
import io
import json
import linecache
import os
import resource
import select
import signal
import sys
import traceback

# Not typing.TYPE_CHECKING: importing typing costs a sandbox's start more than all the
# runner's other imports together, and nothing here needs it at run time (mypy reads it).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any, BinaryIO

    Message = dict[str, Any]

DEFAULT_OUTPUT_LIMIT = 20_000
DEFAULT_MAX_LINE_BYTES = 8 * 1024 * 1024
MAX_VARIABLES_LISTED = 200
# llm_query_batched sends a large batch in groups of about this many bytes of JSON (a fan
# out over 60 MB is not one 60 MB line for the host to hold), and keeps this many groups
# with the host at once, so that the model always has the next group's prompts to work on.
BATCH_MESSAGE_BYTES = 4_000_000
QUERIES_IN_FLIGHT = 2
# What the runner's llm_query line adds around a request's prompts: its type and id.
PROTOCOL_LINE_SLACK = 64
# This file's name as its code objects know it (a path, or "<string>" when run with -c).
RUNNER_FILE = (lambda: None).__code__.co_filename
HELPER_NAMES = frozenset({"llm_query", "llm_query_batched", "rlm_query", "FINAL", "FINAL_VAR"})
PIPE_CHUNK = 1 << 16
CHANNEL_CHUNK = 1 << 20
PR_SET_DUMPABLE = 4
# Started as root (the docker backend: only CAP_SETUID and CAP_SETGID), the runner and the
# cell process part into two unprivileged uids, so the cell cannot open the runner's
# /proc/<pid>/fd or signal it even where "non-dumpable" is not enforced (gVisor).
RUNNER_UID = 65533
CELL_UID = 65534
# How often the runner looks for an exited cell process while a cell runs (a grandchild
# that holds the request pipe open would hide the end of the pipe).
REAP_INTERVAL_MS = 250

_LIMITS = {
    "address_space": resource.RLIMIT_AS,
    "cpu_seconds": resource.RLIMIT_CPU,
    "file_size": resource.RLIMIT_FSIZE,
    "open_files": resource.RLIMIT_NOFILE,
    "processes": resource.RLIMIT_NPROC,
}


class HostGone(BaseException):
    """The host closed the protocol channel; the runner has nothing left to do.

    A BaseException so that a cell's `except Exception` cannot swallow it."""


class CellGone(Exception):
    """The cell process ended, or broke the private protocol: the job cannot go on."""


class ProtocolChannel:
    """The real channel to the host. Only the runner process ever holds it.

    Read through a buffer of its own rather than a BufferedReader, so that the runner can
    poll the descriptor and know whether a whole line is already waiting in the buffer."""

    def __init__(self, reader: int, writer: BinaryIO) -> None:
        self.reader = reader
        self.writer = writer
        self.buffer = bytearray()

    def send(self, message: Message) -> None:
        self.writer.write(json.dumps(message, ensure_ascii=False).encode("utf-8") + b"\n")
        self.writer.flush()

    def receive(self) -> Message:
        message = json.loads(self.readline())
        if not isinstance(message, dict):
            raise ValueError("protocol message is not an object")
        return message

    def has_line(self) -> bool:
        return b"\n" in self.buffer

    def readline(self) -> bytes:
        searched = 0
        while (end := self.buffer.find(b"\n", searched)) < 0:
            searched = len(self.buffer)
            if not self.fill():
                raise HostGone
        line = bytes(self.buffer[: end + 1])
        del self.buffer[: end + 1]
        return line

    def read_exactly(self, size: int) -> bytearray:
        """`size` raw bytes (a document sent after the init line), read straight into place."""
        data = bytearray(size)
        view = memoryview(data)
        have = min(size, len(self.buffer))
        view[:have] = self.buffer[:have]
        del self.buffer[:have]
        while have < size:
            got = os.readv(self.reader, [view[have:]])
            if not got:
                raise HostGone
            have += got
        view.release()
        return data

    def fill(self) -> bool:
        data = os.read(self.reader, CHANNEL_CHUNK)
        self.buffer += data
        return bool(data)

    def close(self) -> None:
        # Nothing is buffered (send flushes every line), so closing writes nothing.
        with contextlib.suppress(OSError, ValueError):
            os.close(self.reader)
        with contextlib.suppress(OSError, ValueError):
            self.writer.close()


class CappedText(io.TextIOBase):
    """A text stream that keeps the head and the tail of what is written, up to `limit`
    characters in all, and counts what it drops (a cell may print 100 MB)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.head_limit = limit - limit // 4
        self.tail_limit = limit // 4
        self.head: list[str] = []
        self.head_size = 0
        self.tail = ""
        self.total = 0

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        written = len(text)
        self.total += written
        room = self.head_limit - self.head_size
        if room > 0:
            self.head.append(text[:room])
            self.head_size += min(room, len(text))
            text = text[room:]
        if text and self.tail_limit:
            self.tail = (self.tail + text[-self.tail_limit :])[-self.tail_limit :]
        return written

    @property
    def cut(self) -> int:
        return max(0, self.total - self.head_size - len(self.tail))

    def getvalue(self) -> str:
        head = "".join(self.head)
        if not self.cut:
            return head + self.tail
        return f"{head}\n[… {self.cut:,} characters cut …]\n{self.tail}"


class Document(str):
    """One attached document: its text, as a str, with the file's name in `.name`."""

    name: str

    def __new__(cls, text: str | bytes | bytearray, name: str) -> Document:
        # From bytes, decoded straight into the Document: no second copy of a large text.
        if isinstance(text, bytes | bytearray):
            document = super().__new__(cls, text, "utf-8", "replace")
        else:
            document = super().__new__(cls, text)
        document.name = name
        return document

    def __repr__(self) -> str:
        return f"<Document {self.name!r}: {len(self):,} characters>"


def as_documents(context: list[str], names: object) -> list[str]:
    if (
        not isinstance(names, list)
        or len(names) != len(context)
        or not all(isinstance(n, str) for n in names)
    ):
        raise ValueError("names must be a list of strings, one per document")
    # Each text is replaced by its Document as we go, so two copies of one text at most.
    for index, name in enumerate(names):
        context[index] = Document(context[index], name)
    return context


class Runner:
    """The trusted half: holds the channel, starts the cell process, and turns its requests
    into protocol lines."""

    def __init__(self, channel: ProtocolChannel) -> None:
        self.channel = channel
        self.output_limit = DEFAULT_OUTPUT_LIMIT
        self.max_line_bytes = DEFAULT_MAX_LINE_BYTES
        self.next_query_id = 0
        self.cell_count = 0
        self.cell: CellProcess | None = None

    # -- set-up ---------------------------------------------------------------------------

    def start(self) -> None:
        init = self.channel.receive()
        if init.get("type") != "init":
            raise ValueError("the first message must be init")
        apply_limits(init.get("limits") or {})
        if init.get("seccomp"):
            install_syscall_filter(bytes.fromhex(init["seccomp"]))
        set_dumpable(False)  # before the fork: the cell process can never open this one
        self.output_limit = int(init.get("output_limit") or DEFAULT_OUTPUT_LIMIT)
        self.max_line_bytes = int(init.get("max_line_bytes") or DEFAULT_MAX_LINE_BYTES)
        names = init.get("names")
        context = (
            self.raw_context(init["context_bytes"], names)
            if "context_bytes" in init
            else init.get("context", "")
        )
        if not (
            isinstance(context, str)
            or (isinstance(context, list) and all(isinstance(c, str) for c in context))
        ):
            raise ValueError("context must be a string or a list of strings")
        if (
            names is not None
            and isinstance(context, list)
            and not all(isinstance(c, Document) for c in context)
        ):
            context = as_documents(context, names)
        del init
        # The cell process gets the context by the fork (shared pages, not a copy); the
        # runner lets go of it at once.
        self.cell = start_cell_process(self.channel, context, self.max_line_bytes)
        del context
        leave_root(RUNNER_UID)
        set_dumpable(False)
        self.channel.send({"type": "ready"})

    def raw_context(self, sizes: object, names: object) -> str | list[str]:
        """Texts sent as raw bytes after the init line: decoding is a fraction of parsing a
        JSON string of tens of MB. With names, each becomes its Document directly. One size
        (not a list) is a str context."""
        if isinstance(sizes, int) and not isinstance(sizes, bool):
            return self.raw_context([sizes], None)[0]
        if not isinstance(sizes, list) or not all(isinstance(n, int) and n >= 0 for n in sizes):
            raise ValueError("context_bytes must be a list of sizes")
        named = (
            isinstance(names, list) and len(names) == len(sizes) and all(isinstance(n, str) for n in names)
        )
        texts: list[str] = []
        for index, size in enumerate(sizes):
            data = self.channel.read_exactly(size)
            name = names[index] if named and isinstance(names, list) else None
            texts.append(Document(data, name) if isinstance(name, str) else data.decode("utf-8", "replace"))
            del data
        return texts

    # -- running cells ----------------------------------------------------------------------

    def serve(self) -> None:
        while True:
            message = self.channel.receive()
            if message.get("type") != "exec":
                raise ValueError(f"unexpected message type {message.get('type')!r}")
            result = self.run_cell(str(message.get("code", "")))
            result["id"] = message.get("id")
            self.channel.send(result)

    def run_cell(self, code: str) -> Message:
        """One cell: the cell process's requests become llm_query lines as they come, up to
        QUERIES_IN_FLIGHT at once (llm_query_batched sends its next group while the host is
        still answering the last), and each reply goes back to the request it answers."""
        cell = self.cell
        assert cell is not None
        cell.discard_output()  # what a background process printed between cells
        stdout, stderr = CapturedOutput(self.output_limit), CapturedOutput(self.output_limit)
        self.cell_count += 1
        cell.send({"exec": code, "cell": self.cell_count})
        asked: dict[int, tuple[int, int]] = {}  # query id → (the cell's number, prompt count)
        while True:
            if self.channel.has_line():
                self.pass_reply(asked)
                continue
            room = len(asked) < QUERIES_IN_FLIGHT
            host = self.channel.reader if asked else None
            request = cell.next_request(stdout, stderr, host=host, requests=room)
            if request is None:  # the host is answering
                if not self.channel.fill():
                    raise HostGone
            elif "done" in request and request["cell"] != self.cell_count:
                cell.ignored_lines += 1
            elif "done" in request:
                while asked:  # asked and left without waiting: the answers go nowhere
                    self.pass_reply(asked, to_cell=False)
                cell.drain_output(stdout, stderr)
                if cell.ignored_lines:
                    stderr.note(f"[the runner ignored {cell.ignored_lines} line(s) that were not requests]\n")
                    cell.ignored_lines = 0
                return cell_result(request["done"], stdout, stderr)
            else:
                query_id = self.send_query(request["ask"], request.get("rlm"))
                asked[query_id] = (request["n"], len(request["ask"]))

    def send_query(self, prompts: list[str], rlm: object) -> int:
        """One llm_query of the cell as a protocol line, under an id of the runner's."""
        self.next_query_id += 1
        query: Message = {"type": "llm_query", "id": self.next_query_id, "prompts": prompts}
        if rlm is not None:
            query["rlm"] = rlm
        self.channel.send(query)
        return self.next_query_id

    def pass_reply(self, asked: dict[int, tuple[int, int]], *, to_cell: bool = True) -> None:
        reply = self.channel.receive()
        if reply.get("type") != "llm_reply" or not is_number(reply.get("id")) or reply["id"] not in asked:
            raise HostGone  # the host broke the protocol; nothing sane can follow
        number, count = asked.pop(reply["id"])
        if to_cell:
            assert self.cell is not None
            self.cell.send({"reply": number, **checked_answers(reply, count)})


def checked_answers(reply: Message, count: int) -> Message:
    if reply.get("error"):
        return {"error": str(reply["error"])}
    answers = reply.get("answers")
    if not isinstance(answers, list) or len(answers) != count:
        return {"error": "the answers did not match the prompts"}
    return {"answers": [str(a) for a in answers]}


class CapturedOutput:
    """What the cell process wrote to fd 1 or 2, decoded as it comes and capped."""

    def __init__(self, limit: int) -> None:
        self.text = CappedText(limit)
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def feed(self, data: bytes) -> None:
        self.text.write(self.decoder.decode(data))

    def note(self, text: str) -> None:
        self.text.write(text)

    def value(self) -> str:
        self.text.write(self.decoder.decode(b"", final=True))
        return self.text.getvalue()

    @property
    def cut(self) -> int:
        return self.text.cut


class CellProcess:
    """The runner's handle on the cell process: its pid, the private pipes, its fd 1 and 2."""

    def __init__(
        self, pid: int, to_cell: int, requests: int, stdout: int, stderr: int, max_line: int
    ) -> None:
        self.pid = pid
        self.to_cell = to_cell
        self.requests = requests
        self.outputs = (stdout, stderr)
        self.max_line = max_line
        self.pending = bytearray()
        self.lines: list[bytes] = []
        self.ignored_lines = 0
        self.exit_status: int | None = None
        self.outbox = bytearray()
        self.open_outputs = {stdout, stderr}
        for fd in (to_cell, requests, stdout, stderr):
            os.set_blocking(fd, False)

    def send(self, message: Message) -> None:
        """Queued, and written as the cell process reads: the runner never blocks on a cell
        that is itself busy writing a request."""
        self.outbox += frame(message)
        self.flush()

    def flush(self) -> None:
        while self.outbox:
            try:
                written = os.write(self.to_cell, self.outbox)
            except BlockingIOError:
                return
            except OSError:
                raise CellGone(self.why_gone()) from None
            del self.outbox[:written]

    def next_request(
        self,
        stdout: CapturedOutput,
        stderr: CapturedOutput,
        *,
        host: int | None = None,
        requests: bool = True,
    ) -> Message | None:
        """Reads the cell's output into `stdout`/`stderr` and writes what is queued for it,
        until a request arrives or, with `host`, until the host's descriptor is readable
        (then None). With `requests` false, requests wait in the pipe."""
        sinks = {self.outputs[0]: stdout, self.outputs[1]: stderr}
        while True:
            while requests and self.lines:
                request = parse_request(self.lines.pop(0))
                if request is not None:
                    return request
                self.ignored_lines += 1
            poller = select.poll()
            for fd in self.open_outputs:
                poller.register(fd, select.POLLIN)
            if requests:
                poller.register(self.requests, select.POLLIN)
            if self.outbox:
                poller.register(self.to_cell, select.POLLOUT)
            if host is not None:
                poller.register(host, select.POLLIN)
            ready = [fd for fd, _ in poller.poll(REAP_INTERVAL_MS)]
            if host in ready:
                return None
            for fd in ready:
                if fd == self.to_cell:
                    self.flush()
                    continue
                data = read_some(fd)
                if fd == self.requests:
                    if not data:
                        raise CellGone(self.why_gone())
                    self.take(data)
                elif data:
                    sinks[fd].feed(data)
                elif data is not None:
                    self.open_outputs.discard(fd)  # every writer of it is gone
            if self.reap():
                self.drain_requests()
                if not self.lines or not requests:
                    raise CellGone(self.why_gone())

    def take(self, data: bytes) -> None:
        searched = len(self.pending)
        self.pending += data
        while (end := self.pending.find(b"\n", searched)) >= 0:
            if end > self.max_line:
                break
            if end:  # empty lines are the framing (see frame())
                self.lines.append(bytes(self.pending[:end]))
            del self.pending[: end + 1]
            searched = 0
        if len(self.pending) > self.max_line:
            raise CellGone(f"the cell sent a message over the {self.max_line // 1024**2} MB line limit")

    def drain_requests(self) -> None:
        while data := read_some(self.requests):
            self.take(data)

    def drain_output(self, stdout: CapturedOutput, stderr: CapturedOutput) -> None:
        """Everything written before the cell said it was done is in the pipes now."""
        for fd, sink in zip(self.outputs, (stdout, stderr), strict=True):
            while data := read_some(fd):
                sink.feed(data)

    def discard_output(self) -> None:
        for fd in self.outputs:
            while read_some(fd):
                pass

    def reap(self) -> bool:
        """Collect exited children (orphans too, where the runner is PID 1); whether the cell
        process is among them."""
        while self.exit_status is None:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid == self.pid:
                self.exit_status = status
        return self.exit_status is not None

    def why_gone(self) -> str:
        if self.exit_status is None:
            with contextlib.suppress(ChildProcessError):
                _, self.exit_status = os.waitpid(self.pid, 0)
        status = self.exit_status
        if status is not None and os.WIFSIGNALED(status):
            number = os.WTERMSIG(status)
            if number == signal.SIGKILL:
                return (
                    "the cell's process was killed (SIGKILL), e.g. for going over the sandbox's "
                    "memory or process limit"
                )
            if number == signal.SIGXCPU:
                return "the cell's process used up its CPU time limit"
            return f"the cell's process was killed by signal {number}"
        code = os.WEXITSTATUS(status) if status is not None else "unknown"
        return f"the cell's process ended (exit code {code}); its variables are gone"


def frame(message: Message) -> bytes:
    """One message on a private pipe: a JSON line after a newline of its own, so that bytes a
    cell wrote into the pipe without a newline end there and never run into a real message."""
    return b"\n" + encode_json(message) + b"\n"


def read_some(fd: int) -> bytes | None:
    """Up to one chunk from a non-blocking pipe; b"" at its end, None when nothing is there."""
    try:
        return os.read(fd, PIPE_CHUNK)
    except BlockingIOError:
        return None
    except OSError:
        return b""


def parse_request(line: bytes) -> Message | None:
    """A request of the cell process, checked; None for anything else."""
    try:
        request = json.loads(line)
    except ValueError:
        return None
    if not isinstance(request, dict) or len(request) > 3:
        return None
    if "done" in request:
        cell = request.get("cell")
        valid = isinstance(request["done"], dict) and is_number(cell) and len(request) == 2
        return {"done": request["done"], "cell": cell} if valid else None
    prompts, number = request.get("ask"), request.get("n")
    if not is_str_list(prompts) or not prompts or not is_number(number):
        return None
    rlm = request.get("rlm")
    if rlm is None:
        return {"ask": prompts, "n": number} if len(request) == 2 else None
    if not isinstance(rlm, dict) or len(prompts) != 1 or set(rlm) != {"context", "names"}:
        return None
    context, names = rlm["context"], rlm["names"]
    if not (context is None or isinstance(context, str) or is_str_list(context)):
        return None
    if not (names is None or is_str_list(names)):
        return None
    return {"ask": prompts, "n": number, "rlm": {"context": context, "names": names}}


def is_number(value: object) -> bool:
    return type(value) is int and 0 < value < 2**53


def is_str_list(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def cell_result(done: Message, stdout: CapturedOutput, stderr: CapturedOutput) -> Message:
    """The protocol's result line, built here from what the cell process reported."""
    final, error, variables = done.get("final"), done.get("error"), done.get("variables")
    names = [v for v in variables if isinstance(v, str)] if isinstance(variables, list) else []
    return {
        "type": "result",
        "stdout": clean(stdout.value()),
        "stderr": clean(stderr.value()),
        "final": clean(final) if isinstance(final, str) else None,
        "variables": names[:MAX_VARIABLES_LISTED],
        "error": clean(error) if isinstance(error, str) else None,
        "truncated_chars": stdout.cut + stderr.cut,
    }


def start_cell_process(channel: ProtocolChannel, context: str | list[str], max_line: int) -> CellProcess:
    """Fork the cell process. In the child: the channel closed, fd 1 and 2 on pipes to the
    runner, every descriptor but five closed, then the REPL; it never returns."""
    to_cell_read, to_cell = os.pipe()
    requests, requests_write = os.pipe()
    stdout_read, stdout_write = os.pipe()
    stderr_read, stderr_write = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 70
        try:
            channel.close()
            leave_root(CELL_UID)
            os.dup2(stdout_write, 1)
            os.dup2(stderr_write, 2)
            close_all_but({0, 1, 2, requests_write, to_cell_read})
            cells = Cells(requests_write, to_cell_read, context, max_line)
            del context
            cells.serve()
            code = 0
        except BaseException:
            code = 71
        finally:
            os._exit(code)
    for fd in (to_cell_read, requests_write, stdout_write, stderr_write):
        os.close(fd)
    return CellProcess(pid, to_cell, requests, stdout_read, stderr_read, max_line)


def leave_root(uid: int) -> None:
    """As root, become `uid` (and its group) for good, with no supplementary groups and no
    capability left; as anyone else, nothing to do."""
    if os.getuid() != 0 and os.geteuid() != 0:
        return
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    if 0 in os.getresuid():
        raise OSError("the sandbox could not leave root")


def close_all_but(keep: set[int]) -> None:
    try:
        open_fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        open_fds = list(range(resource.getrlimit(resource.RLIMIT_NOFILE)[0]))
    for fd in open_fds:
        if fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)


# -- the cell process ---------------------------------------------------------------------------


def output_stream(fd: int) -> io.TextIOWrapper:
    return open(fd, "w", encoding="utf-8", errors="replace", closefd=False, buffering=1)


class Cells:
    """The other half: the job's namespace and the helpers, in the cell process. It holds
    no descriptor of the protocol channel; whatever runs here can only ask the runner."""

    def __init__(self, requests: int, replies: int, context: str | list[str], max_line: int) -> None:
        self.requests = requests
        self.replies = open(replies, "rb", buffering=PIPE_CHUNK)  # noqa: SIM115  (lives as long as the process)
        self.max_line = max_line
        self.owner_pid = os.getpid()
        self.final: str | None = None
        self.cell_count = 0
        self.asked = 0
        # Line-buffered, so print, os.write and a subprocess's output keep their order.
        self.stdout = output_stream(1)
        self.stderr = output_stream(2)
        sys.stdin = io.StringIO("")  # input() in a cell sees end of file
        sys.stdout, sys.stderr = self.stdout, self.stderr
        for name, stream in (
            ("__stdout__", self.stdout),
            ("__stderr__", self.stderr),
            ("__stdin__", sys.stdin),
        ):
            setattr(sys, name, stream)
        # One dict for globals and locals: functions defined in a cell see names assigned later.
        self.namespace: dict[str, object] = {
            "__name__": "__main__",
            "__builtins__": builtins,
            "context": context,
            "answer": {"content": "", "ready": False},
            "llm_query": plain_function(self.llm_query),
            "llm_query_batched": plain_function(self.llm_query_batched),
            "rlm_query": plain_function(self.rlm_query),
            "FINAL": plain_function(self.set_final),
            "FINAL_VAR": plain_function(self.set_final_from_variable),
        }

    def send(self, message: Message) -> None:
        self.send_line(encode_json(message))

    def send_line(self, line: bytes) -> None:
        """One message, framed (see frame()), written whole however long it is."""
        for data in (b"\n", line, b"\n"):
            view = memoryview(data)
            while view:
                view = view[os.write(self.requests, view) :]

    def receive(self) -> Message:
        while True:
            line = self.replies.readline()
            if not line:
                raise HostGone
            with contextlib.suppress(ValueError):
                message = json.loads(line)
                if isinstance(message, dict):
                    return message
            # An empty line of the framing, or bytes a cell wrote into its own pipe.

    def serve(self) -> None:
        while True:
            message = self.receive()
            code, cell = message.get("exec"), message.get("cell")
            if isinstance(code, str) and is_number(cell):
                self.send({"done": self.run_cell(code), "cell": cell})

    # -- what a cell can call ---------------------------------------------------------------

    def llm_query(self, prompt: str) -> str:
        """Ask the language model one question; returns its answer as text."""
        if not isinstance(prompt, str):
            raise TypeError(f"llm_query(prompt) needs a str, got {type(prompt).__name__}")
        return self._ask([prompt])[0]

    def llm_query_batched(self, prompts: list[str]) -> list[str]:
        """Ask several questions at once; answers come back in the same order."""
        prompts = list(prompts)
        if not all(isinstance(p, str) for p in prompts):
            raise TypeError("llm_query_batched(prompts) needs a list of str")
        if not prompts:
            return []
        self._check_owner()
        answers: dict[int, list[str]] = {}  # by the request's number
        waiting: dict[int, int] = {}  # the request's number → its prompt count
        failure: str | None = None
        for group in encoded_groups(prompts):
            if len(waiting) >= QUERIES_IN_FLIGHT:
                failure = self._collect(waiting, answers) or failure
            if failure:
                break  # no more groups once one failed, but every group sent is waited for
            waiting[self._send_ask(group)] = len(group)
        while waiting:
            failure = self._collect(waiting, answers) or failure
        if failure:
            raise RuntimeError(f"llm_query failed: {failure}")
        return [answer for number in sorted(answers) for answer in answers[number]]

    def rlm_query(self, prompt: str, context: object = None) -> str:
        """Ask a sub-RLM (its own REPL, `context` its context, or the prompt when None)."""
        if not isinstance(prompt, str):
            raise TypeError(f"rlm_query(prompt) needs a str, got {type(prompt).__name__}")
        names = None
        if isinstance(context, list | tuple):
            context = list(context)
            if not all(isinstance(c, str) for c in context):
                raise TypeError("rlm_query(context=...) needs a str or a list of str")
            if all(isinstance(c, Document) for c in context):
                names = [c.name for c in context]
        elif context is not None and not isinstance(context, str):
            raise TypeError("rlm_query(context=...) needs a str or a list of str")
        return self._ask([prompt], rlm={"context": context, "names": names})[0]

    def set_final(self, value: object) -> None:
        """Set the job's final answer."""
        self.final = value if isinstance(value, str) else str(value)

    def set_final_from_variable(self, name: str) -> None:
        """Set the job's final answer to the value of the variable called `name`."""
        name = str(name).strip().strip("\"'")
        if name not in self.namespace:
            raise NameError(f"FINAL_VAR: no variable named {name!r}")
        self.set_final(self.namespace[name])

    def _ask(self, prompts: list[str], **extra: object) -> list[str]:
        self._check_owner()
        pieces = [encode_json(prompt) for prompt in prompts]
        number = self._send_ask(pieces, extra)
        answers: dict[int, list[str]] = {}
        failure = self._collect({number: len(prompts)}, answers)
        if failure:
            raise RuntimeError(f"llm_query failed: {failure}")
        return answers[number]

    def _check_owner(self) -> None:
        if os.getpid() != self.owner_pid:
            raise RuntimeError("llm_query is not available in a child process")

    def _send_ask(self, pieces: list[bytes], extra: Message | None = None) -> int:
        """One request from prompts already encoded as JSON strings; its number."""
        self.asked += 1
        line = b'{"ask": [' + b", ".join(pieces) + b'], "n": ' + str(self.asked).encode()
        if extra:
            line += b", " + encode_json(extra)[1:-1]
        line += b"}"
        # The runner's protocol line carries the same prompts, re-encoded the same way,
        # with its own type and id around them.
        if len(line) + PROTOCOL_LINE_SLACK > self.max_line:
            raise ValueError(
                f"llm_query: these prompts come to {len(line):,} bytes; at most "
                f"{self.max_line - PROTOCOL_LINE_SLACK:,} go in one call: send fewer or shorter "
                "prompts at a time"
            )
        self.send_line(line)
        return self.asked

    def _collect(self, waiting: dict[int, int], answers: dict[int, list[str]]) -> str | None:
        """Waits for the reply to any of the requests `waiting` for one (the runner passes
        them on as the host finishes them); takes it off the list. The error, if it failed."""
        reply = self.receive()
        while not (is_number(reply.get("reply")) and reply["reply"] in waiting):
            reply = self.receive()  # a reply to a request the cell forged
        number = reply["reply"]
        count = waiting.pop(number)
        if reply.get("error"):
            return str(reply["error"])
        found = reply.get("answers")
        if not isinstance(found, list) or len(found) != count:
            return "the answers did not match the prompts"
        answers[number] = [str(a) for a in found]
        return None

    # -- running cells ----------------------------------------------------------------------

    def run_cell(self, code: str) -> Message:
        self.cell_count += 1
        self.final = None
        filename = f"<cell {self.cell_count}>"
        # Registered so tracebacks (also of functions called in later cells) show the source.
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        error = None
        sys.stdout, sys.stderr = self.stdout, self.stderr
        try:
            compiled = compile(code, filename, "exec")
            exec(compiled, self.namespace, self.namespace)
        except HostGone:
            raise
        except BaseException as exc:  # SystemExit and KeyboardInterrupt in a cell are errors too
            self._leave_if_forked()
            with contextlib.suppress(Exception):
                self.stderr.write(format_cell_error(exc))
            error = traceback.format_exception_only(type(exc), exc)[-1].strip()
        self._leave_if_forked()
        for stream in (self.stdout, self.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        return {"final": self._final_answer(), "variables": self._variable_names(), "error": error}

    def _leave_if_forked(self) -> None:
        # A cell that forked: the child must never answer in the cell process's place.
        if os.getpid() != self.owner_pid:
            os._exit(0)

    def _final_answer(self) -> str | None:
        if self.final is not None:
            return self.final
        answer = self.namespace.get("answer")
        if isinstance(answer, dict) and answer.get("ready") is True:
            content = answer.get("content", "")
            return content if isinstance(content, str) else str(content)
        return None

    def _variable_names(self) -> list[str]:
        names = []
        for name, value in self.namespace.items():
            if name.startswith("_") or name in HELPER_NAMES or type(value).__name__ == "module":
                continue
            names.append(name)
            if len(names) >= MAX_VARIABLES_LISTED:
                break
        return names


def plain_function(method: Callable[..., Any]) -> Callable[..., Any]:
    """`method` as a function of its own: no `__self__`, no `__wrapped__` back to `Cells`."""

    def helper(*args: Any, **kwargs: Any) -> Any:
        return method(*args, **kwargs)

    helper.__name__ = helper.__qualname__ = method.__name__
    helper.__doc__ = method.__doc__
    return helper


def encode_json(value: object) -> bytes:
    """As every line of the runner's is encoded: UTF-8, not \\u escapes."""
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def encoded_groups(prompts: list[str], max_bytes: int = BATCH_MESSAGE_BYTES) -> Iterator[list[bytes]]:
    """A batch's prompts encoded once as JSON strings, in groups of about `max_bytes` (at
    least one prompt each), each encoded only when it is due: the first group goes out
    while the rest are still text. Bytes, not characters: the line limit is in bytes, and
    a character of Chinese text is three of them."""
    group: list[bytes] = []
    size = 0
    for prompt in prompts:
        piece = encode_json(prompt)
        if group and size + len(piece) > max_bytes:
            yield group
            group, size = [], 0
        group.append(piece)
        size += len(piece) + 2
    yield group


def format_cell_error(exc: BaseException) -> str:
    """The traceback of the cell's own code, without the runner's frames."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != RUNNER_FILE]
    lines = traceback.format_exception_only(type(exc), exc)
    if frames:
        lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames), *lines]
    return "".join(lines)


def clean(text: str | None) -> str | None:
    """Make text safe for UTF-8 JSON (a cell can produce lone surrogates)."""
    if text is None:
        return None
    return text.encode("utf-8", "replace").decode("utf-8")


def apply_limits(limits: dict[str, int | None]) -> None:
    """Lower this process's resource limits; never raises one above its current hard limit."""
    nice = limits.get("nice")
    if nice:
        os.nice(int(nice))  # the service's own work comes first on a busy machine
    for name, value in limits.items():
        which = _LIMITS.get(name)
        if which is None or value is None:
            continue
        _, hard = resource.getrlimit(which)
        value = int(value) if hard == resource.RLIM_INFINITY else min(int(value), hard)
        resource.setrlimit(which, (value, value))


def install_syscall_filter(program: bytes) -> None:
    """The host's seccomp filter (seccomp.job_filter()) on this process and every process it
    will start, before any cell runs: the same wall under every backend, whatever the
    container runtime applies or not (gVisor does not apply docker's profile). Raises when the
    kernel refuses, so the sandbox never starts without it."""
    pr_set_no_new_privs, pr_set_seccomp, seccomp_mode_filter = 38, 22, 2

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    libc = ctypes.CDLL(None, use_errno=True)
    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    if libc.prctl(pr_set_no_new_privs, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) was refused")
    if libc.prctl(pr_set_seccomp, seccomp_mode_filter, ctypes.byref(fprog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "the seccomp filter was refused")


def set_dumpable(value: bool) -> None:
    """Non-dumpable: processes of the same uid cannot read this one's memory, open its
    descriptors through /proc/<pid>/fd, or attach to it."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, int(value), 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE) was refused")


def open_protocol_channel() -> ProtocolChannel:
    """Move the protocol to private descriptors and point 0, 1 and 2 at /dev/null."""
    reader = os.dup(0)
    writer = os.fdopen(os.dup(1), "wb", buffering=1 << 16)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    sys.stdin = io.StringIO("")
    return ProtocolChannel(reader, writer)


def main() -> int:
    channel = open_protocol_channel()
    runner = Runner(channel)
    runner_pid = os.getpid()
    try:
        runner.start()
        runner.serve()
    except HostGone:
        return 0
    except BaseException as exc:
        if os.getpid() != runner_pid:
            os._exit(0)
        error = str(exc) if isinstance(exc, CellGone) else f"{type(exc).__name__}: {exc}"
        with contextlib.suppress(OSError, ValueError):
            channel.send({"type": "fatal", "error": error})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
