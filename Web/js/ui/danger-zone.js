// The danger zone: destroying on purpose (docs/API.md "Destruction"). Each action says plainly
// what goes and that it cannot be undone, asks for the password (checked by the server, derived
// here) and the typed phrase, then shows the job's progress live until it is done. Admins also
// have the whole server's destruction, which a second admin approves (or refuses) from their own
// danger zone or the alert it raises. Also the panic shortcut setting: a key combination that
// locks this device at once.

import { h, field, setBusy } from './dom.js';
import { alertSlot } from './errors.js';
import { openDialog } from './dialog.js';
import { announce, toast } from './announcer.js';
import { describeError } from './errors.js';
import { fullTime } from './format.js';
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
  server: {
    title: 'Destroy the whole server',
    phrase: 'destroy everything',
    button: 'Destroy the server',
    what: [
      'Every account, conversation, message, file and share link on this server is destroyed, for everyone. When the server has another admin, it starts only once a second admin approves, within 15 minutes.',
      'At once: every key the server keeps and every login secret go and everyone is signed out, so nothing stored can be opened again; then every row and every stored file is erased.',
      'The server then starts empty (an embedded server stops and starts again with new keys); the first admin needs a new invite from the host.',
    ],
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
  if (job.state === 'awaiting-approval') {
    const until = job.approvalExpiresAt ? ` (until ${fullTime(job.approvalExpiresAt)})` : '';
    return `Waiting for another admin to approve${until}. Nothing is destroyed yet.`;
  }
  if (job.state === 'cancelled') return 'Refused by an admin: nothing was destroyed.';
  if (job.state === 'lapsed') return 'No other admin approved in time: nothing was destroyed.';
  const parts = [job.kind === 'links' ? `${count(p.links)} links revoked` : 'keys destroyed'];
  if (job.kind === 'account' || job.kind === 'conversation') parts.push(`${count(p.messages)} of ${count(p.messagesTotal)} messages`);
  if (job.kind !== 'links') parts.push(`${count(p.files)} of ${count(p.filesTotal)} files`);
  if (job.state === 'done') parts.push('done');
  return parts.join(' · ');
}

/** What the signed-out screen says once a destruction that ended this session finished. */
export function destroyedText(job) {
  return job.kind === 'server'
    ? `The whole server was destroyed: ${progressText(job)}. Nothing it kept can be opened again.`
    : `Your account was destroyed: ${progressText(job)}. Nothing the server keeps can be opened again.`;
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
    // An account's (or the server's) destruction signed this device out once it started:
    // closing the dialog early still leaves for the signed-out screen.
    onClose: () => {
      const ended = started && (kind === 'account' || (kind === 'server' && !['awaiting-approval', 'cancelled', 'lapsed'].includes(started.state)));
      if ((finished || ended) && onDone) onDone(finished ?? started);
    },
  });
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (running || !matches() || !form.reportValidity()) return;
    running = true;
    finished = await follow({
      form, alert, progress, close, title: spec.title, submit, matches,
      run: (onProgress) => client.destroy({ kind, conversationId, password: password.input.value, confirm: phrase.input.value, onProgress }),
      onProgress: (current) => { started = current; },
    });
    if (finished) password.input.value = '';
    running = false;
  });
}

/**
 * Runs a destruction from its dialog (`run(onProgress)` resolves to the finished job), showing
 * each step in `progress`; resolves to the job, or null after showing why it failed.
 */
async function follow({ form, alert, progress, close, title, submit, matches, run, onProgress }) {
  alert.clear();
  setBusy(form, true);
  progress.textContent = 'Checking your password…';
  try {
    const job = await run((current) => { onProgress(current); progress.textContent = progressText(current); });
    progress.textContent = progressText(job);
    announce(`${title}: done.`);
    replaceActions(form, close);
    return job;
  } catch (error) {
    progress.textContent = '';
    alert.show(error);
    setBusy(form, false);
    submit.disabled = !matches();
    return null;
  }
}

/** After the job: only a way out. */
function replaceActions(form, close) {
  const actions = form.querySelector('.actions');
  actions.replaceChildren(h('button', { type: 'button', class: 'btn btn-primary', onclick: close }, 'Done'));
  for (const input of form.querySelectorAll('input')) input.closest('.field')?.remove();
  actions.querySelector('button').focus();
}

/**
 * A second admin's answer to the whole server's destruction another admin asked for: what it
 * destroys, who asked and when, then approve (password and phrase) or refuse.
 */
export function openServerApproval({ client, job, onDone }) {
  const spec = DESTRUCTIONS.server;
  const alert = alertSlot();
  const progress = h('p', { class: 'progress-text destruction-progress', role: 'status', 'aria-live': 'polite' });
  const password = field({ label: 'Your password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const phrase = field({
    label: `Type "${spec.phrase}" to approve`, name: 'confirm', type: 'text', autocomplete: 'off', spellcheck: 'false', required: true,
  });
  const approve = h('button', { type: 'submit', class: 'btn btn-danger', disabled: true }, 'Approve and destroy');
  const refuse = h('button', { type: 'button', class: 'btn' }, 'Refuse');
  const matches = () => phrase.input.value.trim().toLowerCase() === spec.phrase;
  phrase.input.addEventListener('input', () => { approve.disabled = !matches(); });
  let started = null;
  let finished = null;
  let running = false;
  const form = h('form', { class: 'settings-form destruction-form' },
    h('p', {}, `Another admin asked on ${fullTime(job.createdAt)} to destroy the whole server. It needs your approval until ${fullTime(job.approvalExpiresAt)}.`),
    h('ul', { class: 'destruction-what' }, spec.what.map((line) => h('li', {}, line))),
    h('p', { class: 'destruction-warning' }, h('strong', {}, 'This cannot be undone. If you did not expect it, refuse.')),
    password.field, phrase.field, alert.element, progress,
    h('div', { class: 'actions actions-start' }, approve, refuse),
  );
  const { close } = openDialog({
    title: 'Approve destroying the whole server?',
    className: 'dialog-danger',
    initialFocus: 'input[name="password"]',
    body: form,
    // Approved: the keys are gone and this device is signed out, even when closed early.
    onClose: () => { if ((finished || started) && onDone) onDone(finished ?? started); },
  });
  refuse.addEventListener('click', async () => {
    if (running) return;
    running = true;
    try {
      const refused = await client.refuseServerDestruction(job.id);
      announce('Refused: the server is not destroyed.');
      close();
      onDone?.(refused);
    } catch (error) {
      alert.show(error);
    } finally {
      running = false;
    }
  });
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (running || !matches() || !form.reportValidity()) return;
    running = true;
    finished = await follow({
      form, alert, progress, close, title: spec.title, submit: approve, matches,
      run: (onProgress) => client.approveServerDestruction({ jobId: job.id, password: password.input.value, confirm: phrase.input.value, onProgress }),
      onProgress: (current) => { started = current; },
    });
    running = false;
  });
}

/** For admins: the server's destruction waiting for their approval, if any (refreshed on open). */
function pendingApproval({ client, onDestroyed }) {
  const slot = h('div', { class: 'danger-pending', 'aria-live': 'polite' });
  client.pendingServerDestruction().then((job) => {
    if (!job) return;
    slot.replaceChildren(h('div', { class: 'banner banner-danger', role: 'alert' },
      h('div', { class: 'banner-text' },
        h('strong', {}, 'Another admin asked to destroy the whole server.'),
        h('span', {}, ` It needs your approval until ${fullTime(job.approvalExpiresAt)}.`)),
      h('button', {
        type: 'button', class: 'btn btn-small btn-danger',
        onclick: () => openServerApproval({
          client,
          job,
          onDone: (done) => {
            if (done.state === 'cancelled') slot.replaceChildren();
            else onDestroyed(done);
          },
        }),
      }, 'Review the request'),
    ));
  }).catch((error) => toast(describeError(error), { kind: 'error' }));
  return slot;
}

/** The settings section: the panic shortcut, then the destructive actions (and the server's, for admins). */
export function dangerZoneSection({ client, isAdmin = false, onAccountDestroyed }) {
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
    isAdmin ? pendingApproval({ client, onDestroyed: onAccountDestroyed }) : null,
    isAdmin ? action('server', (job) => onAccountDestroyed(job)) : null,
  );
}
