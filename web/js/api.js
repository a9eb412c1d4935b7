// The only module that talks to the server. Streams come back as typed events:
//   {type: "content", text} | {type: "reasoning", text} | {type: "status", text} | {type: "image", image, prompt, text}
//   {type: "rlm", step} | {type: "error", message, code} | {type: "done", finishReason, usage}
// A stream that closes without `done` yields {type: "cutoff"} so the UI can offer a retry.

export class ApiError extends Error {
  constructor(message, code = "error", status = 0) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

async function readError(response) {
  // Validation errors are JSON {error, detail}; anything else (a proxy page) gets a plain text.
  try {
    const body = await response.json();
    return new ApiError(body.detail || body.error || response.statusText, body.error || "error", response.status);
  } catch {
    return new ApiError(`The server answered ${response.status} ${response.statusText}.`, "http_error", response.status);
  }
}

export async function fetchConfig() {
  const response = await fetch("/api/config", { headers: { Accept: "application/json" } });
  if (!response.ok) throw await readError(response);
  return response.json();
}

export async function fetchTitle(body) {
  const response = await fetch("/api/chat/title", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw await readError(response);
  return String((await response.json()).title || "");
}

export async function validateRlmPasscode(passcode) {
  const response = await fetch("/api/rlm/validate", {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-RLM-Passcode": passcode },
    body: JSON.stringify({ passcode }),
  });
  if (response.ok) return true;
  if (response.status === 401 || response.status === 403) return false;
  throw await readError(response);
}

function toEvent(data) {
  if (data.done === true) return { type: "done", finishReason: data.finish_reason || "stop", usage: data.usage ?? null };
  if ("error" in data) return { type: "error", message: String(data.error), code: String(data.code || "error") };
  if ("image" in data) return { type: "image", image: data.image, prompt: data.prompt || "", text: data.content || "" };
  if ("rlm" in data) return { type: "rlm", step: data.rlm };
  if ("status" in data) return { type: "status", text: String(data.status) };
  if ("content" in data) return { type: "content", text: String(data.content) };
  if ("reasoning" in data) return { type: "reasoning", text: String(data.reasoning) };
  return null;
}

// Splits an SSE byte stream into the `data:` payloads of each event, however the bytes are cut.
export function createSseParser() {
  let buffer = "";
  return function feed(chunk) {
    buffer += chunk;
    const payloads = [];
    // Events end with a blank line; \r\n and \r are valid line ends too.
    const parts = buffer.split(/\r\n\r\n|\n\n|\r\r/);
    buffer = parts.pop();
    for (const block of parts) {
      const data = [];
      for (const line of block.split(/\r\n|\n|\r/)) {
        if (line.startsWith("data:")) data.push(line.slice(line[5] === " " ? 6 : 5));
        // `: keepalive` comments and other fields carry nothing for us.
      }
      if (data.length) payloads.push(data.join("\n"));
    }
    return payloads;
  };
}

export async function* streamChat(body, { signal, passcode } = {}) {
  const headers = { "Content-Type": "application/json", Accept: "text/event-stream" };
  if (passcode) headers["X-RLM-Passcode"] = passcode;
  // A Blob body (a request with documents) is uploaded from the blob store as it is.
  const payload = body instanceof Blob ? body : JSON.stringify(body);
  const response = await fetch("/api/chat/stream", { method: "POST", headers, body: payload, signal });
  if (!response.ok) throw await readError(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const feed = createSseParser();
  let sawDone = false;
  try {
    while (!sawDone) {
      let chunk;
      try {
        chunk = await reader.read();
      } catch (error) {
        if (signal?.aborted) throw error;
        break; // the connection broke: reported below as cut off
      }
      if (chunk.done) break;
      for (const payload of feed(chunk.value)) {
        let data;
        try {
          data = JSON.parse(payload);
        } catch {
          continue; // a malformed event is skipped, never fatal
        }
        const event = data && typeof data === "object" ? toEvent(data) : null;
        if (!event) continue;
        yield event;
        if (event.type === "done") {
          sawDone = true;
          break;
        }
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
  if (!sawDone) yield { type: "cutoff" };
}
