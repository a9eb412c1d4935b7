"""What the root model is told: the system prompt, the first message describing the task,
the feedback after each turn, and the one request for a best answer when turns run out.

Written for this project (the method follows Zhang, Kraska, Khattab, "Recursive Language
Models"; the wording is ours). Kept apart from the engine so it can be read and tuned as text.
"""

from __future__ import annotations

SYSTEM_PROMPT = """\
You answer a question using a persistent Python REPL. The material to answer from is in \
the REPL variable `context`, which may be far larger than you could read at once: look at \
it with code instead of asking to see it.

What the REPL offers
- `context`: {context_kind}
- `llm_query(prompt: str) -> str` asks a helper language model and returns its answer. The \
helper sees nothing but the prompt you pass (at most {max_prompt_chars:,} characters), so put \
the instructions and the piece of `context` it needs into the prompt.
- `llm_query_batched(prompts: list[str]) -> list[str]` asks many prompts at once, in \
parallel, and returns the answers in the same order. Use it to map over chunks of `context`, \
then combine the answers (with code, or with one more `llm_query`).{recursion}
- Variables, functions and imports persist from one block to the next. Only the Python \
standard library is available; there is no network. Use print() to see values; output over \
{output_chars:,} characters is cut, so print samples, counts and summaries, not whole chunks.

How to work
- Each turn, think briefly, then write one code block fenced as ```repl and closed with ```. \
Stop right after the closing fence: the REPL runs the block, and the next message shows its \
real output. Never write the output yourself.
- Start by measuring `context` (type, length, a few samples), then search, slice and \
delegate with code. Check what you find before you answer.

How to finish: only from code, inside a ```repl block
- `FINAL(value)` ends the job; `str(value)` is the answer shown to the user.
- `FINAL_VAR("name")` ends the job with the value of the REPL variable `name`.
- Or set `answer["content"] = "..."` and then `answer["ready"] = True`.
Writing FINAL in ordinary text does nothing. The answer is what the user reads: complete, \
in the language of the question, in Markdown where it helps.

You have at most {max_iterations} turns."""

USER_INSTRUCTIONS = """

The user's conversation settings ask the following of the final answer:
{instructions}"""

RECURSION = """
- `rlm_query(prompt: str, context=None) -> str` hands a sub-task to a sub-RLM: a helper \
with a REPL of its own whose `context` is the `context` you pass (a str or a list of str; \
the prompt itself when None). It costs more than `llm_query`; use it for a piece that needs \
code of its own (a long document to search), not for a short question."""

FIRST_MESSAGE = """\
The question:
{question}

About `context`: {context_summary}

Begin by looking at `context` in a ```repl block."""

TURN_FEEDBACK = """\
{outputs}

(Turn {iteration} of {max_iterations} done. The question: {question_reminder}
Write the next ```repl block, or finish from code with FINAL(...), FINAL_VAR("name") or \
answer["ready"] = True.)"""

NO_CODE = """\
Your last reply had no complete ```repl code block, so nothing ran and nothing was taken as \
the answer (FINAL written in plain text does nothing).{cut_note} Write a ```repl block; to \
finish, call FINAL(...) inside it.

(Turn {iteration} of {max_iterations} done. The question: {question_reminder})"""

CUT_NOTE = " Your reply was cut off by the length limit: keep code blocks short."

FORCE_ANSWER = """\
You have used all {max_iterations} turns; no more code will run. Reply now with your best \
final answer to the question, as plain text for the user, using what you found so far.

The question: {question_reminder}"""

FORCED_NOTE = "*(Best answer forced after {max_iterations} RLM turns without a final answer from code.)*\n\n"

QUESTION_REMINDER_CHARS = 500
QUESTION_CHARS = 4000
PREVIEW_CHARS = 500


def system_prompt(
    *,
    context: str | list[str],
    max_prompt_chars: int,
    output_chars: int,
    max_iterations: int,
    instructions: str,
    recursion: bool = False,
) -> str:
    text = SYSTEM_PROMPT.format(
        context_kind=context_kind(context),
        recursion=RECURSION if recursion else "",
        max_prompt_chars=max_prompt_chars,
        output_chars=output_chars,
        max_iterations=max_iterations,
    )
    if instructions.strip():
        text += USER_INSTRUCTIONS.format(instructions=instructions.strip())
    return text


def context_kind(context: str | list[str]) -> str:
    if isinstance(context, str):
        return "a string (str)."
    if getattr(context, "names", None) is not None:
        return (
            "a list of documents (the user's attached files), in order. Each document is a str "
            "(its whole text) with the file's name in `.name`: `for doc in context: "
            "print(doc.name, len(doc))`."
        )
    return "a list of strings, one per earlier message of the conversation, each starting with its role."


def first_message(question: str, context: str | list[str], question_is_context: bool) -> str:
    return FIRST_MESSAGE.format(
        question=shorten(question, QUESTION_CHARS, "the whole message is in `context`"),
        context_summary=context_summary(context, question_is_context),
    )


def context_summary(context: str | list[str], question_is_context: bool) -> str:
    if isinstance(context, str):
        origin = (
            "it is the text of the question's message itself (there were no earlier messages)"
            if question_is_context
            else "it is the earlier message of the conversation"
        )
        lines = context.count("\n") + 1
        preview = shorten(context, PREVIEW_CHARS, "preview ends here")
        return (
            f"a str of {len(context):,} characters in {lines:,} lines; {origin}. "
            f"Its start:\n```text\n{preview}\n```"
        )
    names = getattr(context, "names", None)
    if names is not None:
        return documents_summary(context, names)
    sizes = ", ".join(f"{len(item):,}" for item in context[:20])
    more = f", … ({len(context) - 20} more)" if len(context) > 20 else ""
    total = sum(len(item) for item in context)
    return (
        f"a list of {len(context)} strings, {total:,} characters in all: the earlier messages of "
        f"the conversation in order, each prefixed with its role ('user: ', 'assistant: '). "
        f"Their lengths: [{sizes}{more}]."
    )


def documents_summary(context: list[str], names: list[str]) -> str:
    total = sum(len(item) for item in context)
    listed = "\n".join(
        f"- {name!r}: {len(text):,} characters" for name, text in zip(names[:50], context[:50], strict=True)
    )
    more = f"\n- … ({len(context) - 50} more)" if len(context) > 50 else ""
    return (
        f"a list of {len(context)} documents, {total:,} characters in all "
        f"(index, name, size):\n{listed}{more}"
    )


def turn_feedback(outputs: list[str], iteration: int, max_iterations: int, question: str) -> str:
    return TURN_FEEDBACK.format(
        outputs="\n\n".join(outputs),
        iteration=iteration,
        max_iterations=max_iterations,
        question_reminder=reminder(question),
    )


def no_code(iteration: int, max_iterations: int, question: str, *, cut: bool) -> str:
    return NO_CODE.format(
        cut_note=CUT_NOTE if cut else "",
        iteration=iteration,
        max_iterations=max_iterations,
        question_reminder=reminder(question),
    )


def force_answer(max_iterations: int, question: str) -> str:
    return FORCE_ANSWER.format(max_iterations=max_iterations, question_reminder=reminder(question))


def forced_note(max_iterations: int) -> str:
    return FORCED_NOTE.format(max_iterations=max_iterations)


def cell_output(
    *,
    index: int,
    stdout: str,
    stderr: str,
    error: str | None,
    variables: list[str],
    output_chars: int,
) -> str:
    """One cell's result as the root model reads it, cut to `output_chars` overall."""
    parts = [f"REPL output of block {index}:"]
    budget = output_chars
    for label, text in (("stdout", stdout), ("stderr", stderr), ("error", error or "")):
        if not text:
            continue
        shown = shorten(text, max(200, budget), "print less, or print a slice")
        budget = max(0, budget - len(shown))
        parts.append(f"{label}:\n```text\n{shown}\n```")
    if len(parts) == 1:
        parts.append("(no output; print() what you want to see)")
    if variables:
        names = ", ".join(variables[:60]) + (", …" if len(variables) > 60 else "")
        parts.append(f"Variables defined: {names}")
    return "\n".join(parts)


def shorten(text: str, limit: int, hint: str) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n[… {len(text) - limit:,} more characters not shown; {hint}]"


def reminder(question: str) -> str:
    return shorten(question.strip(), QUESTION_REMINDER_CHARS, "see the first message")
