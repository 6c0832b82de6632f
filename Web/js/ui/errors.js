// Turning the client's errors into sentences a person can act on, and showing them in an
// accessible alert.

import { h, replace } from './dom.js';

/** The text to show for an ApiError {status, type, detail, retryAfter}, a ProtocolError
 * {code, message} or anything else thrown. Never includes stack traces or secrets. */
export function describeError(error) {
  if (!error) return 'Something went wrong.';
  if (error.name === 'ApiError' || ('status' in error && 'type' in error)) {
    if (error.status === 0) return `The server cannot be reached (${error.detail || 'no answer'}). Check your connection and try again.`;
    let text = error.detail || error.message || `The server answered ${error.status}.`;
    if (error.retryAfter) text += ` Try again in ${formatWait(error.retryAfter)}.`;
    return text;
  }
  if (error.name === 'ProtocolError' || 'code' in error) {
    return error.message || `Protocol check failed (${error.code}).`;
  }
  if (error.name === 'TypeError' && /fetch/i.test(error.message || '')) {
    return 'The server cannot be reached. Check your connection and try again.';
  }
  return error.message || 'Something went wrong.';
}

function formatWait(seconds) {
  const value = Number(seconds);
  if (!Number.isFinite(value) || value <= 0) return 'a moment';
  if (value < 90) return `${Math.ceil(value)} seconds`;
  return `${Math.ceil(value / 60)} minutes`;
}

/** An alert slot for a form or screen: empty until `show`, role=alert so it is announced. */
export function alertSlot() {
  const element = h('div', { class: 'alert-slot' });
  return {
    element,
    show(error, { kind = 'error' } = {}) {
      const text = typeof error === 'string' ? error : describeError(error);
      replace(element, h('div', { class: `alert alert-${kind}`, role: 'alert' }, text));
    },
    clear() {
      element.replaceChildren();
    },
  };
}
