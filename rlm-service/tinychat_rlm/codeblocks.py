"""Finding the code a root-model reply asks to run.

Only fenced blocks tagged ```repl or ```python run; anything else in the reply is prose,
including any FINAL(...) written there. Generation stops at the first closing fence (the
`STOP` sequence, which the API strips), so the last block of a reply usually has no closing
fence: it counts as complete when the reply ended normally, and not when it was cut by a
length limit.
"""

from __future__ import annotations

import re

CODE_LANGUAGES = ("repl", "python", "py")

# A closing fence on its own line: where the root model's turn should end.
STOP = ["\n```\n"]

_OPENING = re.compile(r"^[ \t]*```[ \t]*(?P<lang>[A-Za-z0-9_+-]*)[ \t]*$", re.MULTILINE)
_CLOSING = re.compile(r"^[ \t]*```[ \t]*$", re.MULTILINE)


def code_blocks(reply: str, *, ended_normally: bool = True) -> list[str]:
    """The code of each runnable block, in order."""
    blocks: list[str] = []
    position = 0
    while True:
        opening = _OPENING.search(reply, position)
        if opening is None:
            return blocks
        body_start = opening.end() + 1
        closing = _CLOSING.search(reply, body_start)
        runnable = opening.group("lang").lower() in CODE_LANGUAGES
        if closing is None:
            if runnable and ended_normally:
                _add(blocks, reply[body_start:])
            return blocks
        if runnable:
            _add(blocks, reply[body_start : closing.start()])
        position = closing.end()


def _add(blocks: list[str], code: str) -> None:
    code = code.strip("\n")
    if code.strip():
        blocks.append(code)
