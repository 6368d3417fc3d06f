// The public /v1 API with the pasted key: one fetch wrapper, and an error
// type that turns every answer the console can meet into a clear sentence.

const KEY_STORAGE = "voiceprod.console.apiKey";

export function getKey() {
  return sessionStorage.getItem(KEY_STORAGE) || "";
}

export function setKey(key) {
  sessionStorage.setItem(KEY_STORAGE, key);
}

export function forgetKey() {
  sessionStorage.removeItem(KEY_STORAGE);
}

/** What a secret looks like (docs/api.md): `vp_` + 40 base62 characters. */
export function looksLikeKey(key) {
  return /^vp_[0-9A-Za-z]{40}$/.test(key);
}

export class ApiError extends Error {
  constructor({ status, code, type, message, param, retryAfter, requestId }) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.code = code || "";
    this.type = type || "";
    this.param = param || "";
    this.retryAfter = retryAfter;
    this.requestId = requestId || "";
  }

  /** A sentence for a person, saying what happened and what to do. */
  get friendly() {
    const server = this.message ? ` (${this.message})` : "";
    const wait = this.retryAfter ? ` Try again in ${this.retryAfter} s.` : " Try again shortly.";
    switch (this.status) {
      case 0:
        return "Cannot reach the API: the gateway is down or the network failed.";
      case 400:
        return `The request was refused${server}.`;
      case 401:
        switch (this.code) {
          case "key_revoked":
            return "This API key has been revoked. Paste another key.";
          case "key_expired":
            return "This API key has expired. Paste another key.";
          case "missing_api_key":
            return "No API key: paste one to use the console.";
          default:
            return "This API key is not valid. Check it, or paste another key.";
        }
      case 402:
        if (this.code === "key_credit_limit") {
          return `This key has reached its credit limit${server}.`;
        }
        return `Not enough credits left in this period${server}.`;
      case 403:
        if (this.code === "plan_required") {
          return "The workspace's plan does not include API access.";
        }
        return `This key is not allowed to do that${server}.`;
      case 404:
        return `Not found: it may have been deleted${server}.`;
      case 409:
        return `Conflict${server}.`;
      case 413:
        return `Too large${server}.`;
      case 415:
        return `Unsupported content type${server}.`;
      case 422:
        return `The request cannot be used${server}.`;
      case 429:
        return `Too many requests: rate limited.${wait}`;
      case 503:
        return `The service is temporarily unavailable; nothing was charged.${wait}`;
      default:
        return `Unexpected error ${this.status}${server}${this.requestId ? ` — request id ${this.requestId}` : ""}.`;
    }
  }
}

let onUnauthorized = () => {};

/** Called with the error when any request is answered 401. */
export function setUnauthorizedHandler(handler) {
  onUnauthorized = handler;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

/**
 * `method path` with the key. Returns `{ data, response }`: the parsed JSON
 * (or null), or with `blob: true` the body as a Blob. Throws ApiError.
 */
export async function request(method, path, { body, form, params, headers, blob, key } = {}) {
  const h = new Headers(headers || {});
  h.set("Authorization", `Bearer ${key || getKey()}`);
  const init = { method, headers: h, cache: "no-store", credentials: "omit" };
  if (body !== undefined) {
    h.set("Content-Type", "application/json");
    init.body = JSON.stringify(body);
  } else if (form !== undefined) {
    // multipart/form-data: the browser writes the header with its boundary.
    init.body = form;
  }
  let response;
  try {
    response = await fetch(`/v1${path}${query(params)}`, init);
  } catch (e) {
    throw new ApiError({ status: 0, message: String(e && e.message ? e.message : e) });
  }
  if (!response.ok) {
    let envelope = {};
    try {
      envelope = (await response.json()).error || {};
    } catch {
      // Not our envelope (a proxy's page): the status says enough.
    }
    const retry = Number.parseInt(response.headers.get("Retry-After") || "", 10);
    const error = new ApiError({
      status: response.status,
      code: envelope.code,
      type: envelope.type,
      message: envelope.message,
      param: envelope.param,
      retryAfter: Number.isFinite(retry) ? retry : undefined,
      requestId: response.headers.get("X-Request-Id"),
    });
    // With an explicit key (the sign-in check) the caller handles it.
    if (response.status === 401 && !key) onUnauthorized(error);
    throw error;
  }
  if (blob) return { data: await response.blob(), response };
  if (response.status === 204) return { data: null, response };
  const text = await response.text();
  return { data: text ? JSON.parse(text) : null, response };
}

export const get = (path, params, key) => request("GET", path, { params, key }).then((r) => r.data);
export const post = (path, body, headers) =>
  request("POST", path, { body, headers }).then((r) => r.data);
/** POST a FormData as multipart/form-data: `{ data, response }`. */
export const postForm = (path, form) => request("POST", path, { form });
export const patch = (path, body) => request("PATCH", path, { body }).then((r) => r.data);
export const del = (path) => request("DELETE", path).then((r) => r.data);

/** Every page of a cursor listing (`data`, `hasMore`, `nextCursor`). */
export async function getAll(path, params = {}, max = 20) {
  const all = [];
  let cursor;
  for (let i = 0; i < max; i++) {
    const page = await get(path, { ...params, cursor, limit: params.limit || 100 });
    all.push(...(page.data || []));
    if (!page.hasMore || !page.nextCursor) break;
    cursor = page.nextCursor;
  }
  return all;
}

/** `fn` again after a 429 or 503, waiting what Retry-After says (capped). */
export async function withRetry(fn, attempts = 4) {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (e) {
      if (!(e instanceof ApiError) || ![429, 503].includes(e.status) || i >= attempts) throw e;
      const seconds = Math.min(e.retryAfter || 1, 10);
      await new Promise((r) => setTimeout(r, seconds * 1000));
    }
  }
}

/** The audio of a generation, fetched with the key, as a Blob URL. */
export async function audioUrl(id) {
  const { data } = await request("GET", `/generations/${encodeURIComponent(id)}/audio`, {
    blob: true,
  });
  return { url: URL.createObjectURL(data), size: data.size, type: data.type };
}

/**
 * The preview of a voice (`id`) or of an unsaved blend (`recipe`), fetched
 * with the key, as a Blob URL. Not charged; the first request of a voice
 * waits while a worker renders it (a 503 preview_pending is waited out).
 */
export async function previewUrl({ id, recipe }) {
  const path = id ? `/voices/${encodeURIComponent(id)}/preview` : "/voices/preview";
  const params = id ? undefined : { recipe };
  const { data } = await withRetry(() => request("GET", path, { params, blob: true }), 6);
  return { url: URL.createObjectURL(data), size: data.size, type: data.type };
}
