// Live regions: short notices that screen readers read out (new messages, saved settings), and
// visible toasts for things that happen outside the current screen.

import { h } from './dom.js';

let politeRegion;
let toastStack;

function regions() {
  if (!politeRegion) {
    politeRegion = h('div', { class: 'visually-hidden', 'aria-live': 'polite', 'aria-atomic': 'true', id: 'announcer' });
    toastStack = h('div', { class: 'toasts' });
    document.body.append(politeRegion, toastStack);
  }
  return { politeRegion, toastStack };
}

/** Reads `text` to screen readers without showing anything. */
export function announce(text) {
  const { politeRegion: region } = regions();
  region.textContent = '';
  // A fresh text node in a later task is announced even when the text repeats.
  setTimeout(() => { region.textContent = text; }, 30);
}

/** A visible notice that goes away by itself; `kind` is info, success, warning or error. */
export function toast(text, { kind = 'info', timeout = 6000 } = {}) {
  const { toastStack: stack } = regions();
  const close = () => item.remove();
  const item = h('div', { class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status' },
    h('p', {}, text),
    h('button', { type: 'button', class: 'btn-icon', 'aria-label': 'Dismiss notice', onclick: close }, '×'),
  );
  stack.append(item);
  if (timeout) setTimeout(close, timeout);
  return close;
}
