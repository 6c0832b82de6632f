/**
 * The tus 1.0 requests of a vault upload (docs/API.md "Vault"): creating it, asking its offset,
 * sending a part with its SHA-256 checksum, abandoning it. `vault` is the account's Vault, whose
 * `request` carries the session token; `record` is the upload's record (see vault-upload.js).
 * @module client/vault-tus
 */
import { ProtocolError } from '../protocol/bytes.js';
import { ApiError } from './api.js';
import { sleep } from './vault-http.js';

const TUS_VERSION = '1.0.0';
const UPLOADS_PATH = '/api/v1/vault/uploads';
/** How many times a request that failed transiently (or found the upload busy) is tried again. */
export const RETRIES = 5;

/** Standard padded base64 (the `Upload-Checksum` header). */
function base64(bytes) {
  let text = '';
  for (let offset = 0; offset < bytes.length; offset += 0x8000) text += String.fromCharCode(...bytes.subarray(offset, offset + 0x8000));
  return btoa(text);
}

/**
 * Creates an upload of `length` ciphertext bytes described by the tus metadata `fields`
 * (`[key, value]` pairs); resolves to its URL, refused unless it is one of the server's upload paths.
 */
export async function createUpload(vault, length, fields) {
  const created = await vault.request(UPLOADS_PATH, {
    method: 'POST',
    headers: {
      'Tus-Resumable': TUS_VERSION,
      'Upload-Length': String(length),
      'Upload-Metadata': fields.map(([key, value]) => `${key} ${btoa(value)}`).join(','),
    },
  });
  const location = created.headers.get('Location') ?? '';
  if (!location.startsWith(`${UPLOADS_PATH}/`) || !/^[0-9a-f]{32}$/i.test(location.slice(UPLOADS_PATH.length + 1))) {
    throw new ProtocolError('refused', 'the server answered the upload with an unexpected location');
  }
  return location;
}

/** The server's offset for an upload, or null when it has none (finished, expired or gone). */
export async function serverOffset(vault, record, signal) {
  try {
    const answer = await vault.request(record.uploadUrl, { method: 'HEAD', headers: { 'Tus-Resumable': TUS_VERSION }, signal });
    const offset = Number(answer.headers.get('Upload-Offset'));
    if (!Number.isSafeInteger(offset) || offset < 0 || offset > record.length) throw new ProtocolError('refused', 'the server reported an impossible upload offset');
    return offset;
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) return null;
    throw error;
  }
}

/** Sends `body` at `offset` (a PATCH with its checksum); resolves to the new offset, refused unless the server took all of it. */
export async function sendPart(vault, record, offset, body, signal) {
  const checksum = base64(new Uint8Array(await crypto.subtle.digest('SHA-256', body)));
  const answer = await vault.request(record.uploadUrl, {
    method: 'PATCH',
    headers: {
      'Tus-Resumable': TUS_VERSION,
      'Upload-Offset': String(offset),
      'Content-Type': 'application/offset+octet-stream',
      'Upload-Checksum': `sha256 ${checksum}`,
    },
    body,
    signal,
  });
  const next = Number(answer.headers.get('Upload-Offset'));
  if (next !== offset + body.length) throw new ProtocolError('refused', `the server acknowledged offset ${next}, not ${offset + body.length}`);
  return next;
}

/** Deletes an upload on the server (which releases its bytes and quota); one already gone counts as deleted. */
export async function deleteUpload(vault, record) {
  for (let attempt = 0; ; attempt++) {
    try {
      await vault.request(record.uploadUrl, { method: 'DELETE', headers: { 'Tus-Resumable': TUS_VERSION } });
      return;
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return;
      // 409 upload-busy: a request that was just aborted may still be writing.
      if (!(error instanceof ApiError && (error.status === 409 || error.transient)) || attempt >= RETRIES) throw error;
      await sleep(Math.min(4000, 200 * 2 ** attempt));
    }
  }
}
