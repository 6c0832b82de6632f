/**
 * The encrypted file vault for the browser (docs/PROTOCOL.md section 9, docs/API.md "Vault"):
 * streaming uploads over tus 1.0 with pause and resume, verification against the server's hash
 * of the stored file, downloads opened chunk by chunk, share links, and conversation attachments.
 *
 * `Vault` is the signed-in account's side and the API the rest of the client calls; it holds the
 * per-page upload state and hands each call to the module of its responsibility:
 *   vault-files.js       the decrypted file listing, one file's record and key, deletion
 *   vault-upload.js      streaming uploads, pause and resume (its requests in vault-tus.js)
 *   vault-download.js    downloads verified against their hash, then decrypted
 *   vault-links.js       share links: created here, opened with no account (`SharedLink`)
 *   vault-attachment.js  conversation attachments and their message content
 * over vault-http.js (raw requests, retries' waits, progress) and vault-bytes.js.
 * @module client/vault
 */
import { RefusedError } from './errors.js';
import * as attachments from './vault-attachment.js';
import * as downloads from './vault-download.js';
import * as stored from './vault-files.js';
import { send } from './vault-http.js';
import * as sharing from './vault-links.js';
import * as uploads from './vault-upload.js';

export { encodeAttachment, parseAttachment } from './vault-attachment.js';
export { SharedLink } from './vault-links.js';
export { UploadPausedError } from './vault-upload.js';

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

  /** Forgets the files and running transfers of this page (sign-out). */
  clear() {
    this.files.clear();
    this.active.clear();
  }

  /** The signed-in account, refused when this device holds no vault wrap key. */
  account() {
    const account = this.client.requireSession();
    if (!account.vaultWrapKey) throw new RefusedError('this device holds no vault key: sign out and in again to open the vault');
    return account;
  }

  /** A raw request (tus, downloads) with the session's token; a 401 signs out. */
  request(path, options = {}) {
    return send(path, {
      ...options,
      token: this.client.account?.token ?? null,
      onUnauthorized: () => this.client.signOut('unauthorized'),
    });
  }

  /** This account's files, decrypted, newest first (see vault-files.js). */
  list() {
    return stored.list(this);
  }

  /** `{files, used, quota}`: the decrypted files and this account's usage in bytes. */
  listing() {
    return stored.listing(this);
  }

  /** Changes a file's level or expiry (see vault-files.js). */
  changeFile(fileId, change) {
    return stored.changeFile(this, fileId, change);
  }

  /** Puts a stored file in a conversation and sends its attachment message (see vault-attachment.js). */
  shareInConversation(fileId, convId, options = {}) {
    return attachments.shareInConversation(this, fileId, convId, options);
  }

  /** Deletes one of this account's files (its links go with it). */
  deleteFile(fileId) {
    return stored.deleteFile(this, fileId);
  }

  /** Encrypts and uploads a file, streaming; a pause rejects with UploadPausedError (see vault-upload.js). */
  upload(file, options = {}) {
    return uploads.upload(this, file, options);
  }

  /** Continues a paused or interrupted upload (see vault-upload.js). */
  resumeUpload(handle, options = {}) {
    return uploads.resumeUpload(this, handle, options);
  }

  /** Unfinished uploads kept on this device. */
  pendingUploads() {
    return uploads.pendingUploads(this);
  }

  /** Abandons an unfinished upload (the server releases its bytes and quota). */
  cancelUpload(handle) {
    return uploads.cancelUpload(this, handle);
  }

  /** One of this account's files, verified and decrypted: a Blob of its content (see vault-download.js). */
  download(fileId, options = {}) {
    return downloads.download(this, fileId, options);
  }

  /** Creates a share link for one of this account's files: resolves to its full URL (see vault-links.js). */
  shareLink(fileId, options = {}) {
    return sharing.createLink(this, fileId, options);
  }

  /** A file's share links. */
  links(fileId) {
    return sharing.listLinks(this, fileId);
  }

  /** Revokes a share link. */
  revokeLink(linkId) {
    return sharing.revokeLink(this, linkId);
  }

  /** Uploads a file to a conversation and sends its attachment message (see vault-attachment.js). */
  attach(convId, file, options = {}) {
    return attachments.attach(this, convId, file, options);
  }

  /** Resumes a paused attachment upload, then sends its message. */
  resumeAttachment(convId, handle, options = {}) {
    return attachments.resumeAttachment(this, convId, handle, options);
  }

  /** Downloads and decrypts an attachment of a conversation: `{blob, name, type, size}`. */
  downloadAttachment(convId, messageId, options = {}) {
    return attachments.downloadAttachment(this, convId, messageId, options);
  }
}
