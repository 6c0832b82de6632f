/**
 * Downloads from the vault: the ciphertext is gathered into Blobs (out of the JS heap) while it
 * is hashed, refused unless its length and SHA-256 are the announced ones, and only then opened
 * chunk by chunk with StreamOpener (PROTOCOL 9); an incomplete or altered file is refused.
 * @module client/vault-download
 */
import { ProtocolError, equal, fromB64u } from '../protocol/bytes.js';
import { Sha256, StreamOpener, ciphertextLength, openMetadata } from '../protocol/vault.js';
import { READ_SLICE, malformed } from './vault-bytes.js';
import { fileInfo, ownKey } from './vault-files.js';
import { reporter } from './vault-http.js';

/** Downloaded or decrypted bytes gathered before they are handed to a Blob (out of the JS heap). */
const BLOB_PART = 16 * 1024 * 1024;
/** What a decrypted file's Blob is typed as: never something a browser would run. */
const SAVE_TYPE = 'application/octet-stream';

/**
 * Reads a response body into a Blob while hashing it; refuses a length other than `length` and
 * a hash other than `sha256` (when given) before anything is opened.
 */
export async function fetchCiphertext(response, { length, sha256, report, signal }) {
  const reader = response.body.getReader();
  const hash = new Sha256();
  const blobs = [];
  let parts = [];
  let partLength = 0;
  let received = 0;
  report('downloading', 0, length);
  try {
    for (;;) {
      if (signal?.aborted) throw new DOMException('aborted', 'AbortError');
      const { done, value } = await reader.read();
      if (done) break;
      received += value.length;
      if (received > length) throw malformed('the server sent more bytes than the file has');
      hash.update(value);
      parts.push(value);
      partLength += value.length;
      if (partLength >= BLOB_PART) {
        blobs.push(new Blob(parts));
        parts = [];
        partLength = 0;
      }
      report('downloading', received, length);
    }
  } finally {
    reader.releaseLock();
  }
  if (received !== length) throw malformed(`the download ended after ${received} of ${length} bytes`);
  if (sha256 && !equal(hash.digest(), sha256)) {
    throw new ProtocolError('refused', 'the downloaded file does not have the SHA-256 it was announced with: it was not opened');
  }
  blobs.push(new Blob(parts));
  return new Blob(blobs);
}

/** Opens a payload (a Blob) chunk by chunk; resolves to the content once the final chunk verified. */
export async function openPayload(ciphertext, { fileKey, size, report, signal }) {
  const opener = StreamOpener.create(fileKey, size);
  const blobs = [];
  let parts = [];
  let partLength = 0;
  report('decrypting', 0, size);
  for (let offset = 0; offset < ciphertext.size; offset += READ_SLICE) {
    if (signal?.aborted) throw new DOMException('aborted', 'AbortError');
    const bytes = new Uint8Array(await ciphertext.slice(offset, Math.min(ciphertext.size, offset + READ_SLICE)).arrayBuffer());
    const plain = await opener.open(bytes);
    if (plain.length) {
      parts.push(plain);
      partLength += plain.length;
    }
    if (partLength >= BLOB_PART) {
      blobs.push(new Blob(parts));
      parts = [];
      partLength = 0;
    }
    report('decrypting', opener.produced, size);
  }
  opener.finish();
  blobs.push(new Blob(parts));
  const plaintext = new Blob(blobs, { type: SAVE_TYPE });
  if (plaintext.size !== size) throw malformed('the file opened to another size than its metadata says');
  return plaintext;
}

/** Downloads a vault file's content at `path` with the account's token, verifies and opens it. */
export async function fetchAndOpen(vault, path, { fileKey, size, length, sha256, onProgress, signal }) {
  const report = reporter(onProgress, null);
  const response = await vault.request(path, { signal });
  const ciphertext = await fetchCiphertext(response, { length, sha256, report, signal });
  return openPayload(ciphertext, { fileKey, size, report, signal });
}

/**
 * One of this account's files, decrypted: a Blob of its content (typed
 * application/octet-stream). The ciphertext is checked against the server's SHA-256 and
 * every chunk against its tag; an incomplete file is refused.
 * @param {import('./vault.js').Vault} vault
 * @param {string} fileId
 * @param {{onProgress?: (p: {stage: 'downloading'|'decrypting', done: number, total: number}) => void, signal?: AbortSignal}} [options]
 * @returns {Promise<Blob>}
 */
export async function download(vault, fileId, { onProgress, signal } = {}) {
  const account = vault.account();
  const info = await fileInfo(vault, fileId);
  const fileKey = await ownKey(account, info);
  try {
    const meta = await openMetadata(fromB64u(info.meta), fileKey, fromB64u(info.id));
    if (ciphertextLength(meta.size) !== info.size) throw malformed('the stored length does not match the file size in its metadata');
    return await fetchAndOpen(vault, `/api/v1/vault/files/${encodeURIComponent(info.id)}/content`, {
      fileKey, size: meta.size, length: info.size, sha256: fromB64u(info.sha256), onProgress, signal,
    });
  } finally {
    fileKey.fill(0);
  }
}
