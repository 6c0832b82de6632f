/**
 * Conversation attachments (PROTOCOL 9.4): a file uploaded to a conversation and announced by a
 * message of content type 4 that carries its key and hash; downloading one checks the
 * ciphertext against that hash. `vault` is the account's Vault.
 *
 * Attachment content (inside the padded message content): the UTF-8 bytes of one JSON object,
 * no byte-order mark, with exactly these members in this order
 *   {"v":1,"fileId":B64U(16 bytes),"fileKey":B64U(32 bytes),"name":TEXT(1..1024 UTF-8 bytes),
 *    "type":TEXT(0..255 UTF-8 bytes),"size":N(content bytes, an integer 0..2^53-1),
 *    "sha256":B64U(32 bytes: SHA-256 of the whole stored payload, salt header included)}
 * where B64U is unpadded base64url. A receiver refuses any other `v`, a missing member, a value
 * of another type or length; unknown members are ignored.
 * @module client/vault-attachment
 */
import { ProtocolError, b64u, fromB64u, fromUtf8, utf8 } from '../protocol/bytes.js';
import { CONTENT_TYPES } from '../protocol/message.js';
import { FILE_ID_SIZE, FILE_KEY_SIZE, MAXIMUM_NAME, MAXIMUM_TYPE, ciphertextLength, openMetadata } from '../protocol/vault.js';
import { RefusedError } from './errors.js';
import { bytesOf, malformed } from './vault-bytes.js';
import { fetchAndOpen } from './vault-download.js';
import { fileInfo, ownKey } from './vault-files.js';
import { resumeKeepingKey, uploadKeepingKey } from './vault-upload.js';

/** Conversation files of disappearing conversations expire with the messages (at most a year ahead). */
const MAXIMUM_LIFETIME_MS = 364 * 86_400_000;

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

/**
 * Uploads a file to a conversation and sends the attachment message (content type 4) with its
 * key and hash; resolves to `{messageId, file}`. A disappearing conversation's file expires with
 * the message, and a conversation with a retention's when its message is deleted.
 */
export async function attach(vault, convId, file, { onProgress, signal, onHandle } = {}) {
  vault.account();
  await vault.client.messaging.checkNotBlocked(convId);
  const chain = await vault.client.chains.local(convId).catch(() => null);
  const lifetimes = [Number(chain?.settings?.disappearSeconds ?? 0) * 1000, Number(chain?.settings?.retentionDays ?? 0) * 86_400_000]
    .filter((ms) => ms > 0);
  const expiresAt = lifetimes.length ? Date.now() + Math.min(...lifetimes, MAXIMUM_LIFETIME_MS) : 0;
  const result = await uploadKeepingKey(vault, file, { level: 'conversation', conversationId: convId, expiresAt, onProgress, signal, onHandle });
  return sendAttachment(vault, convId, result);
}

/** Resumes a paused attachment upload, then sends its message. */
export async function resumeAttachment(vault, convId, handle, { file, onProgress, signal } = {}) {
  const result = await resumeKeepingKey(vault, handle, { file, onProgress, signal });
  return sendAttachment(vault, convId, result);
}

/**
 * Puts one of this account's stored files in a conversation and sends its attachment message
 * there, so that its members can open it; a public file keeps its links. The ciphertext is
 * downloaded and opened first, so the hash the message vouches for is that of the file its owner
 * stored. A file is in one conversation at a time: one already in another leaves it.
 */
export async function shareInConversation(vault, fileId, convId, { onProgress, signal } = {}) {
  const account = vault.account();
  await vault.client.messaging.checkNotBlocked(convId);
  const info = await fileInfo(vault, fileId);
  const fileKey = await ownKey(account, info);
  try {
    const meta = await openMetadata(fromB64u(info.meta), fileKey, fromB64u(info.id));
    if (ciphertextLength(meta.size) !== info.size) throw malformed('the stored length does not match the file size in its metadata');
    const digest = fromB64u(info.sha256);
    await fetchAndOpen(vault, `/api/v1/vault/files/${encodeURIComponent(info.id)}/content`, {
      fileKey, size: meta.size, length: info.size, sha256: digest, onProgress, signal,
    });
    const body = { level: info.level === 'public' ? 'public' : 'conversation', conversationId: convId };
    const view = await vault.client.api.patch(`/api/v1/vault/files/${encodeURIComponent(info.id)}`, body);
    const record = { fileId: info.id, name: meta.name, type: meta.type, size: meta.size };
    return await sendAttachment(vault, convId, { view, fileKey: fileKey.slice(), digest, record });
  } finally {
    fileKey.fill(0);
  }
}

/** Sends the attachment message of an uploaded file, then wipes its key. */
async function sendAttachment(vault, convId, { view, fileKey, digest, record }) {
  try {
    const content = encodeAttachment({
      fileId: fromB64u(record.fileId), fileKey, name: record.name, type: record.type, size: record.size, sha256: digest,
    });
    const id = await vault.client.messaging.send(convId, { contentType: CONTENT_TYPES.attachment, content, text: fromUtf8(content) });
    vault.client.notify('conversations', {});
    return { messageId: id, file: view };
  } finally {
    fileKey.fill(0);
  }
}

/**
 * Downloads an attachment of a conversation: the ciphertext's SHA-256 must be the one in the
 * end-to-end message before anything is opened; resolves to `{blob, name, type, size}`.
 */
export async function downloadAttachment(vault, convId, messageId, { onProgress, signal } = {}) {
  vault.client.requireSession();
  const message = (await vault.client.messaging.messagesOf(convId)).get(messageId);
  if (!message || message.kind !== 'message' || message.contentType !== CONTENT_TYPES.attachment || message.deleted) {
    throw new RefusedError('no such attachment');
  }
  const attachment = parseAttachment(message.text);
  if (!attachment) throw new ProtocolError('malformed', 'the attachment message is not well formed');
  const fileKey = fromB64u(attachment.fileKey);
  try {
    const blob = await fetchAndOpen(vault, `/api/v1/vault/files/${encodeURIComponent(attachment.fileId)}/content`, {
      fileKey, size: attachment.size, length: ciphertextLength(attachment.size), sha256: fromB64u(attachment.sha256), onProgress, signal,
    });
    return { blob, name: attachment.name, type: attachment.type, size: attachment.size };
  } finally {
    fileKey.fill(0);
  }
}
