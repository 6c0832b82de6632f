// The member's own status: a button in the header (and on the dashboard) showing it, and the
// dialog that sets it: online, away, busy (do not disturb) or invisible, and a custom status
// (an emoji and up to 80 characters) that clears itself after a chosen time.

import { h, field, setBusy, uid } from './dom.js';
import { alertSlot } from './errors.js';
import { openDialog } from './dialog.js';
import { announce } from './announcer.js';
import { STATE_NAMES, customStatus } from './presence.js';

const CHOICES = ['online', 'away', 'busy', 'invisible'];
const STATUS_LENGTH = 80;

/** When a custom status clears itself: [value, label]. */
const EXPIRY_CHOICES = [
  ['never', "Don't clear"],
  ['30m', '30 minutes'],
  ['1h', '1 hour'],
  ['4h', '4 hours'],
  ['today', 'Today'],
  ['week', 'This week'],
];

/** The time (milliseconds) at which a status chosen at `now` clears, or 0 for never. */
function expiryAt(choice, now = new Date()) {
  const minutes = { '30m': 30, '1h': 60, '4h': 240 }[choice];
  if (minutes) return now.getTime() + minutes * 60_000;
  if (choice === 'today' || choice === 'week') {
    const end = new Date(now.getFullYear(), now.getMonth(), now.getDate() + 1);
    // The week ends when Monday starts.
    if (choice === 'week') end.setDate(end.getDate() + ((8 - end.getDay()) % 7));
    return end.getTime();
  }
  return 0;
}

/** The chosen state of an own view (online until loaded). */
function chosenOf(own) {
  return own && CHOICES.includes(own.chosen) ? own.chosen : 'online';
}

/** The header's status button: a dot and the chosen state; opens the status dialog. */
export class StatusButton {
  constructor({ client, className = 'status-button' }) {
    this.client = client;
    this.dot = h('span', { class: 'presence-dot', 'aria-hidden': 'true' });
    this.label = h('span', { class: 'status-button-label' });
    this.element = h('button', {
      type: 'button',
      class: className,
      'aria-haspopup': 'dialog',
      onclick: () => openStatusDialog({ client }),
    }, this.dot, this.label);
    this.update();
  }

  update() {
    const own = this.client.presence.own;
    const chosen = chosenOf(own);
    const status = customStatus(own && own.status);
    this.dot.dataset.state = chosen;
    this.label.textContent = status || `Status: ${STATE_NAMES[chosen].replace(/ \(.*\)$/, '')}`;
    this.element.setAttribute('aria-label', `Your status: ${STATE_NAMES[chosen]}${status ? `, ${status}` : ''}. Change status`);
  }
}

/** Opens the "Set your status" dialog. */
export function openStatusDialog({ client }) {
  const own = client.presence.own;
  const alert = alertSlot();
  const group = uid('presence');
  const radios = CHOICES.map((value) => {
    const id = `${group}-${value}`;
    return h('div', { class: 'field-check status-choice' },
      h('input', { type: 'radio', id, name: group, value, checked: value === chosenOf(own) }),
      h('label', { for: id }, h('span', { class: 'presence-dot', dataset: { state: value }, 'aria-hidden': 'true' }), STATE_NAMES[value]));
  });
  const current = own && own.status ? own.status : {};
  const emoji = field({ label: 'Emoji', name: 'emoji', value: current.emoji || '', maxlength: '16', autocomplete: 'off', class: 'input-short' });
  const text = field({
    label: 'Status', name: 'status', value: current.text || '', maxlength: String(STATUS_LENGTH), autocomplete: 'off',
    hint: `What you are up to, at most ${STATUS_LENGTH} characters. Your contacts see it.`,
  });
  const expiryId = uid('expiry');
  const expiry = h('select', { id: expiryId, name: 'expiry' },
    EXPIRY_CHOICES.map(([value, label]) => h('option', { value }, label)));
  const clearButton = h('button', { type: 'button', class: 'btn', disabled: !own || !own.status }, 'Clear status');
  const form = h('form', { class: 'status-form' },
    h('fieldset', { class: 'choice' }, h('legend', {}, 'Presence'), radios),
    h('fieldset', { class: 'choice' },
      h('legend', {}, 'Custom status'),
      h('div', { class: 'status-fields' }, emoji.field, text.field),
      h('div', { class: 'field' }, h('label', { for: expiryId }, 'Clear after'), expiry),
    ),
    alert.element,
    h('div', { class: 'actions' }, clearButton, h('button', { type: 'submit', class: 'btn btn-primary' }, 'Save status')),
  );
  let closeDialog = () => {};

  const save = async (changes) => {
    alert.clear();
    setBusy(form, true);
    try {
      const view = await client.presence.set(changes);
      const status = customStatus(view.status);
      announce(`Status set: ${STATE_NAMES[chosenOf(view)]}${status ? `, ${status}` : ''}.`);
      closeDialog();
    } catch (error) {
      setBusy(form, false);
      alert.show(error);
    }
  };

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const state = form.querySelector(`input[name="${group}"]:checked`).value;
    const changes = { state };
    const chosenEmoji = emoji.input.value.trim();
    const chosenText = text.input.value.trim();
    if (chosenEmoji || chosenText) {
      const status = {};
      if (chosenEmoji) status.emoji = chosenEmoji;
      if (chosenText) status.text = chosenText;
      const at = expiryAt(expiry.value);
      if (at) status.expiresAt = at;
      changes.status = status;
    } else if (own && own.status) {
      changes.clearStatus = true;
    }
    save(changes);
  });
  clearButton.addEventListener('click', () => save({ clearStatus: true }));

  const { close } = openDialog({
    title: 'Set your status',
    className: 'dialog-status',
    description: 'Contacts who share a conversation with you see it. Busy means do not disturb: no badges. Invisible looks offline to everyone.',
    initialFocus: 'input[type="radio"]:checked',
    body: form,
  });
  closeDialog = close;
}
