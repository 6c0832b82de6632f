/**
 * Byte-level helpers shared by the vault client's modules.
 * @module client/vault-bytes
 */
import { ProtocolError, fromB64u } from '../protocol/bytes.js';

/** Bytes read from a Blob at a time: plaintext to seal when uploading, ciphertext to open when downloading. */
export const READ_SLICE = 1024 * 1024;

/** The error for data that does not have the form the protocol gives it. */
export function malformed(message) {
  return new ProtocolError('malformed', message);
}

/** The bytes of unpadded base64url `text` when they are exactly `length` long, else null. */
export function bytesOf(text, length) {
  try {
    const bytes = fromB64u(text);
    return bytes.length === length ? bytes : null;
  } catch {
    return null;
  }
}
