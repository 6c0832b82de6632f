// The safety number with one member: 60 digits in 12 groups of 5 and a QR code of the same,
// to compare in person or on a call. Marks the member verified, or accepts their new key.

import { h, replace } from './dom.js';
import { alertSlot } from './errors.js';
import { openDialog } from './dialog.js';
import { trustBadge } from './trust.js';
import { encodeQR, qrToSvg } from './qr.js';
import { announce } from './announcer.js';

/** "12345 67890 …": the digits of a safety number in groups of five. */
export function digitGroups(digits) {
  const plain = String(digits || '').replace(/\D/g, '');
  return plain.match(/.{1,5}/g) || [];
}

/** Opens the dialog for `member` ({userId, displayName, username, trust}). `onChanged()` runs
 * after verifying or accepting a key, so the caller can refresh. */
export function openSafetyNumber({ client, member, onChanged }) {
  const alert = alertSlot();
  const name = member.displayName || member.username;
  const content = h('div', { class: 'safety', 'aria-busy': 'true' }, h('p', { class: 'muted' }, 'Computing the safety number…'));
  const status = h('div', { class: 'safety-status' }, trustBadge(member.trust));
  const actions = h('div', { class: 'actions' });

  const renderActions = (trust, close) => {
    const buttons = [];
    if (trust === 'changed') {
      buttons.push(h('button', { type: 'button', class: 'btn btn-warning', onclick: () => act(() => client.acceptNewKey(member.userId), 'unverified', close) }, 'Accept new key'));
    } else if (trust !== 'verified') {
      buttons.push(h('button', { type: 'button', class: 'btn btn-primary', onclick: () => act(() => client.verify(member.userId), 'verified', close) }, 'Mark as verified'));
    }
    buttons.push(h('button', { type: 'button', class: 'btn', onclick: close }, 'Close'));
    replace(actions, buttons);
  };

  const act = async (operation, nextTrust, close) => {
    alert.clear();
    for (const button of actions.querySelectorAll('button')) button.disabled = true;
    try {
      await operation();
      member = { ...member, trust: nextTrust };
      replace(status, trustBadge(nextTrust));
      announce(nextTrust === 'verified' ? `${name} is now verified.` : `New key of ${name} accepted. Compare safety numbers to verify it.`);
      renderActions(nextTrust, close);
      if (onChanged) onChanged();
    } catch (error) {
      alert.show(error);
      renderActions(member.trust, close);
    }
  };

  openDialog({
    title: `Safety number with ${name}`,
    className: 'dialog-safety',
    description: `Compare these digits with ${name}, in person or on a call you trust, or scan each other's code. If they match, nobody is in between.`,
    body: (close) => {
      renderActions(member.trust, close);
      return h('div', {}, status, content, alert.element,
        member.trust === 'changed'
          ? h('p', { class: 'callout callout-warning' }, `${name}'s key changed. This happens when they reset their account, and also when someone tries to listen in. Sending to them stays blocked until you accept the new key.`)
          : null,
        actions);
    },
  });

  client.safetyNumber(member.userId).then(({ digits, payload }) => {
    const groups = digitGroups(digits);
    let code = null;
    try {
      code = qrToSvg(encodeQR(payload ?? groups.join('')), { label: `QR code of the safety number with ${name}` });
    } catch (error) {
      code = h('p', { class: 'muted' }, `No QR code: ${error.message}`);
    }
    content.setAttribute('aria-busy', 'false');
    replace(content,
      h('p', { class: 'safety-digits mono' },
        h('span', { class: 'visually-hidden' }, 'Safety number: '),
        groups.map((group, i) => [i > 0 ? ' ' : null, h('span', { class: 'digit-group' }, group)])),
      h('div', { class: 'safety-qr' }, code),
    );
  }).catch((error) => {
    content.setAttribute('aria-busy', 'false');
    replace(content);
    alert.show(error);
  });
}
