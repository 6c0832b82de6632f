/**
 * The member's security activity chain (docs/API.md, "Security activity"), checked in the
 * browser: every entry's hash is recomputed, and the server's history must extend the newest
 * entry this device saw before. The server could otherwise rewrite the past unnoticed.
 * @module client/activity-chain
 */
import { b64u, concat, field, fromB64u, u64, u8, utf8 } from '../protocol/bytes.js';
import { sha256 } from '../protocol/primitives.js';

/**
 * An entry's hash after `previous`:
 * `SHA-256(previous || u8(1) || field(chain) || u64(seq) || u64(at) || field(kind) ||
 * field(sessionId) || field(keyId) || field(ipSealed) || field(uaSealed) || field(details) || u8(alert))`.
 * @param {string} previous the previous entry's hash (base64url)
 * @param {string} chain the chain's name: the member's user id
 * @param {{seq: number, at: number, kind: string, sessionId: string, keyId: string, ipSealed: string,
 *   uaSealed: string, details: string, alert: boolean}} entry as the API gives it
 * @returns {Promise<string>} base64url
 */
export async function entryHash(previous, chain, entry) {
  return b64u(await sha256(concat(
    fromB64u(previous),
    u8(1),
    field(utf8(chain)),
    u64(entry.seq),
    u64(entry.at),
    field(utf8(entry.kind)),
    field(utf8(entry.sessionId)),
    field(utf8(entry.keyId)),
    field(fromB64u(entry.ipSealed)),
    field(fromB64u(entry.uaSealed)),
    field(utf8(entry.details)),
    u8(entry.alert ? 1 : 0),
  )));
}

/**
 * Follows consecutive entries (oldest first) from the position `{seq, hash}` just before them.
 * @returns {Promise<{position: {seq: number, hash: string}, broken: number|null}>} the last entry
 *   that chains, and the number of the first one that is missing or whose hash is not the one
 *   recomputed (null when all chain)
 */
async function follow(chain, from, entries) {
  let position = from;
  for (const entry of entries) {
    if (entry.seq !== position.seq + 1 || await entryHash(position.hash, chain, entry) !== entry.hash) {
      return { position, broken: position.seq + 1 };
    }
    position = { seq: entry.seq, hash: entry.hash };
  }
  return { position, broken: null };
}

/**
 * Whether a page as shown (newest first) chains: each entry from the one below it, and the
 * oldest kept entry from the chain's anchor.
 * @param {string} chain
 * @param {object[]} entries newest first
 * @param {{seq: number, hash: string}} anchor
 */
export async function pageChains(chain, entries, anchor) {
  const ordered = [...entries].reverse();
  if (ordered.length === 0) return true;
  const [oldest, ...later] = ordered;
  if (oldest.seq === anchor.seq + 1 && await entryHash(anchor.hash, chain, oldest) !== oldest.hash) return false;
  return (await follow(chain, { seq: oldest.seq, hash: oldest.hash }, later)).broken === null;
}

/**
 * Checks that the server's chain extends `remembered` (the newest entry this device verified):
 * the entry at `remembered.seq` still has `remembered.hash`, and every later entry up to the head
 * chains from it. Without a remembered position the chain is checked from its anchor.
 * @param {{chain: string, remembered: {seq: number, hash: string}|null,
 *   fetchAfter: (after: number) => Promise<{entries: object[], more: boolean, head: {seq: number, hash: string},
 *   anchor: {seq: number, hash: string}}>}} options `fetchAfter(n)` gives the entries after n, oldest first
 * @returns {Promise<{ok: true, head: {seq: number, hash: string}}|{ok: false, seq: number}>} on failure,
 *   `seq` is the first entry that changed or is missing
 */
export async function checkExtends({ chain, remembered, fetchAfter }) {
  let page;
  let position;
  let entries;
  if (remembered) {
    page = await fetchAfter(remembered.seq - 1);
    const [first, ...rest] = page.entries;
    if (!first || first.seq !== remembered.seq || first.hash !== remembered.hash) return { ok: false, seq: remembered.seq };
    position = { seq: remembered.seq, hash: remembered.hash };
    entries = rest;
  } else {
    page = await fetchAfter(0);
    position = { seq: page.anchor.seq, hash: page.anchor.hash };
    entries = page.entries;
  }
  for (;;) {
    const run = await follow(chain, position, entries);
    if (run.broken !== null) return { ok: false, seq: run.broken };
    position = run.position;
    if (!page.more) break;
    page = await fetchAfter(position.seq);
    entries = page.entries;
  }
  if (page.head.seq !== position.seq || page.head.hash !== position.hash) return { ok: false, seq: position.seq + 1 };
  return { ok: true, head: position };
}

