/**
 * Share links (PROTOCOL 9.5): the owner's side (create, list, revoke; `vault` is the account's
 * Vault) and `SharedLink`, a link as its holder opens it with no account.
 * @module client/vault-links
 */
import { ProtocolError, b64u, fromB64u } from '../protocol/bytes.js';
import {
  LINK_ID_SIZE, LINK_ITERATIONS, LINK_KEY_SIZE, ciphertextLength, generateLink, generateLinkSalt, linkSecrets, openMetadata,
  unwrapFromLink, wrapForLink,
} from '../protocol/vault.js';
import { Api } from './api.js';
import { RefusedError } from './errors.js';
import { bytesOf, malformed } from './vault-bytes.js';
import { fetchCiphertext, openPayload } from './vault-download.js';
import { fileInfo, ownKey } from './vault-files.js';
import { reporter, send } from './vault-http.js';

/**
 * Creates a share link for one of this account's files (the file becomes public): resolves to
 * the full URL `${origin}/s/${linkId}#${linkKey}`. The link key exists only in that URL.
 * @param {import('./vault.js').Vault} vault
 * @param {string} fileId
 * @param {{password?: string|null, expiresAt?: number, maxDownloads?: number}} [options]
 * @returns {Promise<string>}
 */
export async function createLink(vault, fileId, { password = null, expiresAt = 0, maxDownloads = 0 } = {}) {
  const account = vault.account();
  const info = await fileInfo(vault, fileId);
  const fileKey = await ownKey(account, info);
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
    await vault.client.api.post(`/api/v1/vault/files/${encodeURIComponent(info.id)}/links`, body);
    return `${location.origin}/s/${b64u(linkId)}#${b64u(linkKey)}`;
  } finally {
    fileKey.fill(0);
    secrets.unwrapKey.fill(0);
    secrets.access.fill(0);
    linkKey.fill(0);
  }
}

/** A file's links: `[{id, fileId, hasPassword, expiresAt, maxDownloads, downloads, createdAt, revokedAt, live, uses}]`. */
export async function listLinks(vault, fileId) {
  vault.client.requireSession();
  return (await vault.client.api.get(`/api/v1/vault/files/${encodeURIComponent(fileId)}/links`)).links;
}

/** Revokes a link: the server deletes its wrap and verifier. */
export async function revokeLink(vault, linkId) {
  vault.client.requireSession();
  await vault.client.api.delete(`/api/v1/vault/links/${encodeURIComponent(linkId)}`);
}

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
    this.ticket = null;
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
      if (typeof opened.ticket !== 'string' || !bytesOf(opened.ticket, 32)) throw malformed('the server gave no download ticket');
      this.access = b64u(secrets.access);
      /** Presented by downloads: the first one counts against the link's limit. */
      this.ticket = opened.ticket;
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
      headers: { 'Circle-Link-Ticket': this.ticket }, signal,
    });
    const ciphertext = await fetchCiphertext(response, { length: this.file.storedSize, sha256: this.sha256, report, signal });
    return openPayload(ciphertext, { fileKey: this.fileKey, size: this.file.size, report, signal });
  }

  /** Forgets the key and access value. */
  close() {
    this.fileKey?.fill(0);
    this.fileKey = null;
    this.access = null;
    this.ticket = null;
  }
}
