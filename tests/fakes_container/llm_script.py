"""What the fake LLM container answers during the end-to-end run.

One responder for every request chat-service forwards, told apart by content:
- the RLM root model (its system prompt describes the REPL) answers with a ```repl block
  whose result only running code can produce (a SHA-256 digest) and which asks a helper
  model through `llm_query`, so the trace crosses sandbox → rlm-service → chat-service;
- that helper call (its prompt carries `SUBCALL_MARKER`) answers `SUBCALL_ANSWER`;
- a question containing `SLOW_MARKER` waits `SLOW_SECONDS` first, so a test can look at
  the sandbox container and the Redis token while the job is running;
- a question that starts with `ATTACK_MARKER` + a name of `ATTACKS` makes the root model
  answer with that hostile cell (tests/e2e/test_sandbox_pool.py), which reports in its final
  answer, as JSON, what each attempt got;
- anything else is a plain chat answer that echoes the question.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from tests.fakes.openai_upstream import Reply

SUBCALL_MARKER = "e2e-subcall"
SUBCALL_ANSWER = "pong-from-the-helper-model"
SLOW_MARKER = "e2e-slow"
SLOW_SECONDS = 4.0
DIGEST_INPUT = b"tinychat-e2e"
CHAT_PREFIX = "Hello from the e2e upstream. You said:"

RLM_CODE = f"""\
import hashlib
digest = hashlib.sha256({DIGEST_INPUT!r}).hexdigest()[:16]
helper = llm_query("{SUBCALL_MARKER}: answer with one word")
FINAL(f"digest={{digest}} helper={{helper}} context_chars={{len(str(context))}}")
"""


ATTACK_MARKER = "e2e-attack:"

# Each cell reads its targets from the question (`context` holds it): the JSON after the name.
_ATTACK_PROLOGUE = """\
import ctypes, json, os, signal, socket, subprocess, sys, time
given = json.loads(context.split(' ', 1)[1])
report = {'runner': socket.gethostname()}
def attempt(name, action):
    try:
        report[name] = 'succeeded: ' + repr(action())[:200]
    except BaseException as exc:
        report[name] = 'failed: ' + type(exc).__name__
"""

ATTACKS = {
    # Reach any address, read the runner server's secrets or memory, signal or trace it,
    # make namespaces, write outside the scratch space.
    "probe": _ATTACK_PROLOGUE
    + """\
for host, port in given['targets']:
    attempt(f'connect {host}:{port}', lambda: socket.create_connection((host, port), 3))
attempt('resolve rlm-service', lambda: socket.getaddrinfo('rlm-service', 8003))
attempt('read /proc/1/environ', lambda: open('/proc/1/environ', 'rb').read())
attempt('read /proc/1/mem', lambda: open('/proc/1/mem', 'rb').read(1))
attempt('list /proc/1/fd', lambda: os.listdir('/proc/1/fd'))
libc = ctypes.CDLL(None, use_errno=True)
def refused(result):
    if result == -1:
        raise OSError(ctypes.get_errno(), 'refused')
    return result
attempt('unshare user namespace', lambda: refused(libc.unshare(0x10000000)))
attempt('ptrace the runner', lambda: refused(libc.ptrace(16, 1, None, None)))
attempt('write outside the scratch space', lambda: open('/sandbox/planted', 'w'))
os.kill(1, signal.SIGTERM)  # PID 1 ignores signals from inside its container
os.kill(1, signal.SIGKILL)
status = open('/proc/self/status').read()
report['status'] = {k: v.strip() for k, v in (line.split(':', 1) for line in status.splitlines())
                    if k in ('Uid', 'CapEff', 'NoNewPrivs', 'Seccomp')}
FINAL(json.dumps(report))
""",
    # Leave a file, a daemon and a shared-memory segment behind for the next job.
    "leave": _ATTACK_PROLOGUE
    + """\
open('/tmp/left-behind', 'w').write('x')
open('/dev/shm/left-behind', 'w').write('x')
ctypes.CDLL(None).shmget(0, 4096, 0o1600)
subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'], start_new_session=True)
time.sleep(0.2)
FINAL(json.dumps(report))
""",
    # What a job finds when it starts.
    "look": _ATTACK_PROLOGUE
    + """\
report['tmp'] = sorted(os.listdir('/tmp'))
report['shm'] = sorted(os.listdir('/dev/shm'))
report['ipc'] = open('/proc/sysvipc/shm').read().splitlines()[1:]
mine = (1, os.getppid(), os.getpid())  # the server, the job's runner, the cell
report['processes'] = sorted(int(p) for p in os.listdir('/proc') if p.isdigit() and int(p) not in mine)
FINAL(json.dumps(report))
""",
}


def expected_digest() -> str:
    return hashlib.sha256(DIGEST_INPUT).hexdigest()[:16]


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):  # OpenAI content parts
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return str(content or "")


def _is_rlm_root(messages: list[dict[str, Any]]) -> bool:
    return any(m.get("role") == "system" and "REPL" in _text(m) for m in messages)


def respond(body: dict[str, Any]) -> Reply:
    messages = body.get("messages") or []
    everything = " ".join(_text(m) for m in messages)
    delay = SLOW_SECONDS if SLOW_MARKER in everything else 0.0
    if _is_rlm_root(messages):
        attack = re.search(re.escape(ATTACK_MARKER) + r"(\w+)", everything)
        code = ATTACKS[attack.group(1)] if attack and attack.group(1) in ATTACKS else RLM_CODE
        return Reply(text="Let me compute it.\n```repl\n" + code + "```", first_byte_delay=delay)
    last = _text(messages[-1]) if messages else ""
    if SUBCALL_MARKER in last:
        return Reply(text=SUBCALL_ANSWER)
    return Reply(text=f"{CHAT_PREFIX} {last}", chunk_delay=0.01, first_byte_delay=delay)
