// Lexing a streamed answer without starting over on every frame.
//
// Lexing the whole answer on each frame costs time in proportion to its length, so a
// 20,000-token answer would get slower with every token. A streamed answer only grows at its
// end, and a markdown block that is followed by a blank line and then by another block can no
// longer change. So each update keeps the settled blocks of the previous one and lexes again
// only the text from the last two blocks on. The result is the same token list a full lex
// would give; wherever that cannot be promised, the whole text is lexed as before:
//   - the text is not the previous text plus more (an edit, a regenerated answer);
//   - link reference definitions exist: `[x]: url` anywhere changes links in any block;
//   - the lexer's pieces do not add up to exactly the text (a case it rewrites).
// A paragraph with a line that opens display math (`$$`, `\[`) it has not closed may yet be
// swallowed by a closing delimiter any number of blocks later: nothing after it is settled.

const DISPLAY_MATH_OPENER = /^ {0,3}(\$\$|\\\[)/m;

// tokens: the top-level tokens (spaces included); starts: where each begins in the text;
// openMath: the indexes of paragraphs holding an open display math (a few, usually none);
// blocks: the tokens without the spaces, one element each on screen.
function stateOf(text, tokens, starts, openMath, { incremental, links }) {
  const blocks = tokens.filter((t) => t.type !== "space");
  return { text, tokens, starts, openMath, incremental, links, blocks };
}

function openMathIndexes(tokens, offset) {
  const found = [];
  tokens.forEach((token, i) => {
    if (token.type === "paragraph" && DISPLAY_MATH_OPENER.test(token.raw)) found.push(offset + i);
  });
  return found;
}

function startsOf(tokens, offset) {
  const starts = [];
  let at = offset;
  for (const token of tokens) {
    starts.push(at);
    at += token.raw.length;
  }
  return { starts, end: at };
}

function hasLinks(tokens) {
  for (const _ in tokens.links) return true;
  return false;
}

export function lexWhole(lex, text) {
  const tokens = lex(text);
  const { starts, end } = startsOf(tokens, 0);
  const incremental = end === text.length && !hasLinks(tokens);
  return stateOf(text, tokens, starts, openMathIndexes(tokens, 0), { incremental, links: tokens.links });
}

// Index of the first token to lex again: two blocks back from the end, then further back
// until a blank line separates it from what stays, and never after an open display math.
function restartIndex({ tokens, openMath }) {
  let index = tokens.length;
  let blocks = 0;
  while (index > 0 && blocks < 2) {
    index--;
    if (tokens[index].type !== "space") blocks++;
  }
  while (index > 0 && tokens[index - 1].type !== "space") index--;
  return openMath.length ? Math.min(index, openMath[0]) : index;
}

export function lexGrowing(lex, text, previous) {
  if (!previous?.incremental || text.length < previous.text.length || !text.startsWith(previous.text)) {
    return lexWhole(lex, text);
  }
  const keep = restartIndex(previous);
  if (keep === 0) return lexWhole(lex, text);
  const from = previous.starts[keep];
  const tail = lex(text.slice(from));
  const { starts, end } = startsOf(tail, from);
  if (end !== text.length || hasLinks(tail)) return lexWhole(lex, text);
  const tokens = previous.tokens.slice(0, keep).concat(tail);
  const openMath = previous.openMath.filter((i) => i < keep).concat(openMathIndexes(tail, keep));
  return stateOf(text, tokens, previous.starts.slice(0, keep).concat(starts), openMath, {
    incremental: true,
    links: previous.links,
  });
}
