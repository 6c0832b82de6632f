// The security level shown at the vault door: what protects this sign-in, stated plainly.

import { h } from './dom.js';
import { icon } from './icons.js';

function isLoopback(hostname) {
  return hostname === 'localhost' || hostname === '[::1]' || hostname === '::1' || /^127\./.test(hostname) || hostname.endsWith('.localhost');
}

/** The facts about this page's protection: {level: 'maximum'|'high'|'low', items: [...]}. */
export function assessSecurity(location = window.location) {
  const tls = location.protocol === 'https:';
  const loopback = isLoopback(location.hostname);
  const secure = window.isSecureContext === true && Boolean(globalThis.crypto && crypto.subtle);
  const items = [
    {
      name: 'Key derivation',
      value: 'PBKDF2-SHA256, at least 600,000 rounds',
      ok: true,
      detail: 'Your password is stretched on this device; weaker settings from a server are refused.',
    },
    {
      name: 'Connection',
      value: tls ? 'HTTPS' : loopback ? 'This computer only (loopback)' : 'Not encrypted',
      ok: tls || loopback,
      detail: tls ? 'Traffic to the server is encrypted in transit.' : loopback ? 'Traffic never leaves this machine.' : 'Use HTTPS beyond this computer.',
    },
    {
      name: 'Secure context',
      value: secure ? 'Yes: WebCrypto available' : 'No',
      ok: secure,
      detail: 'Keys are made and used with the browser\'s own cryptography.',
    },
    {
      name: 'End-to-end encryption',
      value: 'On: Circle protocol v1',
      ok: true,
      detail: 'Messages are encrypted for their members before they leave this device.',
    },
  ];
  const level = !secure ? 'low' : tls ? 'maximum' : loopback ? 'high' : 'low';
  return { level, items };
}

export const LEVEL_NAMES = { maximum: 'Maximum', high: 'High', low: 'Low' };
const LEVEL_BARS = { maximum: 3, high: 2, low: 1 };

/** The panel: a three-bar meter with its level in words, then each fact. */
export function securityPanel(assessment = assessSecurity()) {
  const bars = [];
  for (let i = 1; i <= 3; i++) bars.push(h('span', { class: ['meter-bar', i <= LEVEL_BARS[assessment.level] ? 'meter-on' : ''] }));
  return h('section', { class: `security-panel level-${assessment.level}`, 'aria-labelledby': 'security-level-title' },
    h('div', { class: 'security-level' },
      icon(assessment.level === 'low' ? 'alert' : 'shieldCheck', 'security-icon'),
      h('h2', { id: 'security-level-title', class: 'security-title' }, 'Security level: ', h('strong', {}, LEVEL_NAMES[assessment.level])),
      h('span', { class: 'meter', 'aria-hidden': 'true' }, bars),
    ),
    h('ul', { class: 'security-facts' },
      assessment.items.map((item) => h('li', { class: item.ok ? 'fact-ok' : 'fact-warn' },
        h('span', { class: 'fact-name' }, item.name),
        h('span', { class: 'fact-value' }, item.value),
      )),
    ),
  );
}
