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
    runner → host   {"type": "llm_query", "id": 7, "prompts": ["…"]}        (zero or more, in a cell)
                    {…, "rlm": {"context": null | str | [str], "names": [str] | null}}
                                                            (rlm_query: one prompt, a sub-RLM)
    host → runner   {"type": "llm_reply", "id": 7, "answers": ["…"]}        or {"…", "error": "…"}
    runner → host   {"type": "result", "id": 1, "stdout", "stderr", "final", "variables",
                     "error", "truncated_chars"}
    runner → host   {"type": "fatal", "error": "…"}                          (then the runner exits)

The protocol travels on duplicates of the original stdin/stdout; file descriptors 0, 1 and 2
point at /dev/null while cells run and `sys.stdout`/`sys.stderr` capture into bounded
buffers, so nothing a cell prints can look like a protocol line to the host. The helpers a
cell gets are plain functions, not bound methods, so `llm_query.__self__.channel` leads
nowhere. None of this is a security boundary (cell code shares this process and could find
the descriptor): the host trusts no line, caps every field and checks every id.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import json
import linecache
import os
import resource
import sys
import traceback

# Not typing.TYPE_CHECKING: the runner imports nothing it does not use (mypy reads the block).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, BinaryIO, TypeVar

    T = TypeVar("T")

DEFAULT_OUTPUT_LIMIT = 20_000
DEFAULT_MAX_LINE_BYTES = 8 * 1024 * 1024
MAX_VARIABLES_LISTED = 200
BATCH_MESSAGE_CHARS = 4_000_000  # of prompts in one llm_query message
# This file's name as its code objects know it (a path, or "<string>" when run with -c).
RUNNER_FILE = (lambda: None).__code__.co_filename
HELPER_NAMES = frozenset({"llm_query", "llm_query_batched", "rlm_query", "FINAL", "FINAL_VAR"})

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


class ProtocolChannel:
    def __init__(self, reader: BinaryIO, writer: BinaryIO) -> None:
        self.reader = reader
        self.writer = writer

    def send(self, message: dict[str, Any]) -> None:
        self.writer.write(json.dumps(message, ensure_ascii=False).encode("utf-8") + b"\n")
        self.writer.flush()

    def receive(self) -> dict[str, Any]:
        # BufferedReader.readline runs in C: a line of tens of MB is read in one pass.
        line = self.reader.readline()
        if not line:
            raise HostGone
        message = json.loads(line)
        if not isinstance(message, dict):
            raise ValueError("protocol message is not an object")
        return message


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

    def __new__(cls, text: str | bytes, name: str) -> Document:
        # From bytes, decoded straight into the Document: no second copy of a large text.
        if isinstance(text, bytes):
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
    def __init__(self, channel: ProtocolChannel) -> None:
        self.channel = channel
        self.owner_pid = os.getpid()
        self.output_limit = DEFAULT_OUTPUT_LIMIT
        self.max_line_bytes = DEFAULT_MAX_LINE_BYTES
        self.final: str | None = None
        self.next_query_id = 0
        self.cell_count = 0
        self.namespace: dict[str, Any] = {}

    # -- set-up ---------------------------------------------------------------------------

    def start(self) -> None:
        init = self.channel.receive()
        if init.get("type") != "init":
            raise ValueError("the first message must be init")
        apply_limits(init.get("limits") or {})
        if init.get("seccomp"):
            install_syscall_filter(bytes.fromhex(init["seccomp"]))
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
        # One dict for globals and locals: functions defined in a cell see names assigned later.
        self.namespace = {
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
        self.channel.send({"type": "ready"})

    def raw_context(self, sizes: object, names: object) -> str | list[str]:
        """Texts sent as raw bytes after the init line: decoding is a fraction of parsing a
        JSON string of tens of MB. With names, each becomes its Document directly. One size
        (not a list) is a str context."""
        if isinstance(sizes, int) and not isinstance(sizes, bool):
            return self.raw_context([sizes], None)[0]
        if not isinstance(sizes, list) or not all(isinstance(n, int) and n >= 0 for n in sizes):
            raise ValueError("context_bytes must be a list of sizes")
        labels = (
            names
            if isinstance(names, list) and len(names) == len(sizes) and all(isinstance(n, str) for n in names)
            else None
        )
        texts: list[str] = []
        for index, size in enumerate(sizes):
            data = self.channel.reader.read(size)
            if len(data) != size:
                raise HostGone
            texts.append(
                Document(data, labels[index]) if labels is not None else data.decode("utf-8", "replace")
            )
            del data
        return texts

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
        answers: list[str] = []
        for group in batch_groups(prompts):
            answers += self._ask(group)
        return answers

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
        if os.getpid() != self.owner_pid:
            raise RuntimeError("llm_query is not available in a child process")
        line = json.dumps({"type": "llm_query", "id": self.next_query_id + 1, "prompts": prompts})
        if len(line) + 16 > self.max_line_bytes:  # ASCII JSON: one byte per character
            raise ValueError(
                f"llm_query: these prompts come to {len(line):,} bytes; at most "
                f"{self.max_line_bytes:,} go in one call: send fewer or shorter prompts at a time"
            )
        self.next_query_id += 1
        query_id = self.next_query_id
        self.channel.send({"type": "llm_query", "id": query_id, "prompts": prompts, **extra})
        reply = self.channel.receive()
        if reply.get("type") != "llm_reply" or reply.get("id") != query_id:
            raise HostGone  # the host broke the protocol; nothing sane can follow
        if reply.get("error"):
            raise RuntimeError(f"llm_query failed: {reply['error']}")
        answers = reply.get("answers")
        if not isinstance(answers, list) or len(answers) != len(prompts):
            raise RuntimeError("llm_query failed: the answers did not match the prompts")
        return [str(a) for a in answers]

    # -- running cells ----------------------------------------------------------------------

    def serve(self) -> None:
        while True:
            message = self.channel.receive()
            if message.get("type") != "exec":
                raise ValueError(f"unexpected message type {message.get('type')!r}")
            result = self.run_cell(str(message.get("code", "")))
            result["id"] = message.get("id")
            self.channel.send(result)

    def run_cell(self, code: str) -> dict[str, Any]:
        self.cell_count += 1
        self.final = None
        filename = f"<cell {self.cell_count}>"
        # Registered so tracebacks (also of functions called in later cells) show the source.
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        stdout, stderr = CappedText(self.output_limit), CappedText(self.output_limit)
        error = None
        sys.stdout, sys.stderr = stdout, stderr
        try:
            compiled = compile(code, filename, "exec")
            exec(compiled, self.namespace, self.namespace)
        except HostGone:
            raise
        except BaseException as exc:  # SystemExit and KeyboardInterrupt in a cell are errors too
            self._leave_if_forked()
            stderr.write(format_cell_error(exc))
            error = traceback.format_exception_only(type(exc), exc)[-1].strip()
        finally:
            sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
        self._leave_if_forked()
        return {
            "type": "result",
            "stdout": clean(stdout.getvalue()),
            "stderr": clean(stderr.getvalue()),
            "final": clean(self._final_answer()),
            "variables": self._variable_names(),
            "error": clean(error),
            "truncated_chars": stdout.cut + stderr.cut,
        }

    def _leave_if_forked(self) -> None:
        # A cell that forked: the child must never answer the host in the runner's place.
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


def plain_function(method: Callable[..., T]) -> Callable[..., T]:
    """`method` as a function of its own: no `__self__`, no `__wrapped__` back to the runner."""

    def helper(*args: Any, **kwargs: Any) -> T:
        return method(*args, **kwargs)

    helper.__name__ = helper.__qualname__ = method.__name__
    helper.__doc__ = method.__doc__
    return helper


def batch_groups(prompts: list[str], max_chars: int = BATCH_MESSAGE_CHARS) -> list[list[str]]:
    """A batch cut into messages of about `max_chars` each (at least one prompt each): a fan
    out over a 60 MB context is not one 60 MB line for the host to hold at once."""
    groups: list[list[str]] = [[]]
    size = 0
    for prompt in prompts:
        if groups[-1] and size + len(prompt) > max_chars:
            groups.append([])
            size = 0
        groups[-1].append(prompt)
        size += len(prompt)
    return groups


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


def apply_limits(limits: dict[str, Any]) -> None:
    """Lower this process's resource limits; never raises one above its current hard limit."""
    if limits.get("nice"):
        os.nice(int(limits["nice"]))  # the service's own work comes first on a busy machine
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
    import ctypes

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


def open_protocol_channel() -> ProtocolChannel:
    """Move the protocol to private descriptors and point 0, 1 and 2 at /dev/null."""
    reader = os.fdopen(os.dup(0), "rb", buffering=1 << 20)
    writer = os.fdopen(os.dup(1), "wb", buffering=1 << 16)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    sys.stdin = io.StringIO("")  # input() in a cell sees end of file, never the protocol
    return ProtocolChannel(reader, writer)


def close_protocol_in_child(channel: ProtocolChannel) -> None:
    for stream in (channel.reader, channel.writer):
        with contextlib.suppress(OSError):
            os.close(stream.fileno())


def main() -> int:
    channel = open_protocol_channel()
    os.register_at_fork(after_in_child=lambda: close_protocol_in_child(channel))
    runner = Runner(channel)
    try:
        runner.start()
        runner.serve()
    except HostGone:
        return 0
    except BaseException as exc:
        if os.getpid() != runner.owner_pid:
            os._exit(0)
        with contextlib.suppress(OSError, ValueError):
            channel.send({"type": "fatal", "error": f"{type(exc).__name__}: {exc}"})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
