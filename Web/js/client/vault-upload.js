/**
 * Streaming uploads to the vault over tus 1.0 (vault-tus.js): a file is read in slices, sealed
 * with StreamSealer, hashed with the incremental SHA-256 and sent in PATCHes of a few MiB, never
 * whole in memory; once sent, the server's hash of the stored file must match this device's.
 *
 * Resuming: an unfinished upload is kept in the account record (`account.uploads`, IndexedDB)
 * with its payload salt and the file key wrapped under the vault wrap key (never the raw key).
 * Sealing is deterministic for a given key and salt, so a resumed upload seals the file again
 * from the start, hashes every byte, and sends only those after the server's offset.
 *
 * `vault` is the account's Vault: `files` holds the Files of unfinished uploads by handle and
 * `active` the handles being transferred.
 * @module client/vault-upload
 */
import { ProtocolError, b64u, equal, fromB64u, random, utf8 } from '../protocol/bytes.js';
import {
  MAXIMUM_NAME, MAXIMUM_TYPE, SALT_SIZE, Sha256, StreamSealer, ciphertextLength, generateFileId, generateFileKey,
  sealMetadata, unwrapFileKey, wrapFileKey,
} from '../protocol/vault.js';
import { ApiError } from './api.js';
import { RefusedError } from './errors.js';
import { READ_SLICE } from './vault-bytes.js';
import { fileInfo } from './vault-files.js';
import { isAbort, reporter, sleep } from './vault-http.js';
import { RETRIES, createUpload, deleteUpload, sendPart, serverOffset } from './vault-tus.js';

/** Ciphertext bytes per PATCH (about; a PATCH ends at a sealed slice). */
const PATCH_SIZE = 4 * 1024 * 1024;

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

/** A file name cut (at a character boundary) to the 1,024 UTF-8 bytes metadata holds. */
function fitName(name) {
  let out = [...name].slice(0, MAXIMUM_NAME).join('');
  while (utf8(out).length > MAXIMUM_NAME) out = [...out].slice(0, -1).join('');
  return out;
}

/**
 * Encrypts and uploads a file, streaming (see the module comment). Resolves, once the server's
 * hash of the stored file matched, to `{id, name, type, size, storedSize, level, conversationId,
 * createdAt, expiresAt, sha256}`; an abort through `signal` rejects with UploadPausedError.
 * @param {import('./vault.js').Vault} vault
 * @param {Blob} file a File or Blob
 * @param {{name?: string, level?: 'private'|'conversation', conversationId?: string, expiresAt?: number,
 *   onProgress?: (p: {stage: 'encrypting'|'uploading'|'verifying', done: number, total: number, handle: string}) => void,
 *   signal?: AbortSignal, onHandle?: (handle: string) => void}} [options]
 */
export async function upload(vault, file, options = {}) {
  const result = await uploadKeepingKey(vault, file, options);
  result.fileKey.fill(0);
  return result.view;
}

/**
 * Like `upload`, but resolves to `{view, fileKey, digest, record}` with the file key still set:
 * an attachment's message carries it (the caller wipes it).
 */
export async function uploadKeepingKey(vault, file, { name, level = 'private', conversationId = null, expiresAt = 0, onProgress, signal, onHandle } = {}) {
  const account = vault.account();
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
  const uploadUrl = await createUpload(vault, length, fields);
  const record = {
    handle, fileId: handle, uploadUrl, salt, wrap, size, length, name: fileName, type, level, conversationId,
    expiresAt: expiresAt || 0, createdAt: Date.now(), lastModified: file.lastModified ?? 0,
  };
  account.uploads = { ...(account.uploads ?? {}), [handle]: record };
  await vault.client.saveAccount();
  vault.files.set(handle, file);
  try {
    onHandle?.(handle);
  } catch {
    // UI callback
  }
  return run(vault, account, record, file, fileKey, { onProgress, signal });
}

/**
 * Continues a paused or interrupted upload: asks the server for its offset (HEAD) and sends
 * the rest. `file` is needed when this page no longer holds it (after a reload): the same
 * file, which the final hash comparison checks.
 * @param {import('./vault.js').Vault} vault
 * @param {string} handle
 * @param {{file?: Blob, onProgress?: Function, signal?: AbortSignal}} [options]
 */
export async function resumeUpload(vault, handle, { file, onProgress, signal } = {}) {
  const result = await resumeKeepingKey(vault, handle, { file, onProgress, signal });
  result.fileKey.fill(0);
  return result.view;
}

/** Like `resumeUpload`, but resolves to `{view, fileKey, digest, record}` as `uploadKeepingKey` does. */
export async function resumeKeepingKey(vault, handle, { file, onProgress, signal } = {}) {
  const account = vault.account();
  const record = account.uploads?.[handle];
  if (!record) throw new RefusedError('no such unfinished upload');
  const source = file ?? vault.files.get(handle);
  if (!source) throw new RefusedError('choose the same file again to resume this upload');
  if (source.size !== record.size) throw new RefusedError('this is not the file of that upload (its size differs)');
  vault.files.set(handle, source);
  const fileKey = await unwrapFileKey(record.wrap, account.userId, fromB64u(record.fileId), account.vaultWrapKey);
  return run(vault, account, record, source, fileKey, { onProgress, signal });
}

/** Unfinished uploads kept on this device: `[{handle, name, type, size, level, conversationId, createdAt, held, active}]`. */
export function pendingUploads(vault) {
  const account = vault.account();
  return Object.values(account.uploads ?? {}).map((record) => ({
    handle: record.handle, name: record.name, type: record.type, size: record.size, level: record.level,
    conversationId: record.conversationId, createdAt: record.createdAt, held: vault.files.has(record.handle),
    active: vault.active.has(record.handle),
  })).sort((a, b) => a.createdAt - b.createdAt);
}

/** Abandons an unfinished upload (the server releases its bytes and quota). */
export async function cancelUpload(vault, handle) {
  const account = vault.account();
  const record = account.uploads?.[handle];
  if (!record) return;
  await deleteUpload(vault, record);
  await forgetUpload(vault, account, handle);
}

/** Drops an upload's record from the account and its File from this page. */
async function forgetUpload(vault, account, handle) {
  if (account.uploads?.[handle]) {
    const { [handle]: _gone, ...rest } = account.uploads;
    account.uploads = rest;
    await vault.client.saveAccount();
  }
  vault.files.delete(handle);
}

/** Transfers with retries (a busy or mismatched offset, a dropped connection): each attempt starts with HEAD. */
async function run(vault, account, record, file, fileKey, { onProgress, signal }) {
  if (vault.active.has(record.handle)) throw new RefusedError('this upload is already running');
  vault.active.add(record.handle);
  const report = reporter(onProgress, record.handle);
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        const { stored, digest } = await transfer(vault, record, file, fileKey, report, signal);
        await forgetUpload(vault, account, record.handle);
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
    vault.active.delete(record.handle);
  }
}

/**
 * One attempt: HEAD for the offset, seal the file from the start (hashing every ciphertext
 * byte), PATCH what lies after the offset, then compare the hash with the server's.
 */
async function transfer(vault, record, file, fileKey, report, signal) {
  let offset = await serverOffset(vault, record, signal);
  if (offset === null) {
    // The last PATCH may have arrived without its answer: the file then exists.
    try {
      await fileInfo(vault, record.fileId);
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
    offset = await sendPart(vault, record, offset, body, signal);
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
  const stored = await fileInfo(vault, record.fileId);
  if (stored.size !== record.length || !equal(fromB64u(stored.sha256), digest)) {
    await vault.client.api.delete(`/api/v1/vault/files/${encodeURIComponent(record.fileId)}`).catch(() => {});
    await forgetUpload(vault, vault.client.account, record.handle);
    throw new ProtocolError('refused', 'the server stored other bytes than this device sent (or the file changed): the upload was deleted');
  }
  report('verifying', 1, 1);
  return { stored, digest };
}
