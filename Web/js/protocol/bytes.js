/**
 * Byte helpers for Circle's canonical encodings (docs/PROTOCOL.md section 1): big-endian
 * integers, length-prefixed fields, hex, strict unpadded base64url, and a bounds-checked reader.
 * Every byte value is a Uint8Array.
 * @module protocol/bytes
 */

/** Why the protocol code refused something; `code` is one of ERROR_CODES. */
export class ProtocolError extends Error {
  /**
   * @param {string} code a short slug: 'malformed', 'weak-key', 'bad-signature', 'decryption-failed',
   *   'refused-kdf', 'refused' or 'fork'
   * @param {string} message what was refused, for people
   */
  constructor(code, message) {
    super(message);
    this.name = 'ProtocolError';
    this.code = code;
  }
}

/** The codes a ProtocolError carries (mirroring CircleKitError). */
export const ERROR_CODES = Object.freeze({
  malformed: 'malformed',
  weakKey: 'weak-key',
  badSignature: 'bad-signature',
  decryptionFailed: 'decryption-failed',
  refusedKdf: 'refused-kdf',
  refused: 'refused',
  fork: 'fork',
});

function malformed(message) {
  return new ProtocolError('malformed', message);
}

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** UTF-8 bytes of a string (no terminator). @param {string} str @returns {Uint8Array} */
export function utf8(str) {
  return encoder.encode(str);
}

/** The string of UTF-8 bytes; invalid UTF-8 throws. @param {Uint8Array} bytes @returns {string} */
export function fromUtf8(bytes) {
  try {
    return decoder.decode(bytes);
  } catch {
    throw malformed('invalid UTF-8');
  }
}

/** Concatenation of byte strings. @param {...Uint8Array} parts @returns {Uint8Array} */
export function concat(...parts) {
  let length = 0;
  for (const part of parts) {
    if (!(part instanceof Uint8Array)) throw new TypeError('concat takes Uint8Arrays');
    length += part.length;
  }
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

function checkedInteger(n, bits) {
  const max = (1n << BigInt(bits)) - 1n;
  let value;
  if (typeof n === 'bigint') {
    value = n;
  } else if (Number.isSafeInteger(n)) {
    value = BigInt(n);
  } else {
    throw new RangeError(`u${bits} takes an integer`);
  }
  if (value < 0n || value > max) throw new RangeError(`${n} does not fit in u${bits}`);
  return value;
}

function bigEndian(n, bytes) {
  let value = checkedInteger(n, bytes * 8);
  const out = new Uint8Array(bytes);
  for (let index = bytes - 1; index >= 0; index--) {
    out[index] = Number(value & 0xffn);
    value >>= 8n;
  }
  return out;
}

/** One byte. @param {number|bigint} n @returns {Uint8Array} */
export function u8(n) { return bigEndian(n, 1); }
/** Two bytes, big-endian. @param {number|bigint} n @returns {Uint8Array} */
export function u16(n) { return bigEndian(n, 2); }
/** Four bytes, big-endian. @param {number|bigint} n @returns {Uint8Array} */
export function u32(n) { return bigEndian(n, 4); }
/** Eight bytes, big-endian; a Number must be a safe integer. @param {number|bigint} n @returns {Uint8Array} */
export function u64(n) { return bigEndian(n, 8); }

/** `u16(length) || bytes`, for values of at most 65,535 bytes. @param {Uint8Array} bytes @returns {Uint8Array} */
export function field(bytes) {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('field takes a Uint8Array');
  if (bytes.length > 0xffff) throw new RangeError('field too long');
  return concat(u16(bytes.length), bytes);
}

/** Lowercase hex. @param {Uint8Array} bytes @returns {string} */
export function hex(bytes) {
  let out = '';
  for (const byte of bytes) out += byte.toString(16).padStart(2, '0');
  return out;
}

/** Bytes of a hex string (either case, even length, nothing else). @param {string} str @returns {Uint8Array} */
export function fromHex(str) {
  if (typeof str !== 'string' || str.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(str)) throw malformed('invalid hex');
  const out = new Uint8Array(str.length / 2);
  for (let index = 0; index < out.length; index++) out[index] = parseInt(str.slice(2 * index, 2 * index + 2), 16);
  return out;
}

const B64U = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const B64U_VALUES = new Map([...B64U].map((char, index) => [char, index]));

/** Unpadded base64url. @param {Uint8Array} bytes @returns {string} */
export function b64u(bytes) {
  let out = '';
  for (let index = 0; index < bytes.length; index += 3) {
    const chunk = (bytes[index] << 16) | ((bytes[index + 1] ?? 0) << 8) | (bytes[index + 2] ?? 0);
    const chars = Math.min(4, Math.ceil(((bytes.length - index) * 8) / 6));
    for (let c = 0; c < chars; c++) out += B64U[(chunk >> (18 - 6 * c)) & 63];
  }
  return out;
}

/**
 * Strict unpadded base64url: only `A-Z a-z 0-9 - _`, no padding or whitespace, no impossible
 * length, and the unused low bits of the last character must be zero (one encoding per value).
 * @param {string} str
 * @returns {Uint8Array}
 */
export function fromB64u(str) {
  if (typeof str !== 'string') throw malformed('base64url must be a string');
  if (str.length % 4 === 1) throw malformed('invalid base64url length');
  const values = new Uint8Array(str.length);
  for (let index = 0; index < str.length; index++) {
    const value = B64U_VALUES.get(str[index]);
    if (value === undefined) throw malformed('invalid base64url character');
    values[index] = value;
  }
  const rest = str.length % 4;
  if (rest === 2 && (values[str.length - 1] & 0x0f) !== 0) throw malformed('non-canonical base64url');
  if (rest === 3 && (values[str.length - 1] & 0x03) !== 0) throw malformed('non-canonical base64url');
  const out = new Uint8Array(Math.floor((str.length * 6) / 8));
  let bits = 0;
  let buffer = 0;
  let offset = 0;
  for (const value of values) {
    buffer = ((buffer << 6) | value) & 0xffffff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[offset++] = (buffer >> bits) & 0xff;
    }
  }
  return out;
}

/**
 * Whether two byte strings are equal, looking at every byte (no early exit on the content).
 * @param {Uint8Array} a
 * @param {Uint8Array} b
 * @returns {boolean}
 */
export function equal(a, b) {
  if (!(a instanceof Uint8Array) || !(b instanceof Uint8Array) || a.length !== b.length) return false;
  let difference = 0;
  for (let index = 0; index < a.length; index++) difference |= a[index] ^ b[index];
  return difference === 0;
}

/** `n` bytes from the system's CSPRNG. @param {number} n @returns {Uint8Array} */
export function random(n) {
  const out = new Uint8Array(n);
  for (let offset = 0; offset < n; offset += 65536) crypto.getRandomValues(out.subarray(offset, Math.min(n, offset + 65536)));
  return out;
}

/**
 * Whether `text` is a user id as signed: a lowercase UUID string, 36 ASCII characters with
 * dashes at 8, 13, 18 and 23 (mirrors UserIdText.parse).
 * @param {string} text
 * @returns {boolean}
 */
export function isUserId(text) {
  return typeof text === 'string' && /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(text);
}

/**
 * Reads what the encoders wrote: every read checks bounds (a truncated input throws a
 * ProtocolError 'malformed'), and `done()` refuses trailing bytes.
 */
export class Reader {
  /** @param {Uint8Array} bytes */
  constructor(bytes) {
    if (!(bytes instanceof Uint8Array)) throw malformed('expected bytes');
    this.data = bytes;
    this.offset = 0;
  }

  /** Bytes not read yet. @returns {number} */
  get remaining() {
    return this.data.length - this.offset;
  }

  /** Exactly `n` bytes (a copy). @param {number} n @returns {Uint8Array} */
  bytes(n) {
    if (!Number.isInteger(n) || n < 0 || n > this.remaining) throw malformed('truncated');
    const out = this.data.slice(this.offset, this.offset + n);
    this.offset += n;
    return out;
  }

  /** @returns {number} */
  u8() {
    return this.bytes(1)[0];
  }

  /** @returns {number} */
  u16() {
    const b = this.bytes(2);
    return (b[0] << 8) | b[1];
  }

  /** @returns {number} */
  u32() {
    const b = this.bytes(4);
    return ((b[0] << 24) >>> 0) + ((b[1] << 16) | (b[2] << 8) | b[3]);
  }

  /** A u64 as a Number; values beyond 2^53 - 1 throw. @returns {number} */
  u64() {
    let value = 0n;
    for (const byte of this.bytes(8)) value = (value << 8n) | BigInt(byte);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw malformed('u64 beyond 2^53');
    return Number(value);
  }

  /** `u16(length) || bytes`, refusing lengths above `maxLength`. @param {number} [maxLength] @returns {Uint8Array} */
  field(maxLength = 0xffff) {
    const length = this.u16();
    if (length > maxLength) throw malformed(`field longer than ${maxLength}`);
    return this.bytes(length);
  }

  /** Requires that every byte was read (throws otherwise); returns true. @returns {true} */
  done() {
    if (this.offset !== this.data.length) throw malformed('trailing bytes');
    return true;
  }
}
