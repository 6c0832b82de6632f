// What a vault file's menu opens: who can open it (only me, one conversation, anyone with a
// link), sharing it with one member (in our direct conversation, never public), and when it is
// deleted by itself. Putting a file in a conversation also sends the members its key, in an
// end-to-end encrypted attachment message: the server learns only that the file moved.

import { h, field, setBusy, uid } from './dom.js';
import { alertSlot } from './errors.js';
import { openDialog } from './dialog.js';
import { announce, toast } from './announcer.js';
import { conversationTitle, fullTime } from './format.js';
import { openShareDialog } from './vault-share.js';
import { percent } from './vault-common.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** Expiry choices for files, [milliseconds from now, label]; 0 is never. */
export const FILE_EXPIRY_OPTIONS = [
  [0, 'Never'],
  [HOUR, 'After 1 hour'],
  [DAY, 'After 1 day'],
  [7 * DAY, 'After 7 days'],
  [30 * DAY, 'After 30 days'],
  [365 * DAY, 'After 1 year'],
];

/** The expiry time chosen in a select of FILE_EXPIRY_OPTIONS ('keep' keeps `current`). */
export function expiryFrom(value, current = 0) {
  if (value === 'keep') return current;
  const after = Number(value);
  return after > 0 ? Date.now() + after : 0;
}

/** An expiry select: the options above, and the current time when the file has one. */
export function expirySelect({ id, current = 0, selected = 0 }) {
  const options = FILE_EXPIRY_OPTIONS.map(([value, label]) => h('option', { value: String(value), selected: !current && value === selected }, label));
  if (current) options.unshift(h('option', { value: 'keep', selected: true }, `Keep: ${fullTime(current)}`));
  return h('select', { id, name: 'expiry' }, options);
}

/** The conversations a file can go to: verified ones, with their titles. */
async function conversationChoices(client) {
  const all = await client.conversations();
  return all.filter((conversation) => !conversation.alarm).map((conversation) => ({
    id: conversation.id, title: conversationTitle(conversation, client.me), conversation,
  }));
}

/** A status line for the download that checks a file before its key is shared. */
function progressText({ stage, done, total }) {
  return `${stage === 'downloading' ? 'Checking the file' : 'Opening it'}… ${percent(done, total)}%`;
}

/**
 * Who can open the file: only me, the members of one conversation, or anyone with a link (which
 * opens the link dialog). Leaving "anyone with a link" ends its links, and the dialog says so.
 */
export function openAccessDialog({ client, file, liveLinks, onChanged }) {
  const alert = alertSlot();
  const groupName = uid('access');
  const selectId = uid('access-conversation');
  const status = h('p', { class: 'field-hint', role: 'status' });
  const conversations = h('select', { id: selectId, name: 'conversation', disabled: true }, h('option', { value: '' }, 'Loading…'));
  const radio = (value, label, hint) => {
    const id = uid('access-level');
    return h('div', { class: 'field field-check' },
      h('input', { type: 'radio', id, name: groupName, value, checked: file.level === value, 'aria-describedby': `${id}-hint` }),
      h('label', { for: id }, label),
      h('p', { class: 'field-hint', id: `${id}-hint` }, hint));
  };
  const linksNote = liveLinks ? ` Its ${liveLinks} live ${liveLinks === 1 ? 'link stops' : 'links stop'} working.` : '';
  openDialog({
    title: `Who can open ${file.name}`,
    className: 'dialog-access',
    initialFocus: 'input:checked',
    body: (close) => {
      const form = h('form', { class: 'dialog-form' },
        h('fieldset', { class: 'field-group' },
          h('legend', {}, 'Access'),
          radio('private', 'Only me', `Private to your account.${file.level === 'public' ? linksNote : ''}`),
          radio('conversation', 'The members of a conversation', `They get its key in an end-to-end encrypted message there.${file.level === 'public' ? linksNote : ''}`),
          h('div', { class: 'field field-indent' }, h('label', { for: selectId }, 'Conversation'), conversations),
          radio('public', 'Anyone with a link', 'Links can have a password, an expiry and a download limit. A file in a conversation stays there too.')),
        status,
        alert.element,
        h('div', { class: 'actions' },
          h('button', { type: 'button', class: 'btn', onclick: close }, 'Cancel'),
          h('button', { type: 'submit', class: 'btn btn-primary' }, 'Save')),
      );
      conversationChoices(client).then((choices) => {
        conversations.replaceChildren(...(choices.length
          ? choices.map((choice) => h('option', { value: choice.id, selected: choice.id === file.conversationId }, choice.title))
          : [h('option', { value: '' }, 'No conversations yet')]));
        conversations.disabled = choices.length === 0;
      }).catch((error) => alert.show(error));
      form.addEventListener('submit', async (event) => {
        event.preventDefault();
        alert.clear();
        const level = form.querySelector(`input[name="${groupName}"]:checked`)?.value;
        if (level === 'public') {
          close();
          openShareDialog({ client, file, onChanged });
          return;
        }
        if (level === 'conversation' && !conversations.value) {
          alert.show('Choose a conversation for it first.');
          return;
        }
        setBusy(form, true);
        try {
          if (level === 'private') {
            if (file.level !== 'private') await client.changeFile(file.id, { level: 'private' });
          } else if (file.conversationId !== conversations.value) {
            await client.shareFileIn(file.id, conversations.value, { onProgress: (report) => { status.textContent = progressText(report); } });
            if (file.level === 'public') await client.changeFile(file.id, { level: 'conversation' });
          } else if (file.level !== 'conversation') {
            await client.changeFile(file.id, { level: 'conversation' });
          }
          announce(`${file.name}: access saved.`);
          close();
          onChanged?.();
        } catch (error) {
          status.textContent = '';
          setBusy(form, false);
          alert.show(error);
        }
      });
      return form;
    },
  });
}

/**
 * Shares the file with one member: it goes to our direct conversation (started if there is
 * none) with its key in an attachment message; it is not made public.
 */
export function openShareWithMember({ client, file, onChanged }) {
  const alert = alertSlot();
  const listId = uid('contacts');
  const status = h('p', { class: 'field-hint', role: 'status' });
  const username = field({
    label: 'Username', name: 'share-username', autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false', required: true, list: listId,
    hint: 'They get it in your direct conversation, end-to-end encrypted. The file is not made public.',
  });
  const contacts = h('datalist', { id: listId });
  const moving = file.conversationId
    ? h('p', { class: 'callout callout-warning' }, 'A file is in one conversation at a time: this moves it out of the conversation it is in now, whose members can then no longer download it.')
    : null;
  openDialog({
    title: `Share ${file.name} with a member`,
    className: 'dialog-share-member',
    initialFocus: 'input',
    body: (close) => {
      const form = h('form', { class: 'dialog-form' },
        username.field, contacts, moving, status, alert.element,
        h('div', { class: 'actions' },
          h('button', { type: 'button', class: 'btn', onclick: close }, 'Cancel'),
          h('button', { type: 'submit', class: 'btn btn-primary' }, 'Share')));
      conversationChoices(client).then((choices) => {
        const names = new Set(choices.flatMap((choice) => (choice.conversation.members ?? [])
          .filter((member) => member.userId !== client.me?.userId && !member.left).map((member) => member.username)));
        contacts.replaceChildren(...[...names].sort().map((name) => h('option', { value: name })));
      }).catch(() => {});
      form.addEventListener('submit', async (event) => {
        event.preventDefault();
        alert.clear();
        const name = username.input.value.trim().replace(/^@/, '');
        if (!name) return;
        setBusy(form, true);
        try {
          status.textContent = 'Finding their conversation…';
          const convId = await client.createDirect(name);
          await client.shareFileIn(file.id, convId, { onProgress: (report) => { status.textContent = progressText(report); } });
          announce(`${file.name} shared with ${name}.`);
          toast(`${file.name} shared with ${name}.`, { kind: 'success' });
          close();
          onChanged?.();
        } catch (error) {
          status.textContent = '';
          setBusy(form, false);
          alert.show(error);
          username.input.focus();
        }
      });
      return form;
    },
  });
}

/** When the file deletes itself: never, or a time from now; the current time can be kept. */
export function openExpiryDialog({ client, file, onChanged }) {
  const alert = alertSlot();
  const selectId = uid('file-expiry');
  const select = expirySelect({ id: selectId, current: file.expiresAt || 0 });
  openDialog({
    title: `When ${file.name} is deleted`,
    className: 'dialog-expiry',
    initialFocus: 'select',
    body: (close) => {
      const form = h('form', { class: 'dialog-form' },
        h('div', { class: 'field' },
          h('label', { for: selectId }, 'Delete automatically'),
          select,
          h('p', { class: 'field-hint' }, 'At that time the server deletes the encrypted file and every link to it.')),
        alert.element,
        h('div', { class: 'actions' },
          h('button', { type: 'button', class: 'btn', onclick: close }, 'Cancel'),
          h('button', { type: 'submit', class: 'btn btn-primary' }, 'Save')));
      form.addEventListener('submit', async (event) => {
        event.preventDefault();
        alert.clear();
        const expiresAt = expiryFrom(select.value, file.expiresAt || 0);
        setBusy(form, true);
        try {
          if (expiresAt !== (file.expiresAt || 0)) await client.changeFile(file.id, { expiresAt });
          announce(expiresAt ? `${file.name} is deleted ${fullTime(expiresAt)}.` : `${file.name} is kept until you delete it.`);
          close();
          onChanged?.();
        } catch (error) {
          setBusy(form, false);
          alert.show(error);
        }
      });
      return form;
    },
  });
}
