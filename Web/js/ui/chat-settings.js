// A conversation's settings: the disappearing-message timer, the retention and read receipts
// (signed by the admin who changes them, so the server cannot switch them), and whether I share
// my own read receipts here.

import { h, uid, checkbox, setBusy } from './dom.js';
import { alertSlot } from './errors.js';
import { openDialog } from './dialog.js';
import { DISAPPEAR_OPTIONS, RETENTION_OPTIONS, disappearLabel, retentionLabel } from './format.js';
import { announce } from './announcer.js';
import { openDestruction } from './danger-zone.js';

/** Whether I may change the conversation-wide settings (admins sign settings ops). */
export function canChangeSettings(conversation) {
  return conversation.myRole === 'admin';
}

export function openChatSettings({ client, conversation, refresh }) {
  const alert = alertSlot();
  const settings = conversation.settings || {};
  const editable = canChangeSettings(conversation);
  const selectId = uid('disappear');
  const options = DISAPPEAR_OPTIONS.some(([value]) => value === Number(settings.disappearSeconds || 0))
    ? DISAPPEAR_OPTIONS
    : [...DISAPPEAR_OPTIONS, [Number(settings.disappearSeconds), disappearLabel(settings.disappearSeconds)]];
  const timer = h('select', { id: selectId, name: 'disappearSeconds', disabled: !editable, 'aria-describedby': `${selectId}-hint` },
    options.map(([value, label]) => h('option', { value: String(value), selected: value === Number(settings.disappearSeconds || 0) }, label)));
  const keepId = uid('retention');
  const keptDays = Number(settings.retentionDays || 0);
  const keepOptions = RETENTION_OPTIONS.some(([value]) => value === keptDays) ? RETENTION_OPTIONS : [...RETENTION_OPTIONS, [keptDays, retentionLabel(keptDays)]];
  const keep = h('select', { id: keepId, name: 'retentionDays', disabled: !editable, 'aria-describedby': `${keepId}-hint` },
    keepOptions.map(([value, label]) => h('option', { value: String(value), selected: value === keptDays }, label)));
  const receipts = checkbox({
    label: 'Read receipts in this conversation',
    name: 'readReceipts',
    checked: settings.readReceipts !== false,
    disabled: !editable,
    hint: 'The server stores read markers and could forge them: treat them as a hint.',
  });
  const myReceiptsOn = settings.myReceipts ?? conversation.myReceipts ?? true;
  const mine = checkbox({
    label: 'Share my read receipts here',
    name: 'myReceipts',
    checked: myReceiptsOn !== false,
    hint: 'Reciprocal: if you turn yours off, you do not see others\' either.',
  });

  openDialog({
    title: 'Conversation settings',
    className: 'dialog-settings',
    initialFocus: 'select:not([disabled]), input:not([disabled])',
    body: (close) => {
      const form = h('form', { class: 'dialog-form' },
        h('div', { class: 'field' },
          h('label', { for: selectId }, 'Disappearing messages'),
          timer,
          h('p', { class: 'field-hint', id: `${selectId}-hint` },
            editable
              ? 'New messages are deleted for everyone after this time, here and on the server.'
              : conversation.kind === 'direct'
                ? 'Only the member who started this conversation can change this.'
                : 'Only admins of this group can change this.'),
        ),
        h('div', { class: 'field' },
          h('label', { for: keepId }, 'Keep messages'),
          keep,
          h('p', { class: 'field-hint', id: `${keepId}-hint` },
            'Messages older than this are deleted for everyone, already sent ones included: on the server and on every device.'),
        ),
        receipts.field,
        mine.field,
        alert.element,
        h('div', { class: 'actions' },
          h('button', { type: 'button', class: 'btn', onclick: close }, 'Cancel'),
          h('button', { type: 'submit', class: 'btn btn-primary' }, 'Save'),
        ),
        editable ? h('div', { class: 'danger-action' },
          h('p', { class: 'field-hint' }, 'Destroys the conversation for every member: its keys at once, then its messages and shared files.'),
          h('button', {
            type: 'button', class: 'btn btn-danger',
            onclick: () => {
              close();
              openDestruction({ client, kind: 'conversation', conversationId: conversation.id, onDone: () => refresh() });
            },
          }, 'Destroy this conversation'),
        ) : null,
      );
      form.addEventListener('submit', async (event) => {
        event.preventDefault();
        alert.clear();
        const disappearSeconds = Number(timer.value);
        const retentionDays = Number(keep.value);
        const readReceipts = receipts.input.checked;
        const shareMine = mine.input.checked;
        setBusy(form, true);
        try {
          if (editable && (disappearSeconds !== Number(settings.disappearSeconds || 0) || readReceipts !== (settings.readReceipts !== false)
            || retentionDays !== keptDays)) {
            await client.setSettings(conversation.id, { disappearSeconds, readReceipts, retentionDays });
          }
          if (shareMine !== (myReceiptsOn !== false)) await client.setMyReceipts(conversation.id, shareMine);
          announce('Conversation settings saved.');
          close();
          refresh();
        } catch (error) {
          setBusy(form, false);
          alert.show(error);
        }
      });
      return form;
    },
  });
}
