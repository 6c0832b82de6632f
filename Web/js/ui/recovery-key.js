// The recovery key, shown once after registration. The user must show they kept it (tick the
// box and type its last group) before entering; then it is removed from the page.

import { h, field, checkbox } from './dom.js';
import { alertSlot } from './errors.js';

/** Renders into `container`; calls `onConfirmed()` once the user has confirmed. */
export function recoveryKeyScreen({ recoveryKey, onConfirmed }) {
  const groups = String(recoveryKey).split('-');
  const lastGroup = groups[groups.length - 1] || '';
  const alert = alertSlot();
  const keyText = h('p', { class: 'recovery-key mono', id: 'recovery-key-value' },
    groups.map((group, i) => [i > 0 ? h('span', { class: 'recovery-sep' }, '-') : null, h('span', { class: 'recovery-group' }, group)]),
  );
  const copyStatus = h('span', { class: 'copy-status', role: 'status' });
  const copyButton = h('button', {
    type: 'button',
    class: 'btn',
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(recoveryKey);
        copyStatus.textContent = 'Copied.';
      } catch {
        copyStatus.textContent = 'Copying is not allowed here: write it down instead.';
      }
    },
  }, 'Copy');
  const saved = checkbox({ label: 'I have saved my recovery key somewhere safe, away from this device.', name: 'saved', required: true });
  const retype = field({
    label: `Type the last group of your recovery key (group ${groups.length})`,
    name: 'lastGroup',
    required: true,
    autocomplete: 'off',
    spellcheck: 'false',
    maxlength: 4,
    class: 'mono input-short',
  });
  const form = h('form', { class: 'auth-form recovery-confirm', 'aria-label': 'Confirm recovery key' },
    saved.field, retype.field, alert.element,
    h('button', { type: 'submit', class: 'btn btn-primary btn-wide' }, 'I saved it: enter Circle'),
  );
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (!form.reportValidity()) return;
    if (retype.input.value.trim().toLowerCase() !== lastGroup.toLowerCase()) {
      alert.show('That is not the last group of your recovery key. Check what you saved.');
      retype.input.focus();
      return;
    }
    keyText.replaceChildren();
    onConfirmed();
  });

  const element = h('div', { class: 'recovery-screen' },
    h('p', {}, 'This key is the only way back into your account if you forget your password. It is shown ',
      h('strong', {}, 'once'), '. Nobody, not even the server\'s operator, can show it to you again.'),
    h('div', { class: 'recovery-box' }, keyText, h('div', { class: 'recovery-actions' }, copyButton, copyStatus)),
    form,
  );
  return { element, focus: () => keyText.parentElement.querySelector('button').focus() };
}
