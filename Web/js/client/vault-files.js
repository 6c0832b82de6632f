/**
 * The account's stored files as their owner sees them: one file's server record, its key from
 * the owner wrap, the decrypted listing, deletion. `vault` is the account's Vault.
 * @module client/vault-files
 */
import { fromB64u } from '../protocol/bytes.js';
import { ciphertextLength, openMetadata, unwrapFileKey } from '../protocol/vault.js';
import { RefusedError } from './errors.js';
import { malformed } from './vault-bytes.js';

/**
 * `GET /api/v1/vault/files/{id}`, refused when the server answers with another file's entry
 * (which would open under its own id and key, and be taken for the one asked for).
 */
export async function fileInfo(vault, fileId) {
  const info = await vault.client.api.get(`/api/v1/vault/files/${encodeURIComponent(fileId)}`);
  if (info?.id !== fileId) throw new RefusedError('the server answered with another file than the one asked for');
  return info;
}

/** The key of one of this account's files (from its owner wrap). */
export async function ownKey(account, info) {
  if (!info.mine || !info.wrap) throw new RefusedError('only its owner opens a file from the vault; open it from its conversation');
  return unwrapFileKey(fromB64u(info.wrap), account.userId, fromB64u(info.id), account.vaultWrapKey);
}

/**
 * This account's files, decrypted: `[{id, name, type, size, storedSize, sha256, level,
 * conversationId, createdAt, expiresAt, links, error}]`, newest first. `links` lists a public
 * file's share links; `error` is set (and the name null) for an entry that does not open.
 */
export async function list(vault) {
  return (await listing(vault)).files;
}

/** `{files, used, quota}`: the decrypted listing (as `list`) and the account's usage in bytes. */
export async function listing(vault) {
  const account = vault.account();
  const { files, used, quota } = await vault.client.api.get('/api/v1/vault/files');
  const out = [];
  for (const file of files) {
    const entry = {
      id: file.id, name: null, type: '', size: null, storedSize: file.size, sha256: file.sha256, level: file.level,
      conversationId: file.conversationId ?? null, createdAt: file.createdAt, expiresAt: file.expiresAt || 0, links: [], error: null,
    };
    try {
      const fileKey = await ownKey(account, file);
      const meta = await openMetadata(fromB64u(file.meta), fileKey, fromB64u(file.id));
      fileKey.fill(0);
      if (ciphertextLength(meta.size) !== file.size) throw malformed('the stored length does not match the file size in its metadata');
      Object.assign(entry, { name: meta.name, type: meta.type, size: meta.size });
    } catch (error) {
      entry.error = String(error?.message ?? error);
    }
    if (file.level === 'public') {
      try {
        entry.links = await vault.links(file.id);
      } catch {
        entry.links = [];
      }
    }
    out.push(entry);
  }
  return { files: out, used, quota };
}

/**
 * Changes one of this account's files: `{level?, conversationId?, expiresAt?}` (PATCH; leaving
 * `public` ends its links). Putting a file in a conversation is `shareInConversation`
 * (vault-attachment.js), which also gives the members its key.
 */
export async function changeFile(vault, fileId, change) {
  vault.account();
  const body = {};
  if (change.level !== undefined) body.level = change.level;
  if (change.conversationId !== undefined) body.conversationId = change.conversationId;
  if (change.expiresAt !== undefined) body.expiresAt = change.expiresAt;
  const view = await vault.client.api.patch(`/api/v1/vault/files/${encodeURIComponent(fileId)}`, body);
  if (view?.id !== fileId) throw new RefusedError('the server answered with another file than the one changed');
  return view;
}

/** Deletes one of this account's files (its links go with it). */
export async function deleteFile(vault, fileId) {
  vault.account();
  await vault.client.api.delete(`/api/v1/vault/files/${encodeURIComponent(fileId)}`);
}
