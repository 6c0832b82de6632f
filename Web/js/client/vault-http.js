/**
 * What every vault transfer relies on: the raw request (tus, downloads) that bypasses Api's JSON
 * handling, abort detection, waiting between retries, and progress reports.
 * @module client/vault-http
 */
import { ApiError } from './api.js';

/** Whether `error` is an abort (a pause), which callers pass on rather than retry. */
export function isAbort(error) {
  return error?.name === 'AbortError';
}

/** Waits `ms` milliseconds; rejects with an AbortError as soon as `signal` aborts. */
export function sleep(ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new DOMException('aborted', 'AbortError'));
      return;
    }
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', stop);
      resolve();
    }, ms);
    const stop = () => {
      clearTimeout(timer);
      reject(new DOMException('aborted', 'AbortError'));
    };
    signal?.addEventListener('abort', stop, { once: true });
  });
}

/** The ApiError of a non-2xx answer (problem+json when the server sent one). */
async function problemOf(response) {
  let object = null;
  try {
    object = JSON.parse(await response.text());
  } catch {
    object = null;
  }
  const header = response.headers.get('Retry-After');
  return new ApiError({
    status: response.status,
    type: typeof object?.type === 'string' ? object.type : `urn:circle:problem:http-${response.status}`,
    detail: typeof object?.detail === 'string' ? object.detail : response.statusText || 'request failed',
    retryAfter: header !== null && /^\d+$/.test(header.trim()) ? Number(header.trim()) : null,
  });
}

/**
 * One raw request (tus, downloads): resolves to the Response when it is 2xx, else throws its
 * ApiError; a transport failure is an ApiError of status 0 and an abort stays an AbortError.
 */
export async function send(path, { method = 'GET', headers = {}, body, signal, token = null, onUnauthorized = null } = {}) {
  const all = { ...headers };
  if (token) all.Authorization = `Bearer ${token}`;
  let response;
  try {
    response = await fetch(path, { method, headers: all, body, signal, credentials: 'omit', cache: 'no-store', redirect: 'error' });
  } catch (error) {
    if (isAbort(error) || signal?.aborted) throw error;
    throw new ApiError({ status: 0, type: 'transport', detail: String(error?.message ?? error) });
  }
  if (!response.ok) {
    const error = await problemOf(response);
    if (error.status === 401 && token && onUnauthorized) onUnauthorized(error);
    throw error;
  }
  return response;
}

/** A `(stage, done, total)` progress function that calls `onProgress` and shields the transfer from its failures. */
export function reporter(onProgress, handle) {
  return (stage, done, total) => {
    try {
      onProgress?.({ stage, done, total, handle });
    } catch {
      // A UI callback failing must not break the transfer.
    }
  };
}
