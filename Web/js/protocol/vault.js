/**
 * The vault (docs/PROTOCOL.md section 9, CircleKit/VaultStream.swift and VaultKeys.swift): the
 * chunked file payload, the sealed metadata, the owner's wrap of a file key under the vault
 * master key, share-link secrets and wraps, and an incremental SHA-256 (WebCrypto has none) for
 * hashing a payload too large to hold.
 *
 * Sizes are Numbers (exact up to 2^53). Refusals throw ProtocolError: 'malformed' for bad
 * lengths, versions, padding or UTF-8, an incomplete stream or data after its end;
 * 'decryption-failed' for any failed tag; 'refused-kdf' for a link password's iteration count
 * out of bounds.
 * @module protocol/vault
 */
import { ProtocolError, Reader, concat, field, isUserId, random, u64, u8, utf8 } from './bytes.js';
import { aesGcmDecrypt, aesGcmEncrypt, aesGcmOpen, aesGcmSeal, hkdf, hkdfExpand, hkdfExtract, pbkdf2, sha256 } from './primitives.js';

/** Plaintext bytes per chunk (64 KiB). */
export const CHUNK_SIZE = 65536;
/** AES-GCM tag bytes after each chunk. */
export const TAG_SIZE = 16;
/** Bytes of the payload's salt. */
export const SALT_SIZE = 16;
/** `u8(1) || salt`. */
export const HEADER_SIZE = 1 + SALT_SIZE;
/** The payload's format version. */
export const VERSION = 1;
export const FILE_KEY_SIZE = 32;
export const FILE_ID_SIZE = 16;
export const LINK_ID_SIZE = 16;
export const LINK_KEY_SIZE = 32;
export const LINK_SALT_SIZE = 16;
/** PBKDF2 iterations for a link password (also the minimum accepted). */
export const LINK_ITERATIONS = 600_000;
/** The most PBKDF2 iterations accepted for a link password (as for login). */
export const MAXIMUM_LINK_ITERATIONS = 10_000_000;
/** Metadata limits and padding bucket (PROTOCOL 9.2). */
export const MAXIMUM_NAME = 1024;
export const MAXIMUM_TYPE = 255;
export const METADATA_BUCKET = 256;

const PAYLOAD_INFO = concat(utf8('circle/v1/vault/payload'), u8(VERSION));
const META_LABEL = utf8('circle/v1/vault/meta');
const WRAP_LABEL = utf8('circle/v1/vault/wrap');
const LINK_LABEL = utf8('circle/v1/vault/link');
const LINK_UNWRAP_LABEL = utf8('circle/v1/vault/link-unwrap');
const LINK_ACCESS_LABEL = utf8('circle/v1/vault/link-access');
const NONCE_SIZE = 12;
const TWO_53 = 2 ** 53;
// Strict UTF-8 that keeps a leading U+FEFF (as Swift's String(validating:) does).
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function malformed(message) {
  return new ProtocolError('malformed', message);
}

function checkBytes(value, length, what) {
  if (!(value instanceof Uint8Array) || value.length !== length) throw malformed(`${what} is ${length} bytes`);
}

function checkSize(size) {
  if (!Number.isSafeInteger(size) || size < 0) throw malformed('a file size is a non-negative integer below 2^53');
}

function bitLength(n) {
  return n.toString(2).length;
}

function toNumber(value) {
  if (value > BigInt(TWO_53)) throw new RangeError(`${value} is beyond 2^53`);
  return Number(value);
}

function toBigInt(n, what) {
  if (typeof n === 'bigint') {
    if (n < 0n) throw new RangeError(`${what} is negative`);
    return n;
  }
  if (!Number.isInteger(n) || n < 0 || n > TWO_53) throw new RangeError(`${what} is an integer from 0 to 2^53`);
  return BigInt(n);
}

function padmeBig(length) {
  if (length < 2n) return length;
  const e = BigInt(bitLength(length) - 1); // floor(log2 L)
  const s = BigInt(bitLength(e)); // floor(log2 E) + 1
  const mask = (1n << (e - s)) - 1n;
  return (length + mask) & ~mask;
}

function chunkCountBig(padded) {
  const chunks = (padded + BigInt(CHUNK_SIZE) - 1n) / BigInt(CHUNK_SIZE);
  return chunks > 1n ? chunks : 1n;
}

/**
 * Padmé: `L` for `L < 2`; otherwise rounds `L` up to a multiple of `2^(E-S)` with
 * `E = floor(log2 L)`, `S = floor(log2 E) + 1`. Exact for every Number up to 2^53; a BigInt in
 * gives a BigInt out (any u64).
 * @template {number|bigint} T
 * @param {T} length
 * @returns {T}
 */
export function padme(length) {
  if (typeof length === 'bigint') return padmeBig(toBigInt(length, 'a length'));
  return toNumber(padmeBig(toBigInt(length, 'a length')));
}

/** Chunks in a stream of `padded` plaintext bytes (an empty file has one empty chunk). @param {number} padded @returns {number} */
export function chunkCount(padded) {
  return toNumber(chunkCountBig(toBigInt(padded, 'a padded length')));
}

/** The stored length of a file of `size` content bytes: `17 + P + 16 * chunks`. @param {number} size @returns {number} */
export function ciphertextLength(size) {
  const padded = padmeBig(toBigInt(size, 'a size'));
  const total = BigInt(HEADER_SIZE) + padded + BigInt(TAG_SIZE) * chunkCountBig(padded);
  if (total > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError('the stored length is beyond 2^53');
  return Number(total);
}

/**
 * Whether some stream has exactly this stored length, i.e. `length = ciphertextLength(size)` for
 * some size (PROTOCOL 9.1). Stricter than CircleKit's VaultStream.isValidLength, which only checks
 * the chunk layout and so also accepts lengths whose padded size no content pads to (e.g. 42 =
 * 17 + 9 + 16, while padme never yields 9): here the padded length must also be a Padmé value.
 * @param {number|bigint} length
 * @returns {boolean}
 */
export function isValidLength(length) {
  let total;
  try {
    total = toBigInt(length, 'a length');
  } catch {
    return false;
  }
  const header = BigInt(HEADER_SIZE), tag = BigInt(TAG_SIZE);
  if (total < header + tag) return false;
  const body = total - header;
  const full = BigInt(CHUNK_SIZE + TAG_SIZE);
  let chunks = (body + full - 1n) / full;
  if (chunks < 1n) chunks = 1n;
  if (body < chunks * tag) return false;
  const padded = body - chunks * tag;
  // Padmé values are exactly its fixed points (padme is idempotent and padme(P) = P means P is one).
  return chunkCountBig(padded) === chunks && padmeBig(padded) === padded;
}

/** `u88(counter) || u8(last)`. */
function streamNonce(counter, last) {
  const nonce = new Uint8Array(NONCE_SIZE);
  const high = Math.floor(counter / 2 ** 32), low = counter >>> 0;
  nonce[3] = (high >>> 24) & 0xff; nonce[4] = (high >>> 16) & 0xff; nonce[5] = (high >>> 8) & 0xff; nonce[6] = high & 0xff;
  nonce[7] = (low >>> 24) & 0xff; nonce[8] = (low >>> 16) & 0xff; nonce[9] = (low >>> 8) & 0xff; nonce[10] = low & 0xff;
  nonce[11] = last ? 1 : 0;
  return nonce;
}

async function importAes(raw) {
  try {
    return await crypto.subtle.importKey('raw', raw, { name: 'AES-GCM' }, false, ['encrypt', 'decrypt']);
  } finally {
    raw.fill(0);
  }
}

/** `HKDF-SHA256(ikm = fileKey, salt, info = "circle/v1/vault/payload" || u8(1), 32)`, non-extractable. */
async function payloadKey(fileKey, salt) {
  const prk = await hkdfExtract(salt, fileKey);
  try {
    return await importAes(await hkdfExpand(prk, PAYLOAD_INFO, 32));
  } finally {
    prk.fill(0);
  }
}

/**
 * Runs `check` then `work`, unless another call on `owner` is still running. A refusal by
 * `check` leaves `owner` as it was; a failure of `work` poisons it (every later call rethrows).
 */
async function exclusive(owner, check, work) {
  if (owner.failure) throw owner.failure;
  if (owner.busy) throw new Error('one call at a time: await the previous one');
  check?.();
  owner.busy = true;
  try {
    return await work();
  } catch (error) {
    owner.failure = error;
    throw error;
  } finally {
    owner.busy = false;
  }
}

/**
 * Seals a file's content as it is read (PROTOCOL 9.1): give it the content in pieces of any size
 * with `seal`, then call `finish`. It holds at most one chunk of plaintext; a full chunk is
 * sealed once it is known not to be the last. Calls must not overlap (await each).
 */
export class StreamSealer {
  /**
   * @param {Uint8Array} fileKey 32 bytes
   * @param {number} size the content's exact length
   * @param {Uint8Array} [salt] 16 bytes; random unless given (vectors only)
   * @returns {Promise<StreamSealer>}
   */
  static async create(fileKey, size, salt = random(SALT_SIZE)) {
    checkBytes(fileKey, FILE_KEY_SIZE, 'a file key');
    checkBytes(salt, SALT_SIZE, 'a payload salt');
    checkSize(size);
    return new StreamSealer(await payloadKey(fileKey, salt), concat(u8(VERSION), salt), size);
  }

  /** Use `StreamSealer.create`. */
  constructor(key, header, size) {
    if (!(key instanceof CryptoKey)) throw new TypeError('use StreamSealer.create');
    /** `u8(1) || salt`: the first 17 bytes of the payload. @type {Uint8Array} */
    this.header = header;
    this.key = key;
    this.size = size;
    this.paddedLength = padme(size);
    this.chunks = chunkCount(this.paddedLength);
    this.pending = new Uint8Array(CHUNK_SIZE);
    this.pendingLength = 0;
    this.consumed = 0;
    this.counter = 0;
    this.finished = false;
    this.busy = false;
    this.failure = null;
  }

  /** The payload's total length (header included). @returns {number} */
  get ciphertextLength() {
    return ciphertextLength(this.size);
  }

  async sealChunk(plaintext, last) {
    const sealed = await aesGcmEncrypt(this.key, streamNonce(this.counter, last), plaintext, new Uint8Array(0));
    this.counter += 1;
    return sealed;
  }

  /**
   * The sealed chunks this piece completes (possibly none). More content than the announced size
   * throws ('malformed') and leaves the sealer as it was.
   * @param {Uint8Array} content
   * @returns {Promise<Uint8Array>}
   */
  async seal(content) {
    if (!(content instanceof Uint8Array)) throw new TypeError('seal takes a Uint8Array');
    return exclusive(this, () => {
      if (this.finished) throw malformed('the stream is finished');
      if (content.length > this.size - this.consumed) throw malformed('more content than the announced size');
    }, async () => {
      this.consumed += content.length;
      const out = [];
      let offset = 0;
      while (offset < content.length) {
        // A chunk that is not the last (by the count from padme(size)) is sealed as soon as it is
        // whole; whole chunks at the start of a piece are sealed straight from it.
        if (this.pendingLength === 0 && content.length - offset >= CHUNK_SIZE && this.counter + 1 < this.chunks) {
          out.push(await this.sealChunk(content.subarray(offset, offset + CHUNK_SIZE), false));
          offset += CHUNK_SIZE;
          continue;
        }
        const take = Math.min(content.length - offset, CHUNK_SIZE - this.pendingLength);
        this.pending.set(content.subarray(offset, offset + take), this.pendingLength);
        this.pendingLength += take;
        offset += take;
        if (this.pendingLength === CHUNK_SIZE && this.counter + 1 < this.chunks) {
          out.push(await this.sealChunk(this.pending, false));
          this.pendingLength = 0;
        }
      }
      return concat(...out);
    });
  }

  /**
   * The remaining chunks: the content's tail, the padding zeros, the final flag. Throws
   * ('malformed') if content is missing, and leaves the sealer as it was.
   * @returns {Promise<Uint8Array>}
   */
  async finish() {
    return exclusive(this, () => {
      if (this.finished) throw malformed('the stream is finished');
      if (this.consumed !== this.size) throw malformed(`${this.size - this.consumed} bytes of content missing`);
    }, async () => {
      const out = [];
      let padding = this.paddedLength - this.size;
      do {
        const take = Math.min(padding, CHUNK_SIZE - this.pendingLength);
        this.pending.fill(0, this.pendingLength, this.pendingLength + take);
        this.pendingLength += take;
        padding -= take;
        const last = this.counter + 1 === this.chunks;
        if (last || this.pendingLength === CHUNK_SIZE) {
          out.push(await this.sealChunk(this.pending.subarray(0, this.pendingLength), last));
          this.pendingLength = 0;
        }
      } while (this.counter < this.chunks);
      this.finished = true;
      this.pending.fill(0);
      return concat(...out);
    });
  }
}

/**
 * Opens a payload as it arrives, in pieces of any size, knowing the content's size from the
 * metadata or the attachment (PROTOCOL 9.1). Returns only content whose chunk verified, checks
 * the padding zeros, and refuses anything after the final chunk; `finish` throws until the final
 * chunk verified. After any refusal the opener refuses everything. Calls must not overlap.
 */
export class StreamOpener {
  /**
   * @param {Uint8Array} fileKey 32 bytes
   * @param {number} size the content's exact length
   * @returns {StreamOpener}
   */
  static create(fileKey, size) {
    checkBytes(fileKey, FILE_KEY_SIZE, 'a file key');
    checkSize(size);
    return new StreamOpener(fileKey.slice(), size);
  }

  /** Use `StreamOpener.create`. */
  constructor(fileKey, size) {
    this.fileKey = fileKey;
    this.size = size;
    this.paddedLength = padme(size);
    this.chunks = chunkCount(this.paddedLength);
    this.key = null;
    this.header = new Uint8Array(HEADER_SIZE);
    this.headerLength = 0;
    this.buffer = new Uint8Array(CHUNK_SIZE + TAG_SIZE);
    this.bufferLength = 0;
    this.counter = 0;
    this.produced = 0;
    /** Whether the final chunk verified (and nothing followed). @type {boolean} */
    this.complete = false;
    this.busy = false;
    this.failure = null;
  }

  /** Sealed length of the current chunk. */
  sealedLength() {
    const last = this.counter + 1 === this.chunks;
    return (last ? this.paddedLength - this.counter * CHUNK_SIZE : CHUNK_SIZE) + TAG_SIZE;
  }

  async openChunk(sealed) {
    const last = this.counter + 1 === this.chunks;
    const plain = await aesGcmDecrypt(this.key, streamNonce(this.counter, last), sealed, new Uint8Array(0));
    const start = this.counter * CHUNK_SIZE;
    this.counter += 1;
    // Content first, then the padding zeros, which are checked and dropped.
    const content = Math.min(plain.length, Math.max(0, this.size - start));
    let padding = 0;
    for (let index = content; index < plain.length; index++) padding |= plain[index];
    if (padding !== 0) throw malformed('non-zero padding');
    this.produced += content;
    return plain.subarray(0, content);
  }

  /**
   * The verified content this piece makes available (possibly empty).
   * @param {Uint8Array} bytes
   * @returns {Promise<Uint8Array>}
   */
  async open(bytes) {
    if (!(bytes instanceof Uint8Array)) throw new TypeError('open takes a Uint8Array');
    return exclusive(this, null, async () => {
      if (this.complete) {
        if (bytes.length > 0) throw malformed('data after the final chunk');
        return new Uint8Array(0);
      }
      const out = [];
      let offset = 0;
      if (this.key === null) {
        const take = Math.min(bytes.length, HEADER_SIZE - this.headerLength);
        this.header.set(bytes.subarray(0, take), this.headerLength);
        this.headerLength += take;
        offset = take;
        if (this.headerLength > 0 && this.header[0] !== VERSION) throw malformed(`unknown vault format version ${this.header[0]}`);
        if (this.headerLength < HEADER_SIZE) return new Uint8Array(0);
        this.key = await payloadKey(this.fileKey, this.header.subarray(1));
        this.fileKey.fill(0);
      }
      while (this.counter < this.chunks && offset < bytes.length) {
        const need = this.sealedLength();
        if (this.bufferLength === 0 && bytes.length - offset >= need) {
          out.push(await this.openChunk(bytes.subarray(offset, offset + need)));
          offset += need;
          continue;
        }
        const take = Math.min(bytes.length - offset, need - this.bufferLength);
        this.buffer.set(bytes.subarray(offset, offset + take), this.bufferLength);
        this.bufferLength += take;
        offset += take;
        if (this.bufferLength === need) {
          out.push(await this.openChunk(this.buffer.subarray(0, need)));
          this.bufferLength = 0;
        }
      }
      if (this.counter === this.chunks) {
        if (offset < bytes.length) throw malformed('data after the final chunk');
        this.complete = true;
      }
      return concat(...out);
    });
  }

  /** Throws ('malformed') unless the whole stream, final chunk included, verified. */
  finish() {
    if (this.failure) throw this.failure;
    if (!this.complete) throw malformed('the file is incomplete (its final chunk never verified)');
  }
}

// MARK: Metadata (PROTOCOL 9.2)

function wellFormed(text) {
  if (typeof text !== 'string') return false;
  if (typeof text.isWellFormed === 'function') return text.isWellFormed();
  return !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(text);
}

function metadataKey(fileKey) {
  checkBytes(fileKey, FILE_KEY_SIZE, 'a file key');
  return hkdf(fileKey, META_LABEL, 32).then(importAes);
}

/**
 * `u8(1) || field(name) || field(type) || u64(size)`, zero-padded to a multiple of 256.
 * @param {{name: string, type: string, size: number}} meta
 * @returns {Uint8Array}
 */
export function encodeMetadata({ name, type, size }) {
  if (!wellFormed(name) || !wellFormed(type)) throw malformed('a file name and media type are text');
  const nameBytes = utf8(name), typeBytes = utf8(type);
  if (nameBytes.length < 1 || nameBytes.length > MAXIMUM_NAME) throw malformed(`a file name is 1 to ${MAXIMUM_NAME} bytes`);
  if (typeBytes.length > MAXIMUM_TYPE) throw malformed(`a media type is at most ${MAXIMUM_TYPE} bytes`);
  checkSize(size);
  const body = concat(u8(1), field(nameBytes), field(typeBytes), u64(size));
  const padded = new Uint8Array(Math.ceil(body.length / METADATA_BUCKET) * METADATA_BUCKET);
  padded.set(body);
  return padded;
}

/**
 * Reads padded metadata, refusing another version, longer fields, padding that is not zeros or
 * not the shortest, sizes beyond 2^53 - 1 and anything that is not UTF-8.
 * @param {Uint8Array} bytes
 * @returns {{name: string, type: string, size: number}}
 */
export function decodeMetadata(bytes) {
  if (!(bytes instanceof Uint8Array) || bytes.length % METADATA_BUCKET !== 0) throw malformed('metadata is not padded');
  const reader = new Reader(bytes);
  if (reader.u8() !== 1) throw malformed('unknown metadata version');
  const name = reader.field(MAXIMUM_NAME), type = reader.field(MAXIMUM_TYPE);
  const size = reader.u64();
  const used = reader.offset;
  let padding = 0;
  for (let index = used; index < bytes.length; index++) padding |= bytes[index];
  if (padding !== 0 || used + METADATA_BUCKET <= bytes.length) throw malformed('non-zero metadata padding');
  let nameText, typeText;
  try {
    nameText = strictUtf8.decode(name);
    typeText = strictUtf8.decode(type);
  } catch {
    throw malformed('metadata is not UTF-8');
  }
  if (nameText.length === 0) throw malformed('metadata is not UTF-8');
  return { name: nameText, type: typeText, size };
}

/**
 * `AES-GCM(HKDF(fileKey, "circle/v1/vault/meta", 32), meta, aad = fileId)` as `nonce || ct || tag`.
 * @param {{name: string, type: string, size: number}} meta
 * @param {Uint8Array} fileKey 32 bytes
 * @param {Uint8Array} fileId 16 bytes
 * @param {Uint8Array} [nonce] fixed only in tests
 * @returns {Promise<Uint8Array>}
 */
export async function sealMetadata(meta, fileKey, fileId, nonce) {
  checkBytes(fileId, FILE_ID_SIZE, 'a file id');
  const plaintext = encodeMetadata(meta);
  return aesGcmSeal(await metadataKey(fileKey), plaintext, fileId, nonce);
}

/**
 * Opens sealed metadata; another file's (other id or key) fails ('decryption-failed').
 * @param {Uint8Array} sealed
 * @param {Uint8Array} fileKey
 * @param {Uint8Array} fileId
 * @returns {Promise<{name: string, type: string, size: number}>}
 */
export async function openMetadata(sealed, fileKey, fileId) {
  checkBytes(fileId, FILE_ID_SIZE, 'a file id');
  return decodeMetadata(await aesGcmOpen(await metadataKey(fileKey), sealed, fileId));
}

// MARK: The owner's wrap (PROTOCOL 9.3)

/**
 * The owner's wrap key, `HKDF(vmk, "circle/v1/vault/wrap", 32)`, as a non-extractable AES-GCM
 * CryptoKey, so the vault master key need not stay in memory.
 * @param {Uint8Array} vmk
 * @returns {Promise<CryptoKey>}
 */
export async function vaultWrapKey(vmk) {
  checkBytes(vmk, 32, 'a vault master key');
  return importAes(await hkdf(vmk, WRAP_LABEL, 32));
}

function wrapKeyOf(vmkOrWrapKey) {
  if (vmkOrWrapKey instanceof CryptoKey) {
    if (vmkOrWrapKey.algorithm?.name !== 'AES-GCM') throw malformed('a wrap key is an AES-GCM key');
    return vmkOrWrapKey;
  }
  return vaultWrapKey(vmkOrWrapKey);
}

function ownerAad(owner, fileId) {
  if (!isUserId(owner)) throw malformed('the owner is a user id');
  checkBytes(fileId, FILE_ID_SIZE, 'a file id');
  return concat(utf8(owner), fileId);
}

/**
 * `AES-GCM(HKDF(vmk, "circle/v1/vault/wrap"), fileKey, aad = owner (36) || fileId)`.
 * @param {Uint8Array} fileKey 32 bytes
 * @param {string} owner the owner's user id
 * @param {Uint8Array} fileId 16 bytes
 * @param {Uint8Array|CryptoKey} vmkOrWrapKey the vault master key, or `vaultWrapKey(vmk)`
 * @param {Uint8Array} [nonce] fixed only in tests
 * @returns {Promise<Uint8Array>}
 */
export async function wrapFileKey(fileKey, owner, fileId, vmkOrWrapKey, nonce) {
  checkBytes(fileKey, FILE_KEY_SIZE, 'a file key');
  const aad = ownerAad(owner, fileId);
  return aesGcmSeal(await wrapKeyOf(vmkOrWrapKey), fileKey, aad, nonce);
}

/**
 * The file key of an owner's wrap; another owner's or file's fails ('decryption-failed').
 * @param {Uint8Array} wrapped
 * @param {string} owner
 * @param {Uint8Array} fileId
 * @param {Uint8Array|CryptoKey} vmkOrWrapKey
 * @returns {Promise<Uint8Array>} 32 bytes
 */
export async function unwrapFileKey(wrapped, owner, fileId, vmkOrWrapKey) {
  const aad = ownerAad(owner, fileId);
  const key = await aesGcmOpen(await wrapKeyOf(vmkOrWrapKey), wrapped, aad);
  if (key.length !== FILE_KEY_SIZE) throw malformed('a file key is 32 bytes');
  return key;
}

// MARK: Share links (PROTOCOL 9.5)

/**
 * What a link's holder rebuilds: `unwrapKey` (opens the link's wrap), `access` (shown to the
 * server) and `verifier = SHA-256(access)` (what the server keeps). With a password, both also
 * depend on `PBKDF2-SHA256(NFC(password), salt, iterations, 32)`; `null`/`undefined` means no
 * password (an empty string is a password).
 * @param {Uint8Array} linkKey 32 bytes
 * @param {string|null} [password]
 * @param {Uint8Array} [salt] 16 bytes, required with a password
 * @param {number} [iterations] 600,000 to 10,000,000
 * @returns {Promise<{unwrapKey: Uint8Array, access: Uint8Array, verifier: Uint8Array}>}
 */
export async function linkSecrets(linkKey, password, salt, iterations = LINK_ITERATIONS) {
  checkBytes(linkKey, LINK_KEY_SIZE, 'a link key');
  let material = linkKey;
  if (password !== undefined && password !== null) {
    if (typeof password !== 'string') throw new TypeError('a link password is a string');
    checkBytes(salt, LINK_SALT_SIZE, 'a link salt');
    if (!Number.isSafeInteger(iterations) || iterations < LINK_ITERATIONS || iterations > MAXIMUM_LINK_ITERATIONS) {
      throw new ProtocolError('refused-kdf', `a link password needs ${LINK_ITERATIONS} to ${MAXIMUM_LINK_ITERATIONS} PBKDF2 iterations`);
    }
    const passwordBytes = utf8(password.normalize('NFC'));
    const stretched = await pbkdf2(passwordBytes, salt, iterations, 32);
    passwordBytes.fill(0);
    material = concat(linkKey, stretched);
    stretched.fill(0);
  }
  try {
    const unwrapKey = await hkdf(material, LINK_UNWRAP_LABEL, 32);
    const access = await hkdf(material, LINK_ACCESS_LABEL, 32);
    return { unwrapKey, access, verifier: await sha256(access) };
  } finally {
    if (material !== linkKey) material.fill(0);
  }
}

function linkAad(linkId) {
  checkBytes(linkId, LINK_ID_SIZE, 'a link id');
  return concat(LINK_LABEL, linkId);
}

function unwrapKeyOf(secrets) {
  checkBytes(secrets?.unwrapKey, 32, 'an unwrap key');
  return secrets.unwrapKey;
}

/**
 * `AES-GCM(unwrapKey, fileKey, aad = "circle/v1/vault/link" || linkId)`.
 * @param {Uint8Array} fileKey
 * @param {Uint8Array} linkId 16 bytes
 * @param {{unwrapKey: Uint8Array}} secrets from `linkSecrets`
 * @param {Uint8Array} [nonce] fixed only in tests
 * @returns {Promise<Uint8Array>}
 */
export async function wrapForLink(fileKey, linkId, secrets, nonce) {
  checkBytes(fileKey, FILE_KEY_SIZE, 'a file key');
  return aesGcmSeal(unwrapKeyOf(secrets), fileKey, linkAad(linkId), nonce);
}

/**
 * The file key of a link's wrap; a wrong link key or password, or another link's id, fails
 * ('decryption-failed').
 * @param {Uint8Array} wrapped
 * @param {Uint8Array} linkId
 * @param {{unwrapKey: Uint8Array}} secrets
 * @returns {Promise<Uint8Array>} 32 bytes
 */
export async function unwrapFromLink(wrapped, linkId, secrets) {
  const key = await aesGcmOpen(unwrapKeyOf(secrets), wrapped, linkAad(linkId));
  if (key.length !== FILE_KEY_SIZE) throw malformed('a file key is 32 bytes');
  return key;
}

/** A fresh 32-byte file key. @returns {Uint8Array} */
export function generateFileKey() {
  return random(FILE_KEY_SIZE);
}

/** A fresh 16-byte file id. @returns {Uint8Array} */
export function generateFileId() {
  return random(FILE_ID_SIZE);
}

/** A fresh link: 16-byte id and 32-byte key. @returns {{linkId: Uint8Array, linkKey: Uint8Array}} */
export function generateLink() {
  return { linkId: random(LINK_ID_SIZE), linkKey: random(LINK_KEY_SIZE) };
}

/** A fresh 16-byte salt for a link password. @returns {Uint8Array} */
export function generateLinkSalt() {
  return random(LINK_SALT_SIZE);
}

// MARK: Incremental SHA-256 (FIPS 180-4)

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);
const INITIAL = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19];

/**
 * SHA-256 fed in pieces (WebCrypto only hashes a whole buffer): `update` as often as needed,
 * then `digest` once. Used to hash a multi-GB payload while it streams.
 */
export class Sha256 {
  constructor() {
    this.state = new Int32Array(INITIAL);
    this.w = new Int32Array(64);
    this.block = new Uint8Array(64);
    this.blockLength = 0;
    this.length = 0; // bytes hashed so far
    this.done = false;
  }

  /** SHA-256 of one buffer (same as WebCrypto's). @param {Uint8Array} bytes @returns {Uint8Array} */
  static hash(bytes) {
    return new Sha256().update(bytes).digest();
  }

  compress(data, offset) {
    const w = this.w, s = this.state;
    for (let t = 0; t < 16; t++) {
      const i = offset + 4 * t;
      w[t] = (data[i] << 24) | (data[i + 1] << 16) | (data[i + 2] << 8) | data[i + 3];
    }
    for (let t = 16; t < 64; t++) {
      const a = w[t - 15], b = w[t - 2];
      const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
      const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
      w[t] = (w[t - 16] + s0 + w[t - 7] + s1) | 0;
    }
    let a = s[0], b = s[1], c = s[2], d = s[3], e = s[4], f = s[5], g = s[6], h = s[7];
    for (let t = 0; t < 64; t++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const ch = (e & f) ^ (~e & g);
      const t1 = (h + S1 + ch + K[t] + w[t]) | 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const maj = (a & b) ^ (a & c) ^ (b & c);
      const t2 = (S0 + maj) | 0;
      h = g; g = f; f = e; e = (d + t1) | 0;
      d = c; c = b; b = a; a = (t1 + t2) | 0;
    }
    s[0] = (s[0] + a) | 0; s[1] = (s[1] + b) | 0; s[2] = (s[2] + c) | 0; s[3] = (s[3] + d) | 0;
    s[4] = (s[4] + e) | 0; s[5] = (s[5] + f) | 0; s[6] = (s[6] + g) | 0; s[7] = (s[7] + h) | 0;
  }

  /** Hashes more bytes. @param {Uint8Array} bytes @returns {Sha256} this */
  update(bytes) {
    if (!(bytes instanceof Uint8Array)) throw new TypeError('update takes a Uint8Array');
    if (this.done) throw new Error('digest was already taken');
    let offset = 0;
    this.length += bytes.length;
    if (this.blockLength > 0) {
      const take = Math.min(bytes.length, 64 - this.blockLength);
      this.block.set(bytes.subarray(0, take), this.blockLength);
      this.blockLength += take;
      offset = take;
      if (this.blockLength < 64) return this;
      this.compress(this.block, 0);
      this.blockLength = 0;
    }
    for (; offset + 64 <= bytes.length; offset += 64) this.compress(bytes, offset);
    this.block.set(bytes.subarray(offset), 0);
    this.blockLength = bytes.length - offset;
    return this;
  }

  /** The 32-byte hash; the object is spent afterwards. @returns {Uint8Array} */
  digest() {
    if (this.done) throw new Error('digest was already taken');
    this.done = true;
    const block = this.block;
    block[this.blockLength] = 0x80;
    block.fill(0, this.blockLength + 1);
    if (this.blockLength >= 56) {
      this.compress(block, 0);
      block.fill(0);
    }
    // The length in bits as a u64: high = floor(bytes / 2^29), low = (bytes mod 2^29) * 8.
    const high = Math.floor(this.length / 2 ** 29), low = (this.length % 2 ** 29) * 8;
    block[56] = (high >>> 24) & 0xff; block[57] = (high >>> 16) & 0xff; block[58] = (high >>> 8) & 0xff; block[59] = high & 0xff;
    block[60] = (low >>> 24) & 0xff; block[61] = (low >>> 16) & 0xff; block[62] = (low >>> 8) & 0xff; block[63] = low & 0xff;
    this.compress(block, 0);
    const out = new Uint8Array(32);
    for (let i = 0; i < 8; i++) {
      const word = this.state[i];
      out[4 * i] = (word >>> 24) & 0xff; out[4 * i + 1] = (word >>> 16) & 0xff;
      out[4 * i + 2] = (word >>> 8) & 0xff; out[4 * i + 3] = word & 0xff;
    }
    return out;
  }
}
