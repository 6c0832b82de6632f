/**
 * The HTTP client for the Circle API (docs/API.md): same-origin relative URLs, JSON in and out,
 * a bearer token, and RFC 9457 problem+json answers turned into `ApiError`.
 * @module client/api
 */

/** A problem+json answer from the server, or a transport failure (status 0). */
export class ApiError extends Error {
  /**
   * @param {{status: number, type: string, detail: string, retryAfter?: number|null}} problem
   */
  constructor({ status, type, detail, retryAfter = null }) {
    super(status === 0 ? `cannot reach the server: ${detail}` : `${status} ${slugOf(type)}: ${detail}`);
    this.name = 'ApiError';
    /** HTTP status, or 0 when the server could not be reached. */
    this.status = status;
    /** The problem type, e.g. `urn:circle:problem:stale-epoch` (or `transport`). */
    this.type = type;
    /** The server's explanation. */
    this.detail = detail;
    /** Seconds to wait before trying again (429), or null. */
    this.retryAfter = retryAfter;
  }

  /** The last part of the problem type: `stale-epoch`, `not-found`, ... */
  get slug() {
    return slugOf(this.type);
  }

  /** Whether the request may succeed later unchanged (network down, server busy or restarting). */
  get transient() {
    return this.status === 0 || this.status === 429 || this.status >= 500;
  }
}

function slugOf(type) {
  const text = String(type ?? '');
  return text.slice(text.lastIndexOf(':') + 1);
}

/** How long one request may take before it counts as a transport failure. */
const TIMEOUT_MS = 30_000;

/** JSON calls to the same-origin server, with the session's token when there is one. */
export class Api {
  /**
   * @param {{token?: string|null, onUnauthorized?: (error: ApiError) => void}} [options]
   *   `onUnauthorized` is told of every 401 on an authenticated call (a revoked or unknown session).
   */
  constructor({ token = null, onUnauthorized = null } = {}) {
    /** @type {string|null} */
    this.token = token;
    this.onUnauthorized = onUnauthorized;
    /** The controllers of the calls now in flight with the session's token. */
    this.inflight = new Set();
  }

  /**
   * Abandons every call now in flight with the session's token (they reject as transport
   * failures). Signing out calls this before ending the session, so that no request still on
   * its way is answered 401 by a server that has already revoked the token.
   */
  abandonSessionCalls() {
    for (const controller of this.inflight) controller.abort('abandoned: signing out');
    this.inflight.clear();
  }

  /**
   * Sends one request; resolves to the parsed JSON answer (null for 204 or an empty body).
   * @param {'GET'|'POST'|'PUT'|'DELETE'} method
   * @param {string} path a path starting with `/api/`
   * @param {object} [body] sent as JSON
   * @param {{token?: string|null, headers?: Record<string, string>, outlivesSession?: boolean}} [options]
   *   another token than the session's (`null`: none); extra request headers; `outlivesSession`: not
   *   abandoned when the session ends (a call that ends the session itself)
   * @returns {Promise<any>}
   * @throws {ApiError}
   */
  async call(method, path, body = undefined, options = {}) {
    const token = 'token' in options ? options.token : this.token;
    // A session call once signed out (or while signing out) is not sent: the server would only say 401.
    if (!('token' in options) && token === null) {
      throw new ApiError({ status: 401, type: 'urn:circle:problem:signed-out', detail: 'not signed in on this device' });
    }
    const headers = { ...(options.headers ?? {}), Accept: 'application/json' };
    if (token) headers.Authorization = `Bearer ${token}`;
    const init = { method, headers, credentials: 'omit', cache: 'no-store', redirect: 'error' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort('timed out'), TIMEOUT_MS);
    init.signal = controller.signal;
    const tracked = token !== null && token === this.token && !options.outlivesSession;
    if (tracked) this.inflight.add(controller);
    let response;
    let text;
    try {
      response = await fetch(path, init);
      text = await response.text();
    } catch (error) {
      throw new ApiError({ status: 0, type: 'transport', detail: controller.signal.aborted ? String(controller.signal.reason) : String(error?.message ?? error) });
    } finally {
      clearTimeout(timer);
      if (tracked) this.inflight.delete(controller);
    }
    if (!response.ok) {
      const error = problem(response, text);
      if (error.status === 401 && token && token === this.token && this.onUnauthorized) this.onUnauthorized(error);
      throw error;
    }
    if (response.status === 204 || text.length === 0) return null;
    try {
      return JSON.parse(text);
    } catch {
      throw new ApiError({ status: 0, type: 'bad-answer', detail: `${method} ${path}: the answer is not JSON` });
    }
  }

  /** GET shorthand. */
  get(path) {
    return this.call('GET', path);
  }

  /** POST shorthand. */
  post(path, body) {
    return this.call('POST', path, body);
  }

  /** PUT shorthand. */
  put(path, body) {
    return this.call('PUT', path, body);
  }

  /** PATCH shorthand. */
  patch(path, body) {
    return this.call('PATCH', path, body);
  }

  /** DELETE shorthand. */
  delete(path) {
    return this.call('DELETE', path);
  }
}

/** The ApiError of a non-2xx answer: its problem+json fields when present. */
function problem(response, text) {
  let object = null;
  try {
    object = JSON.parse(text);
  } catch {
    object = null;
  }
  const header = response.headers.get('Retry-After');
  const seconds = header !== null && /^\d+$/.test(header.trim()) ? Number(header.trim()) : null;
  return new ApiError({
    status: response.status,
    type: typeof object?.type === 'string' ? object.type : `urn:circle:problem:http-${response.status}`,
    detail: typeof object?.detail === 'string' ? object.detail : response.statusText || 'request failed',
    retryAfter: seconds,
  });
}
