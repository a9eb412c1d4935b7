"""A scripted model that works as an RLM does, for the `rlm_long` benchmark.

    python -m bench.rlm_model --port 9000

It speaks the OpenAI chat API (the tests' fake upstream, tests/fakes/openai_upstream.py).
As the root model (a request with rlm-service's system prompt) it writes, turn by turn:
a block that peeks at `context`; a block that cuts every document into chunks on line
boundaries, fans them out with `llm_query_batched` and aggregates the answers; then FINAL.
As a sub-call model it really reads its chunk: it finds the needle (S-NIAH) or counts the
records of a category (OOLONG-style), so a wrong chunking or a lost byte gives a wrong answer.

Its own time is declared, so that the benchmark can tell it from the machinery's:
ROOT_SECONDS per root turn, SUBCALL_SECONDS + len(prompt) / SUBCALL_CHARS_PER_SECOND per
sub-call (a fast model's prefill), spent before the first byte of the answer.
"""

from __future__ import annotations

import argparse
import asyncio
import re
from typing import Any

from aiohttp import web

from tests.fakes.openai_upstream import FakeOpenAI, Reply

ROOT_MARKER = "persistent Python REPL"
ROOT_SECONDS = 0.5
SUBCALL_SECONDS = 0.3
SUBCALL_CHARS_PER_SECOND = 1_000_000
CHUNK_CHARS = 250_000

NEEDLE_TASK = "Find the access code of agent {agent} in the text below. Answer with the code only, or NONE."
COUNT_TASK = "Count the records about {topic} in the text below. Answer with the number only."
NEEDLE_QUESTION = re.compile(r"What is the access code of agent (\w+)\?")
COUNT_QUESTION = re.compile(r"How many records are about (\w+)\?")

PEEK = """\
print(type(context).__name__, len(context), 'documents')
for doc in context[:3]:
    print(doc.name, len(doc), repr(doc[:80]))"""

# The same chunking the benchmark's floor replays (bench.rlm_long.chunk_prompts).
FAN_OUT = """\
CHUNK = {chunk}
TASK = {task!r}
prompts = []
for doc in context:
    start = 0
    while start < len(doc):
        end = min(len(doc), start + CHUNK)
        if end < len(doc):
            cut = doc.rfind('\\n', start, end)
            end = cut + 1 if cut > start else end
        prompts.append(TASK + '\\n\\n' + doc[start:end])
        start = end
answers = llm_query_batched(prompts)
{aggregate}
print(len(prompts), 'chunks ->', result)"""

NEEDLE_AGGREGATE = (
    "found = [a for a in answers if a.strip() != 'NONE']\nresult = found[0] if found else 'NONE'"
)
COUNT_AGGREGATE = "result = sum(int(a) for a in answers)"


def repl(code: str) -> str:
    return f"Working on it.\n```repl\n{code}\n```\n"


def root_turn(body: dict[str, Any]) -> Reply:
    messages = body["messages"]
    turn = sum(1 for m in messages if m["role"] == "assistant")
    question = messages[1]["content"]
    if turn == 0:
        text = repl(PEEK)
    elif turn == 1:
        if match := NEEDLE_QUESTION.search(question):
            task, aggregate = NEEDLE_TASK.format(agent=match.group(1)), NEEDLE_AGGREGATE
        elif match := COUNT_QUESTION.search(question):
            task, aggregate = COUNT_TASK.format(topic=match.group(1)), COUNT_AGGREGATE
        else:
            return Reply(text=repl("FINAL('I do not know this task.')"), first_byte_delay=ROOT_SECONDS)
        text = repl(FAN_OUT.format(chunk=CHUNK_CHARS, task=task, aggregate=aggregate))
    else:
        text = repl("FINAL(str(result))")
    return Reply(text=text, first_byte_delay=ROOT_SECONDS)


def subcall(prompt: str) -> str:
    task, _, text = prompt.partition("\n\n")
    if match := re.match(r"Find the access code of agent (\w+)", task):
        found = re.search(rf"agent {match.group(1)}'s access code is (\w+)", text)
        return found.group(1) if found else "NONE"
    if match := re.match(r"Count the records about (\w+)", task):
        return str(text.count(f" asked about {match.group(1)}."))
    return "I cannot do this."


def subcall_seconds(prompt: str) -> float:
    return SUBCALL_SECONDS + len(prompt) / SUBCALL_CHARS_PER_SECOND


def respond(body: dict[str, Any]) -> Reply:
    messages = body["messages"]
    if messages[0]["role"] == "system" and ROOT_MARKER in messages[0]["content"]:
        return root_turn(body)
    prompt = messages[-1]["content"]
    return Reply(text=subcall(prompt), first_byte_delay=subcall_seconds(prompt))


class ScriptedRlmModel(FakeOpenAI):
    def __init__(self) -> None:
        super().__init__(models=["bench-model"])
        self.respond_with(respond)
        self.app.router.add_get("/readyz", self._ready)

    async def _ready(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ready"})

    def _next_reply(self, body: dict[str, Any]) -> Reply:
        # 32 MB of prompts need not stay in this process's memory.
        self.history.clear()
        self.headers.clear()
        self.peers.clear()
        return super()._next_reply(body)


async def serve(port: int) -> None:
    model = ScriptedRlmModel()
    runner = web.AppRunner(model.app, handler_cancellation=True, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.rlm_model")
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(serve(parser.parse_args().port))


if __name__ == "__main__":
    main()
