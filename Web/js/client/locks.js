/**
 * Serialising async work: a keyed mutex within this page, and the same across tabs of this
 * origin (Web Locks) where two tabs could otherwise take the same chain index.
 * @module client/locks
 */

/** A mutex per key: `run(key, fn)` runs `fn` after every earlier `run` of the same key settled. */
export class KeyedMutex {
  constructor() {
    /** @type {Map<string, Promise<void>>} */
    this.tails = new Map();
  }

  /**
   * @template T
   * @param {string} key
   * @param {() => Promise<T>} fn
   * @returns {Promise<T>}
   */
  run(key, fn) {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const result = previous.then(fn);
    const tail = result.then(
      () => {},
      () => {},
    );
    this.tails.set(key, tail);
    tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }
}

/**
 * Runs `fn` holding the origin-wide lock `name` (every tab of this origin), inside this page's
 * mutex too; where Web Locks are missing, the page's mutex alone.
 * @template T
 * @param {KeyedMutex} mutex
 * @param {string} name
 * @param {() => Promise<T>} fn
 * @returns {Promise<T>}
 */
export function exclusive(mutex, name, fn) {
  return mutex.run(name, () => {
    const locks = globalThis.navigator?.locks;
    return locks ? locks.request(name, { mode: 'exclusive' }, fn) : fn();
  });
}
