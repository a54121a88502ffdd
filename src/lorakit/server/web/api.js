// The server's public API, as the page calls it: the key from this browser session, errors as the API words them.
const KEY = "lorakit.key";

export class ApiError extends Error {
  constructor(status, error) {
    super(error.message || `HTTP ${status}`);
    this.status = status;
    this.code = error.code || null;
    this.param = error.param || null;
  }
}

export const key = () => sessionStorage.getItem(KEY);
export const setKey = (value) => sessionStorage.setItem(KEY, value);
export const forgetKey = () => sessionStorage.removeItem(KEY);

function headers(json) {
  const out = {};
  if (key()) out.Authorization = `Bearer ${key()}`;
  if (json) out["Content-Type"] = "application/json";
  return out;
}

async function failed(response) {
  let error = { message: `${response.status} ${response.statusText}` };
  try {
    const body = await response.json();
    if (body && body.error) error = body.error;
  } catch (_) { /* not JSON: the status line says it */ }
  const err = new ApiError(response.status, error);
  if (response.status === 401) window.dispatchEvent(new CustomEvent("lorakit:key", { detail: err }));
  return err;
}

// One call: `body` is sent as JSON, or as it is when it is FormData (an upload).
export async function call(method, path, body, signal) {
  const form = body instanceof FormData;
  const response = await fetch(path, {
    method, signal, headers: headers(body !== undefined && !form),
    body: body === undefined ? undefined : form ? body : JSON.stringify(body),
  });
  if (!response.ok) throw await failed(response);
  return response.json();
}

export const get = (path) => call("GET", path);

// Every item of a paged list (OpenAI's cursor paging), following has_more.
export async function everything(path, limit = 100) {
  const out = [];
  let after = null;
  for (;;) {
    const sep = path.includes("?") ? "&" : "?";
    const page = await get(`${path}${sep}limit=${limit}${after ? `&after=${encodeURIComponent(after)}` : ""}`);
    out.push(...page.data);
    if (!page.has_more || !page.data.length) return out;
    after = page.data[page.data.length - 1].id;
  }
}

// Server-sent events of a streamed request: each `data:` object, until [DONE].
export async function* stream(path, body, signal) {
  const response = await fetch(path, { method: "POST", signal, headers: headers(true), body: JSON.stringify(body) });
  if (!response.ok) throw await failed(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const data = line.slice(5).trim();
        if (data === "[DONE]") return;
        const parsed = JSON.parse(data);
        if (parsed.error) throw new ApiError(500, parsed.error);
        yield parsed;
      }
    }
  }
}
