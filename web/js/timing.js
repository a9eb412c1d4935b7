// Times one answer as the browser sees it: from sending to the first piece (reasoning or
// answer) and from there to the end. ui/usage.js shows the result under the answer.

export function startTiming(now = () => performance.now()) {
  const sent = now();
  let first = null;
  return {
    saw(event) {
      if (first === null && (event.type === "content" || event.type === "reasoning")) first = now();
    },
    result() {
      if (first === null) return undefined;
      return { ttftMs: Math.round(first - sent), generationMs: Math.round(now() - first) };
    },
  };
}
