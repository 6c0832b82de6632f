/**
 * Circle's end-to-end protocol for the browser (docs/PROTOCOL.md), each module as a namespace.
 * @module protocol
 */
export * as bytes from './bytes.js';
export * as primitives from './primitives.js';
export * as ed25519 from './ed25519.js';
export * as x25519 from './x25519.js';
export * as hpke from './hpke.js';
export * as account from './account.js';
export * as membership from './membership.js';
export * as message from './message.js';
export * as envelope from './envelope.js';
export * as callSignal from './call-signal.js';
export * as safety from './safety.js';
export * as pins from './pins.js';
export * as vault from './vault.js';
export { ProtocolError } from './bytes.js';
