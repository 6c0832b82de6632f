// Shown instead of the app where the browser withholds WebCrypto (plain http beyond this
// computer): Circle cannot make or use keys there, and says so rather than failing silently.

import { h, replace } from './dom.js';
import { icon } from './icons.js';

/** True when this page may use WebCrypto (https, or http on localhost). */
export function hasSecureCrypto() {
  return window.isSecureContext === true && Boolean(globalThis.crypto && globalThis.crypto.subtle);
}

export function showHttpsRequired(root) {
  const secureURL = new URL(window.location.href);
  secureURL.protocol = 'https:';
  replace(root, h('main', { class: 'plain-page', id: 'main' },
    h('div', { class: 'plain-card' },
      icon('lock', 'plain-icon'),
      h('h1', {}, 'HTTPS is required'),
      h('p', {}, 'Circle encrypts everything on your device before it is sent, using the browser\'s built-in cryptography. Browsers only allow that on secure connections (HTTPS), or on this computer itself.'),
      h('p', {}, 'This page was opened over plain HTTP, so nothing was loaded and nothing was sent.'),
      h('p', {}, 'Try the secure address: ', h('a', { href: secureURL.href }, secureURL.href)),
      h('p', { class: 'muted' }, 'If you run this server: put it behind TLS (the nginx configuration in deploy/ does this), or give circle serve a certificate and key.'),
    ),
  ));
  document.title = 'HTTPS required · Circle';
}
