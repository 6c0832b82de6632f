/**
 * What the client refuses to do on the user's behalf until they decide (CircleKit's ChatAlarm),
 * and plain refusals.
 * @module client/errors
 */

/** The directory shows another identity key than the pinned one: sending to that contact is blocked. */
export class KeyChangedError extends Error {
  /** @param {{userId: string, username?: string, convId?: string|null}} who */
  constructor({ userId, username = null, convId = null }) {
    super(`the identity key of ${username ?? userId} changed: compare safety numbers, then accept the new key`);
    this.name = 'KeyChangedError';
    this.code = 'key-changed';
    this.userId = userId;
    this.username = username;
    this.convId = convId;
  }
}

/** The server showed two histories of a conversation, rolled one back, or withheld an op. */
export class ForkError extends Error {
  /** @param {string} why @param {string|null} [convId] */
  constructor(why, convId = null) {
    super(`FORK ALARM: ${why}; do not trust this conversation until members compare safety numbers`);
    this.name = 'ForkError';
    this.code = 'fork';
    this.convId = convId;
  }
}

/** Something the client will not do (not a member, not the author, not signed in...). */
export class RefusedError extends Error {
  /** @param {string} message */
  constructor(message) {
    super(message);
    this.name = 'RefusedError';
    this.code = 'refused';
  }
}
