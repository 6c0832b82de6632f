// The danger zone: destroying on purpose (docs/API.md "Destruction"). Each action says plainly
// what goes and that it cannot be undone, asks for the password (checked by the server, derived
// here) and the typed phrase, then shows the job's progress live until it is done. Also the
// panic shortcut setting: a key combination that locks this device at once.

import { h, field, setBusy } from './dom.js';
import { alertSlot } from './errors.js';
import { openDialog } from './dialog.js';
import { announce } from './announcer.js';
import { panicShortcut, setPanicShortcut, PANIC_SHORTCUTS } from './prefs.js';

/** What each kind destroys, in the words the dialog uses. */
export const DESTRUCTIONS = {
  account: {
    title: 'Destroy my account',
    phrase: 'destroy my account',
    button: 'Destroy my account',
    what: [
      'At once: every session ends on every device, and your keys, recovery copy and login secret are destroyed, so nothing the server keeps can be opened again, not even with your password.',
      'Then your messages, files, share links, security activity and presence are deleted.',
      'Your conversations go on for the others, who see that you left the Circle. Your username stays reserved.',
    ],
  },
  files: {
    title: 'Destroy all my files',
    phrase: 'destroy all my files',
    button: 'Destroy all my files',
    what: [
      'Every file in your vault, every unfinished upload and every share link to them is deleted at once; their encrypted contents are then erased from storage.',
      'Files you shared in conversations disappear for the other members too.',
    ],
  },
  links: {
    title: 'Revoke all my share links',
    phrase: 'revoke all my links',
    button: 'Revoke all links',
    what: ['Every share link you made stops working at once. Your files stay; you can make new links later.'],
  },
  conversation: {
    title: 'Destroy this conversation',
    phrase: 'destroy this conversation',
    button: 'Destroy conversation',
    what: [
      'For every member, at once: the conversation and its keys are gone, and nobody can open it again.',
      'Then its messages, shared files, read markers and call history are deleted from the server.',
    ],
  },
};

/** "keys destroyed · 1,204 of 3,530 messages · 12 of 40 files" */
export function progressText(job) {
  const p = job.progress || {};
  const count = (n) => Number(n || 0).toLocaleString('en-US');
  const parts = [job.kind === 'links' ? `${count(p.links)} links revoked` : 'keys destroyed'];
  if (job.kind === 'account' || job.kind === 'conversation') parts.push(`${count(p.messages)} of ${count(p.messagesTotal)} messages`);
  if (job.kind !== 'links') parts.push(`${count(p.files)} of ${count(p.filesTotal)} files`);
  if (job.state === 'done') parts.push('done');
  return parts.join(' · ');
}

/**
 * Opens the dialog for one destruction. `onDone(job)` runs once it finished (for an account,
 * after this device was signed out and wiped).
 */
export function openDestruction({ client, kind, conversationId, onDone }) {
  const spec = DESTRUCTIONS[kind];
  const alert = alertSlot();
  const progress = h('p', { class: 'progress-text destruction-progress', role: 'status', 'aria-live': 'polite' });
  const password = field({ label: 'Your password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const phrase = field({
    label: `Type "${spec.phrase}" to confirm`, name: 'confirm', type: 'text', autocomplete: 'off', spellcheck: 'false', required: true,
  });
  const submit = h('button', { type: 'submit', class: 'btn btn-danger', disabled: true }, spec.button);
  const matches = () => phrase.input.value.trim().toLowerCase() === spec.phrase;
  phrase.input.addEventListener('input', () => { submit.disabled = !matches(); });
  let finished = null;
  let started = null;
  let running = false;

  const form = h('form', { class: 'settings-form destruction-form' },
    h('ul', { class: 'destruction-what' }, spec.what.map((line) => h('li', {}, line))),
    h('p', { class: 'destruction-warning' }, h('strong', {}, 'This cannot be undone.')),
    password.field, phrase.field, alert.element, progress,
    h('div', { class: 'actions actions-start' }, submit),
  );
  const { close } = openDialog({
    title: spec.title,
    className: 'dialog-danger',
    initialFocus: 'input[name="password"]',
    body: form,
    // An account's destruction signed this device out once it started: closing the dialog early
    // still leaves for the signed-out screen.
    onClose: () => { if ((finished || (kind === 'account' && started)) && onDone) onDone(finished ?? started); },
  });
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (running || !matches() || !form.reportValidity()) return;
    running = true;
    alert.clear();
    setBusy(form, true);
    progress.textContent = 'Checking your password…';
    try {
      const job = await client.destroy({
        kind, conversationId, password: password.input.value, confirm: phrase.input.value,
        onProgress: (current) => { started = current; progress.textContent = progressText(current); },
      });
      password.input.value = '';
      finished = job;
      progress.textContent = progressText(job);
      announce(`${spec.title}: done.`);
      replaceActions(form, close);
    } catch (error) {
      progress.textContent = '';
      alert.show(error);
      setBusy(form, false);
      submit.disabled = !matches();
    } finally {
      running = false;
    }
  });
}

/** After the job: only a way out. */
function replaceActions(form, close) {
  const actions = form.querySelector('.actions');
  actions.replaceChildren(h('button', { type: 'button', class: 'btn btn-primary', onclick: close }, 'Done'));
  for (const input of form.querySelectorAll('input')) input.closest('.field')?.remove();
  actions.querySelector('button').focus();
}

/** The settings section: the panic shortcut, then the three destructive actions. */
export function dangerZoneSection({ client, onAccountDestroyed }) {
  const choice = h('select', { id: 'panic-shortcut', name: 'panic-shortcut' },
    PANIC_SHORTCUTS.map(([value, label]) => h('option', { value, selected: value === panicShortcut() }, label)));
  choice.addEventListener('change', () => {
    setPanicShortcut(choice.value);
    announce(choice.value ? `Panic shortcut: ${choice.selectedOptions[0].textContent}.` : 'Panic shortcut off.');
  });
  const action = (kind, onDone) => h('div', { class: 'danger-action' },
    h('div', {},
      h('h3', {}, DESTRUCTIONS[kind].title),
      h('p', { class: 'field-hint' }, DESTRUCTIONS[kind].what[0]),
    ),
    h('button', { type: 'button', class: 'btn btn-danger', onclick: () => openDestruction({ client, kind, onDone }) }, DESTRUCTIONS[kind].button),
  );
  return h('section', { class: 'settings-section danger-zone', id: 'danger-zone', 'aria-labelledby': 'danger-title' },
    h('h2', { id: 'danger-title' }, 'Danger zone'),
    h('div', { class: 'field' },
      h('label', { for: 'panic-shortcut' }, 'Panic shortcut'),
      choice,
      h('p', { class: 'field-hint' }, 'Locks this device at once: forgets your keys and erases everything Circle keeps in this browser, without contacting the server. Unlocking again takes your password.'),
    ),
    action('links', () => announce('Every share link is revoked.')),
    action('files', () => client.notify('vault', { type: 'deleted', fileId: null })),
    action('account', (job) => onAccountDestroyed(job)),
  );
}
