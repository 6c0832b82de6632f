/**
 * The encrypted file vault for the browser (docs/PROTOCOL.md section 9, docs/API.md "Vault"):
 * streaming uploads over tus 1.0 (a file is read in slices, sealed with StreamSealer, hashed with
 * the incremental SHA-256 and sent in PATCHes of a few MiB with `Upload-Checksum: sha256`, never
 * whole in memory), pause and resume, verification against the server's hash of the stored file,
 * downloads opened chunk by chunk, share links, and conversation attachments.
 *
 * Resuming: an unfinished upload is kept in the account record (`account.uploads`, IndexedDB)
 * with its payload salt and the file key wrapped under the vault wrap key (never the raw key).
 * Sealing is deterministic for a given key and salt, so a resumed upload seals the file again
 * from the start, hashes every byte, and sends only those after the server's offset.
 *
 * Attachment content (PROTOCOL 9.4; content type 4 inside the padded message content): the UTF-8
 * bytes of one JSON object, no byte-order mark, with exactly these members in this order
 *   {"v":1,"fileId":B64U(16 bytes),"fileKey":B64U(32 bytes),"name":TEXT(1..1024 UTF-8 bytes),
 *    "type":TEXT(0..255 UTF-8 bytes),"size":N(content bytes, an integer 0..2^53-1),
 *    "sha256":B64U(32 bytes: SHA-256 of the whole stored payload, salt header included)}
 * where B64U is unpadded base64url. A receiver refuses any other `v`, a missing member, a value
 * of another type or length; unknown members are ignored.
 * @module client/vault
 */
import { ProtocolError, b64u, equal, fromB64u, fromUtf8, random, utf8 } from '../protocol/bytes.js';
import { CONTENT_TYPES } from '../protocol/message.js';
import {
  FILE_ID_SIZE, FILE_KEY_SIZE, LINK_ITERATIONS, LINK_KEY_SIZE, LINK_ID_SIZE, MAXIMUM_NAME, MAXIMUM_TYPE, SALT_SIZE, Sha256,
  StreamOpener, StreamSealer, ciphertextLength, generateFileId, generateFileKey, generateLink, generateLinkSalt, linkSecrets,
  openMetadata, sealMetadata, unwrapFileKey, unwrapFromLink, wrapFileKey, wrapForLink,
} from '../protocol/vault.js';
import { Api, ApiError } from './api.js';
import { RefusedError } from './errors.js';

const TUS_VERSION = '1.0.0';
const UPLOADS_PATH = '/api/v1/vault/uploads';
/** Plaintext read from the file at a time. */
const READ_SLICE = 1024 * 1024;
/** Ciphertext bytes per PATCH (about; a PATCH ends at a sealed slice). */
const PATCH_SIZE = 4 * 1024 * 1024;
/** Downloaded or decrypted bytes gathered before they are handed to a Blob (out of the JS heap). */
const BLOB_PART = 16 * 1024 * 1024;
const RETRIES = 5;
/** Conversation files of disappearing conversations expire with the messages (at most a year ahead). */
const MAXIMUM_LIFETIME_MS = 364 * 86_400_000;
/** What a decrypted file's Blob is typed as: never something a browser would run. */
const SAVE_TYPE = 'application/octet-stream';

/** An upload stopped by its AbortSignal (pause); `handle` resumes it with `resumeUpload`. */
export class UploadPausedError extends Error {
  /** @param {string} handle */
  constructor(handle) {
    super('the upload is paused');
    this.name = 'AbortError';
    this.code = 'paused';
    this.handle = handle;
  }
}

function malformed(message) {
  return new ProtocolError('malformed', message);
}

/** Standard padded base64 (tus metadata and checksums). */
function base64(bytes) {
  let text = '';
  for (let offset = 0; offset < bytes.length; offset += 0x8000) text += String.fromCharCode(...bytes.subarray(offset, offset + 0x8000));
  return btoa(text);
}

function isAbort(error) {
  return error?.name === 'AbortError';
}

function sleep(ms, signal) {
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
async function send(path, { method = 'GET', headers = {}, body, signal, token = null, onUnauthorized = null } = {}) {
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

function reporter(onProgress, handle) {
  return (stage, done, total) => {
    try {
      onProgress?.({ stage, done, total, handle });
    } catch {
      // A UI callback failing must not break the transfer.
    }
  };
}

/**
 * Reads a response body into a Blob while hashing it; refuses a length other than `length` and
 * a hash other than `sha256` (when given) before anything is opened.
 */
async function fetchCiphertext(response, { length, sha256, report, signal }) {
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
async function openPayload(ciphertext, { fileKey, size, report, signal }) {
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

/** A file name cut (at a character boundary) to the 1,024 UTF-8 bytes metadata holds. */
function fitName(name) {
  let out = [...name].slice(0, MAXIMUM_NAME).join('');
  while (utf8(out).length > MAXIMUM_NAME) out = [...out].slice(0, -1).join('');
  return out;
}

// MARK: Attachments (PROTOCOL 9.4)

/**
 * The content bytes of an attachment message (see the module comment).
 * @param {{fileId: Uint8Array, fileKey: Uint8Array, name: string, type: string, size: number, sha256: Uint8Array}} a
 * @returns {Uint8Array}
 */
export function encodeAttachment({ fileId, fileKey, name, type, size, sha256 }) {
  return utf8(JSON.stringify({
    v: 1, fileId: b64u(fileId), fileKey: b64u(fileKey), name, type, size, sha256: b64u(sha256),
  }));
}

function bytesOf(text, length) {
  try {
    const bytes = fromB64u(text);
    return bytes.length === length ? bytes : null;
  } catch {
    return null;
  }
}

/**
 * An attachment message's content as text, checked: `{fileId, fileKey, sha256}` as base64url
 * strings of the right lengths, `name`, `type`, `size`; null when it is not a valid attachment.
 * @param {string} text
 * @returns {{fileId: string, fileKey: string, name: string, type: string, size: number, sha256: string}|null}
 */
export function parseAttachment(text) {
  let value;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (!value || typeof value !== 'object' || Array.isArray(value) || value.v !== 1) return null;
  const { fileId, fileKey, name, type, size, sha256 } = value;
  if (typeof fileId !== 'string' || !bytesOf(fileId, FILE_ID_SIZE)) return null;
  if (typeof fileKey !== 'string' || !bytesOf(fileKey, FILE_KEY_SIZE)) return null;
  if (typeof sha256 !== 'string' || !bytesOf(sha256, 32)) return null;
  if (typeof name !== 'string' || typeof type !== 'string') return null;
  const nameLength = utf8(name).length;
  if (nameLength < 1 || nameLength > MAXIMUM_NAME || utf8(type).length > MAXIMUM_TYPE) return null;
  if (!Number.isSafeInteger(size) || size < 0) return null;
  return { fileId, fileKey, name, type, size, sha256 };
}

// MARK: The signed-in account's vault

/** The vault of the signed-in account (`client.vault`); `CircleClient` exposes its methods. */
export class Vault {
  /** @param {import('./index.js').CircleClient} client */
  constructor(client) {
    this.client = client;
    /** Files of unfinished uploads held in this page, by handle (a reload needs them picked again). */
    this.files = new Map();
    /** Handles being transferred right now. */
    this.active = new Set();
  }

  clear() {
    this.files.clear();
    this.active.clear();
  }

  account() {
    const account = this.client.requireSession();
    if (!account.vaultWrapKey) throw new RefusedError('this device holds no vault key: sign out and in again to open the vault');
    return account;
  }

  request(path, options = {}) {
    return send(path, {
      ...options,
      token: this.client.account?.token ?? null,
      onUnauthorized: () => this.client.signOut('unauthorized'),
    });
  }

  /** `GET /api/v1/vault/files/{id}`. */
  fileInfo(fileId) {
    return this.client.api.get(`/api/v1/vault/files/${encodeURIComponent(fileId)}`);
  }

  /** The key of one of this account's files (from its owner wrap). */
  async ownKey(account, info) {
    if (!info.mine || !info.wrap) throw new RefusedError('only its owner opens a file from the vault; open it from its conversation');
    return unwrapFileKey(fromB64u(info.wrap), account.userId, fromB64u(info.id), account.vaultWrapKey);
  }

  /**
   * This account's files, decrypted: `[{id, name, type, size, storedSize, sha256, level,
   * conversationId, createdAt, expiresAt, links, error}]`, newest first. `links` lists a public
   * file's share links; `error` is set (and the name null) for an entry that does not open.
   */
  async list() {
    const account = this.account();
    const { files } = await this.client.api.get('/api/v1/vault/files');
    const out = [];
    for (const file of files) {
      const entry = {
        id: file.id, name: null, type: '', size: null, storedSize: file.size, sha256: file.sha256, level: file.level,
        conversationId: file.conversationId ?? null, createdAt: file.createdAt, expiresAt: file.expiresAt || 0, links: [], error: null,
      };
      try {
        const fileKey = await this.ownKey(account, file);
        const meta = await openMetadata(fromB64u(file.meta), fileKey, fromB64u(file.id));
        fileKey.fill(0);
        if (ciphertextLength(meta.size) !== file.size) throw malformed('the stored length does not match the file size in its metadata');
        Object.assign(entry, { name: meta.name, type: meta.type, size: meta.size });
      } catch (error) {
        entry.error = String(error?.message ?? error);
      }
      if (file.level === 'public') {
        try {
          entry.links = await this.links(file.id);
        } catch {
          entry.links = [];
        }
      }
      out.push(entry);
    }
    return out;
  }

  // MARK: Uploading

  /**
   * Encrypts and uploads a file, streaming (see the module comment). Resolves, once the server's
   * hash of the stored file matched, to `{id, name, type, size, storedSize, level, conversationId,
   * createdAt, expiresAt, sha256}`; an abort through `signal` rejects with UploadPausedError.
   * @param {Blob} file a File or Blob
   * @param {{name?: string, level?: 'private'|'conversation', conversationId?: string, expiresAt?: number,
   *   onProgress?: (p: {stage: 'encrypting'|'uploading'|'verifying', done: number, total: number, handle: string}) => void,
   *   signal?: AbortSignal, onHandle?: (handle: string) => void}} [options]
   */
  async upload(file, options = {}) {
    const result = await this.uploadInternal(file, options);
    result.fileKey.fill(0);
    return result.view;
  }

  async uploadInternal(file, { name, level = 'private', conversationId = null, expiresAt = 0, onProgress, signal, onHandle } = {}) {
    const account = this.account();
    if (!(file instanceof Blob)) throw new TypeError('upload takes a File or Blob');
    if (level !== 'private' && level !== 'conversation') throw new RefusedError('a file is uploaded private or to a conversation; share it by link afterwards');
    if (level === 'conversation' && !conversationId) throw new RefusedError('a conversation file needs its conversation');
    if (level !== 'conversation') conversationId = null;
    const fileName = fitName(String(name ?? file.name ?? '').trim()) || 'file';
    const type = String(file.type ?? '').slice(0, MAXIMUM_TYPE);
    const size = file.size;
    const fileKey = generateFileKey();
    const fileId = generateFileId();
    const salt = random(SALT_SIZE);
    const meta = await sealMetadata({ name: fileName, type, size }, fileKey, fileId);
    const wrap = await wrapFileKey(fileKey, account.userId, fileId, account.vaultWrapKey);
    const length = ciphertextLength(size);
    const handle = b64u(fileId);
    const fields = [['fileId', handle], ['meta', b64u(meta)], ['wrap', b64u(wrap)], ['level', level]];
    if (conversationId) fields.push(['conversationId', conversationId]);
    if (expiresAt) fields.push(['expiresAt', String(expiresAt)]);
    signal?.throwIfAborted?.();
    const created = await this.request(UPLOADS_PATH, {
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
    const record = {
      handle, fileId: handle, uploadUrl: location, salt, wrap, size, length, name: fileName, type, level, conversationId,
      expiresAt: expiresAt || 0, createdAt: Date.now(), lastModified: file.lastModified ?? 0,
    };
    account.uploads = { ...(account.uploads ?? {}), [handle]: record };
    await this.client.saveAccount();
    this.files.set(handle, file);
    try {
      onHandle?.(handle);
    } catch {
      // UI callback
    }
    return this.run(account, record, file, fileKey, { onProgress, signal });
  }

  /**
   * Continues a paused or interrupted upload: asks the server for its offset (HEAD) and sends
   * the rest. `file` is needed when this page no longer holds it (after a reload): the same
   * file, which the final hash comparison checks.
   * @param {string} handle
   * @param {{file?: Blob, onProgress?: Function, signal?: AbortSignal}} [options]
   */
  async resumeUpload(handle, { file, onProgress, signal } = {}) {
    const result = await this.resumeInternal(handle, { file, onProgress, signal });
    result.fileKey.fill(0);
    return result.view;
  }

  async resumeInternal(handle, { file, onProgress, signal } = {}) {
    const account = this.account();
    const record = account.uploads?.[handle];
    if (!record) throw new RefusedError('no such unfinished upload');
    const source = file ?? this.files.get(handle);
    if (!source) throw new RefusedError('choose the same file again to resume this upload');
    if (source.size !== record.size) throw new RefusedError('this is not the file of that upload (its size differs)');
    this.files.set(handle, source);
    const fileKey = await unwrapFileKey(record.wrap, account.userId, fromB64u(record.fileId), account.vaultWrapKey);
    return this.run(account, record, source, fileKey, { onProgress, signal });
  }

  /** Unfinished uploads kept on this device: `[{handle, name, type, size, level, conversationId, createdAt, held}]`. */
  pendingUploads() {
    const account = this.account();
    return Object.values(account.uploads ?? {}).map((record) => ({
      handle: record.handle, name: record.name, type: record.type, size: record.size, level: record.level,
      conversationId: record.conversationId, createdAt: record.createdAt, held: this.files.has(record.handle),
      active: this.active.has(record.handle),
    })).sort((a, b) => a.createdAt - b.createdAt);
  }

  /** Abandons an unfinished upload (the server releases its bytes and quota). */
  async cancelUpload(handle) {
    const account = this.account();
    const record = account.uploads?.[handle];
    if (!record) return;
    for (let attempt = 0; ; attempt++) {
      try {
        await this.request(record.uploadUrl, { method: 'DELETE', headers: { 'Tus-Resumable': TUS_VERSION } });
        break;
      } catch (error) {
        if (error instanceof ApiError && error.status === 404) break;
        // 409 upload-busy: a request that was just aborted may still be writing.
        if (!(error instanceof ApiError && (error.status === 409 || error.transient)) || attempt >= RETRIES) throw error;
        await sleep(Math.min(4000, 200 * 2 ** attempt));
      }
    }
    await this.forgetUpload(account, handle);
  }

  async forgetUpload(account, handle) {
    if (account.uploads?.[handle]) {
      const { [handle]: _gone, ...rest } = account.uploads;
      account.uploads = rest;
      await this.client.saveAccount();
    }
    this.files.delete(handle);
  }

  /** Transfers with retries (a busy or mismatched offset, a dropped connection): each attempt starts with HEAD. */
  async run(account, record, file, fileKey, { onProgress, signal }) {
    if (this.active.has(record.handle)) throw new RefusedError('this upload is already running');
    this.active.add(record.handle);
    const report = reporter(onProgress, record.handle);
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          const { stored, digest } = await this.transfer(record, file, fileKey, report, signal);
          await this.forgetUpload(account, record.handle);
          const view = {
            id: record.fileId, name: record.name, type: record.type, size: record.size, storedSize: stored.size, level: stored.level,
            conversationId: stored.conversationId ?? null, createdAt: stored.createdAt, expiresAt: stored.expiresAt || 0, sha256: stored.sha256,
          };
          return { view, fileKey, digest, record };
        } catch (error) {
          if (isAbort(error) || signal?.aborted) throw new UploadPausedError(record.handle);
          const again = error instanceof ApiError && (error.transient || error.status === 409 || error.status === 460);
          if (!again || attempt >= RETRIES) throw error;
          try {
            await sleep(Math.min(8000, 250 * 2 ** attempt), signal);
          } catch {
            throw new UploadPausedError(record.handle);
          }
        }
      }
    } catch (error) {
      if (!(error instanceof UploadPausedError)) fileKey.fill(0);
      throw error;
    } finally {
      this.active.delete(record.handle);
    }
  }

  /** The server's offset for an upload, or null when it has none (finished, expired or gone). */
  async serverOffset(record, signal) {
    try {
      const answer = await this.request(record.uploadUrl, { method: 'HEAD', headers: { 'Tus-Resumable': TUS_VERSION }, signal });
      const offset = Number(answer.headers.get('Upload-Offset'));
      if (!Number.isSafeInteger(offset) || offset < 0 || offset > record.length) throw new ProtocolError('refused', 'the server reported an impossible upload offset');
      return offset;
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) return null;
      throw error;
    }
  }

  async patch(record, offset, body, signal) {
    const checksum = base64(new Uint8Array(await crypto.subtle.digest('SHA-256', body)));
    const answer = await this.request(record.uploadUrl, {
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

  /**
   * One attempt: HEAD for the offset, seal the file from the start (hashing every ciphertext
   * byte), PATCH what lies after the offset, then compare the hash with the server's.
   */
  async transfer(record, file, fileKey, report, signal) {
    let offset = await this.serverOffset(record, signal);
    if (offset === null) {
      // The last PATCH may have arrived without its answer: the file then exists.
      try {
        await this.fileInfo(record.fileId);
      } catch (error) {
        if (error instanceof ApiError && error.status === 404) {
          throw new RefusedError('the server no longer holds this unfinished upload (it expired): upload the file again');
        }
        throw error;
      }
      offset = record.length;
    }
    report('uploading', offset, record.length);
    const sealer = await StreamSealer.create(fileKey, record.size, record.salt);
    const hash = new Sha256();
    let position = 0;
    let pending = [];
    let pendingLength = 0;
    const flush = async () => {
      if (!pendingLength) return;
      const body = pending.length === 1 ? pending[0] : new Uint8Array(pendingLength);
      if (pending.length > 1) {
        let at = 0;
        for (const part of pending) {
          body.set(part, at);
          at += part.length;
        }
      }
      pending = [];
      pendingLength = 0;
      offset = await this.patch(record, offset, body, signal);
      report('uploading', offset, record.length);
    };
    const emit = async (bytes) => {
      hash.update(bytes);
      const start = position;
      position += bytes.length;
      if (position <= offset) return;
      const part = start >= offset ? bytes : bytes.subarray(offset - start);
      pending.push(part);
      pendingLength += part.length;
      if (pendingLength >= PATCH_SIZE) await flush();
    };
    await emit(sealer.header);
    report('encrypting', 0, record.size);
    for (let read = 0; read < record.size; read += READ_SLICE) {
      if (signal?.aborted) throw new DOMException('aborted', 'AbortError');
      const end = Math.min(record.size, read + READ_SLICE);
      const bytes = new Uint8Array(await file.slice(read, end).arrayBuffer());
      if (bytes.length !== end - read) throw new RefusedError('the file changed while it was read');
      await emit(await sealer.seal(bytes));
      report('encrypting', end, record.size);
    }
    await emit(await sealer.finish());
    report('encrypting', record.size, record.size);
    await flush();
    if (position !== record.length || offset !== record.length) throw new ProtocolError('malformed', 'the payload did not come out at its announced length');
    report('verifying', 0, 1);
    const digest = hash.digest();
    const stored = await this.fileInfo(record.fileId);
    if (stored.size !== record.length || !equal(fromB64u(stored.sha256), digest)) {
      await this.client.api.delete(`/api/v1/vault/files/${encodeURIComponent(record.fileId)}`).catch(() => {});
      await this.forgetUpload(this.client.account, record.handle);
      throw new ProtocolError('refused', 'the server stored other bytes than this device sent (or the file changed): the upload was deleted');
    }
    report('verifying', 1, 1);
    return { stored, digest };
  }

  // MARK: Downloading

  /**
   * One of this account's files, decrypted: a Blob of its content (typed
   * application/octet-stream). The ciphertext is checked against the server's SHA-256 and
   * every chunk against its tag; an incomplete file is refused.
   * @param {string} fileId
   * @param {{onProgress?: (p: {stage: 'downloading'|'decrypting', done: number, total: number}) => void, signal?: AbortSignal}} [options]
   * @returns {Promise<Blob>}
   */
  async download(fileId, { onProgress, signal } = {}) {
    const account = this.account();
    const info = await this.fileInfo(fileId);
    const fileKey = await this.ownKey(account, info);
    try {
      const meta = await openMetadata(fromB64u(info.meta), fileKey, fromB64u(info.id));
      if (ciphertextLength(meta.size) !== info.size) throw malformed('the stored length does not match the file size in its metadata');
      return await this.fetchAndOpen(`/api/v1/vault/files/${encodeURIComponent(info.id)}/content`, {
        fileKey, size: meta.size, length: info.size, sha256: fromB64u(info.sha256), onProgress, signal,
      });
    } finally {
      fileKey.fill(0);
    }
  }

  async fetchAndOpen(path, { fileKey, size, length, sha256, onProgress, signal }) {
    const report = reporter(onProgress, null);
    const response = await this.request(path, { signal });
    const ciphertext = await fetchCiphertext(response, { length, sha256, report, signal });
    return openPayload(ciphertext, { fileKey, size, report, signal });
  }

  /** Deletes one of this account's files (its links go with it). */
  async deleteFile(fileId) {
    this.account();
    await this.client.api.delete(`/api/v1/vault/files/${encodeURIComponent(fileId)}`);
  }

  // MARK: Share links (PROTOCOL 9.5)

  /**
   * Creates a share link for one of this account's files (the file becomes public): resolves to
   * the full URL `${origin}/s/${linkId}#${linkKey}`. The link key exists only in that URL.
   * @param {string} fileId
   * @param {{password?: string|null, expiresAt?: number, maxDownloads?: number}} [options]
   * @returns {Promise<string>}
   */
  async shareLink(fileId, { password = null, expiresAt = 0, maxDownloads = 0 } = {}) {
    const account = this.account();
    const info = await this.fileInfo(fileId);
    const fileKey = await this.ownKey(account, info);
    const { linkId, linkKey } = generateLink();
    const usePassword = typeof password === 'string' && password.length > 0;
    const salt = usePassword ? generateLinkSalt() : undefined;
    const secrets = await linkSecrets(linkKey, usePassword ? password : null, salt, LINK_ITERATIONS);
    try {
      const body = {
        linkId: b64u(linkId),
        wrap: b64u(await wrapForLink(fileKey, linkId, secrets)),
        verifier: b64u(secrets.verifier),
      };
      if (usePassword) {
        body.salt = b64u(salt);
        body.iterations = LINK_ITERATIONS;
      }
      if (expiresAt) body.expiresAt = expiresAt;
      if (maxDownloads) body.maxDownloads = maxDownloads;
      await this.client.api.post(`/api/v1/vault/files/${encodeURIComponent(info.id)}/links`, body);
      return `${location.origin}/s/${b64u(linkId)}#${b64u(linkKey)}`;
    } finally {
      fileKey.fill(0);
      secrets.unwrapKey.fill(0);
      secrets.access.fill(0);
      linkKey.fill(0);
    }
  }

  /** A file's links: `[{id, fileId, hasPassword, expiresAt, maxDownloads, downloads, createdAt, revokedAt, live, uses}]`. */
  async links(fileId) {
    this.client.requireSession();
    return (await this.client.api.get(`/api/v1/vault/files/${encodeURIComponent(fileId)}/links`)).links;
  }

  /** Revokes a link: the server deletes its wrap and verifier. */
  async revokeLink(linkId) {
    this.client.requireSession();
    await this.client.api.delete(`/api/v1/vault/links/${encodeURIComponent(linkId)}`);
  }

  // MARK: Attachments (PROTOCOL 9.4)

  /**
   * Uploads a file to a conversation and sends the attachment message (content type 4) with its
   * key and hash; resolves to the message id. A disappearing conversation's file expires with
   * the message.
   */
  async attach(convId, file, { onProgress, signal, onHandle } = {}) {
    this.account();
    await this.client.messaging.checkNotBlocked(convId);
    const chain = await this.client.chains.local(convId).catch(() => null);
    const timer = Number(chain?.settings?.disappearSeconds ?? 0);
    const expiresAt = timer > 0 ? Date.now() + Math.min(timer * 1000, MAXIMUM_LIFETIME_MS) : 0;
    const result = await this.uploadInternal(file, { level: 'conversation', conversationId: convId, expiresAt, onProgress, signal, onHandle });
    return this.sendAttachment(convId, result);
  }

  /** Resumes a paused attachment upload, then sends its message. */
  async resumeAttachment(convId, handle, { file, onProgress, signal } = {}) {
    const result = await this.resumeInternal(handle, { file, onProgress, signal });
    return this.sendAttachment(convId, result);
  }

  async sendAttachment(convId, { view, fileKey, digest, record }) {
    try {
      const content = encodeAttachment({
        fileId: fromB64u(record.fileId), fileKey, name: record.name, type: record.type, size: record.size, sha256: digest,
      });
      const id = await this.client.messaging.send(convId, { contentType: CONTENT_TYPES.attachment, content, text: fromUtf8(content) });
      this.client.notify('conversations', {});
      return { messageId: id, file: view };
    } finally {
      fileKey.fill(0);
    }
  }

  /**
   * Downloads an attachment of a conversation: the ciphertext's SHA-256 must be the one in the
   * end-to-end message before anything is opened; resolves to `{blob, name, type, size}`.
   */
  async downloadAttachment(convId, messageId, { onProgress, signal } = {}) {
    this.client.requireSession();
    const message = (await this.client.messaging.messagesOf(convId)).get(messageId);
    if (!message || message.kind !== 'message' || message.contentType !== CONTENT_TYPES.attachment || message.deleted) {
      throw new RefusedError('no such attachment');
    }
    const attachment = parseAttachment(message.text);
    if (!attachment) throw new ProtocolError('malformed', 'the attachment message is not well formed');
    const fileKey = fromB64u(attachment.fileKey);
    try {
      const blob = await this.fetchAndOpen(`/api/v1/vault/files/${encodeURIComponent(attachment.fileId)}/content`, {
        fileKey, size: attachment.size, length: ciphertextLength(attachment.size), sha256: fromB64u(attachment.sha256), onProgress, signal,
      });
      return { blob, name: attachment.name, type: attachment.type, size: attachment.size };
    } finally {
      fileKey.fill(0);
    }
  }
}

// MARK: Opening a share link (no account)

/**
 * A share link as its holder opens it, with no account: `SharedLink.inspect(linkId)` learns
 * whether it needs a password, `open(linkKey, password)` proves access and decrypts the name,
 * `download()` fetches and decrypts the content.
 */
export class SharedLink {
  constructor(linkId, parameters) {
    this.linkId = linkId;
    /** Whether the link asks for a password. */
    this.hasPassword = Boolean(parameters.hasPassword);
    this.salt = parameters.salt ? fromB64u(parameters.salt) : null;
    this.iterations = parameters.iterations ?? null;
    this.access = null;
    this.fileKey = null;
    /** After `open`: `{name, type, size, storedSize, expiresAt, downloadsLeft}`. */
    this.file = null;
  }

  /**
   * What the server tells anyone about a live link; a revoked, expired or used-up link is an
   * ApiError of status 404, like one that never existed.
   * @param {string} linkId
   */
  static async inspect(linkId) {
    if (!bytesOf(String(linkId), LINK_ID_SIZE)) throw new RefusedError('this is not a Circle share link');
    const api = new Api();
    const parameters = await api.call('GET', `/api/v1/vault/links/${encodeURIComponent(linkId)}`, undefined, { token: null });
    if (parameters.linkId !== linkId) throw new ProtocolError('refused', 'the server answered for another link');
    return new SharedLink(linkId, parameters);
  }

  /**
   * Proves access with the link's key (and password) and decrypts the file's metadata. A wrong
   * password (or key) is an ApiError of status 403.
   * @param {string} linkKeyText the base64url key from the link's fragment
   * @param {string|null} [password]
   */
  async open(linkKeyText, password = null) {
    const linkKey = bytesOf(String(linkKeyText ?? ''), LINK_KEY_SIZE);
    if (!linkKey) throw new RefusedError('the link is incomplete: its key is missing or damaged');
    if (this.hasPassword && (typeof password !== 'string' || password.length === 0)) throw new RefusedError('this link needs its password');
    const secrets = await linkSecrets(linkKey, this.hasPassword ? password : null, this.salt ?? undefined, this.iterations ?? LINK_ITERATIONS);
    linkKey.fill(0);
    try {
      const api = new Api();
      const opened = await api.call('POST', `/api/v1/vault/links/${encodeURIComponent(this.linkId)}/open`, { access: b64u(secrets.access) }, { token: null });
      if (opened.linkId !== this.linkId) throw new ProtocolError('refused', 'the server answered for another link');
      const fileId = fromB64u(opened.fileId);
      const fileKey = await unwrapFromLink(fromB64u(opened.wrap), fromB64u(this.linkId), secrets);
      const meta = await openMetadata(fromB64u(opened.meta), fileKey, fileId);
      if (ciphertextLength(meta.size) !== opened.size) throw malformed('the stored length does not match the file size in its metadata');
      this.access = b64u(secrets.access);
      this.fileKey = fileKey;
      this.sha256 = fromB64u(opened.sha256);
      this.file = {
        name: meta.name, type: meta.type, size: meta.size, storedSize: opened.size, expiresAt: opened.expiresAt || 0,
        downloadsLeft: opened.downloadsLeft ?? null,
      };
      return this.file;
    } finally {
      secrets.unwrapKey.fill(0);
    }
  }

  /**
   * Downloads (counted against the link's limit) and decrypts the file: a Blob of its content.
   * @param {{onProgress?: Function, signal?: AbortSignal}} [options]
   * @returns {Promise<Blob>}
   */
  async download({ onProgress, signal } = {}) {
    if (!this.fileKey) throw new RefusedError('open the link first');
    const report = reporter(onProgress, null);
    const response = await send(`/api/v1/vault/links/${encodeURIComponent(this.linkId)}/content`, {
      headers: { 'Circle-Link-Access': this.access }, signal,
    });
    const ciphertext = await fetchCiphertext(response, { length: this.file.storedSize, sha256: this.sha256, report, signal });
    return openPayload(ciphertext, { fileKey: this.fileKey, size: this.file.size, report, signal });
  }

  /** Forgets the key and access value. */
  close() {
    this.fileKey?.fill(0);
    this.fileKey = null;
    this.access = null;
  }
}
