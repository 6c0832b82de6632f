/**
 * Safety numbers (docs/PROTOCOL.md section 5.2, CircleKit/SafetyNumber.swift): what two
 * members compare to know they see each other's real identity keys. Display names are not hashed.
 * @module protocol/safety
 */
import { ProtocolError, concat, u8, utf8 } from './bytes.js';
import { sha512 } from './primitives.js';

/** SHA-512 rounds per half. */
export const ITERATIONS = 5200;

/**
 * One member's 30 digits: `h_0 = 0x00 || "circle/v1/safety" || serverId || userId || identityPub`,
 * `h_{i+1} = SHA-512(h_i || identityPub)` 5,200 times, then `u40(chunk) mod 100000` as 5 digits
 * for each of the first six 5-byte chunks.
 * @param {string} serverId
 * @param {string} userId
 * @param {Uint8Array} identityPub
 * @returns {Promise<string>}
 */
export async function safetyHalf(serverId, userId, identityPub) {
  let hash = concat(u8(0), utf8('circle/v1/safety'), utf8(serverId), utf8(userId), identityPub);
  for (let round = 0; round < ITERATIONS; round++) hash = await sha512(concat(hash, identityPub));
  let digits = '';
  for (let chunk = 0; chunk < 6; chunk++) {
    let value = 0;
    for (const byte of hash.subarray(chunk * 5, chunk * 5 + 5)) value = value * 256 + byte;
    digits += String(value % 100000).padStart(5, '0');
  }
  return digits;
}

/**
 * The number both members see: the two halves sorted and joined, as 12 groups of 5 digits.
 * @param {string} halfA
 * @param {string} halfB
 * @returns {string}
 */
export function safetyNumber(halfA, halfB) {
  for (const half of [halfA, halfB]) {
    if (typeof half !== 'string' || !/^[0-9]{30}$/.test(half)) throw new ProtocolError('malformed', 'a safety number half is 30 digits');
  }
  return [halfA, halfB].sort().join('').match(/.{5}/g).join(' ');
}
