// Starting a conversation: direct (one username) or group (a title and usernames).

import { h, field, setBusy } from './dom.js';
import { alertSlot } from './errors.js';
import { openDialog } from './dialog.js';

/** The usernames in "alice, bob carol" (commas, spaces or new lines; a leading @ is dropped). */
export function parseUsernames(text) {
  return [...new Set(String(text).split(/[\s,;]+/).map((name) => name.replace(/^@/, '').trim().toLowerCase()).filter(Boolean))];
}

/** The id of what createDirect/createGroup returned (an id or a conversation). */
export function conversationId(result) {
  if (typeof result === 'string') return result;
  return result && (result.id || result.convId);
}

/** Opens the dialog; `onCreated(convId)` after the conversation exists. */
export function openNewConversation({ client, kind, onCreated }) {
  const group = kind === 'group';
  const alert = alertSlot();
  openDialog({
    title: group ? 'New group' : 'New chat',
    description: group
      ? 'Everyone you add receives the group\'s keys, sealed to their own keys. Only they can read it.'
      : 'Messages are end-to-end encrypted between the two of you.',
    initialFocus: 'input',
    body: (close) => {
      const title = group ? field({ label: 'Group name', name: 'title', required: true, maxlength: 100, autocomplete: 'off', hint: 'Encrypted: the server never sees it.' }) : null;
      const people = field({
        label: group ? 'Members (usernames)' : 'Username',
        name: 'usernames',
        required: true,
        autocomplete: 'off',
        autocapitalize: 'none',
        spellcheck: 'false',
        hint: group ? 'Separate usernames with commas or spaces.' : 'The username of the member to talk with.',
      });
      const form = h('form', { class: 'dialog-form' },
        title ? title.field : null,
        people.field,
        alert.element,
        h('div', { class: 'actions' },
          h('button', { type: 'button', class: 'btn', onclick: close }, 'Cancel'),
          h('button', { type: 'submit', class: 'btn btn-primary' }, group ? 'Create group' : 'Start chat'),
        ),
      );
      form.addEventListener('submit', async (event) => {
        event.preventDefault();
        if (!form.reportValidity()) return;
        const usernames = parseUsernames(people.input.value);
        if (!group && usernames.length !== 1) {
          alert.show('Enter exactly one username.');
          return;
        }
        alert.clear();
        setBusy(form, true);
        try {
          const result = group
            ? await client.createGroup(title.input.value.trim(), usernames)
            : await client.createDirect(usernames[0]);
          close();
          onCreated(conversationId(result));
        } catch (error) {
          setBusy(form, false);
          alert.show(error);
          people.input.focus();
        }
      });
      return form;
    },
  });
}
