/**
 * Shared Curve25519 constants and little-endian comparisons for the explicit key checks
 * (docs/PROTOCOL.md section 3, CircleCrypto/KeyChecks.swift). Internal to the protocol modules.
 * @module protocol/curve
 */
import { fromHex, ProtocolError } from './bytes.js';

/** 2^255 - 19, little-endian. */
export const P = fromHex('ed' + 'ff'.repeat(30) + '7f');
/** p - 1, little-endian. */
export const P_MINUS_ONE = fromHex('ec' + 'ff'.repeat(30) + '7f');
/** The order L of the Ed25519 base point, little-endian. */
export const L = fromHex('edd3f55c1a631258d69cf7a2def9de14' + '00'.repeat(15) + '10');
export const ZERO = new Uint8Array(32);
export const ONE = fromHex('01' + '00'.repeat(31));

/** Whether `a < b`, both little-endian numbers of the same length. */
export function lessThan(a, b) {
  for (let index = a.length - 1; index >= 0; index--) {
    if (a[index] !== b[index]) return a[index] < b[index];
  }
  return false;
}

/** Whether a 32-byte value equals one in `list` (public values; no need for constant time). */
export function isOneOf(value, list) {
  return list.some((entry) => entry.every((byte, index) => byte === value[index]));
}

/** A ProtocolError 'weak-key'. */
export function weakKey(what) {
  return new ProtocolError('weak-key', `refused key: ${what}`);
}

/** Throws unless `bytes` is a Uint8Array of `length` bytes. */
export function requireLength(bytes, length, what) {
  if (!(bytes instanceof Uint8Array) || bytes.length !== length) {
    throw weakKey(`${what} must be ${length} bytes`);
  }
}
