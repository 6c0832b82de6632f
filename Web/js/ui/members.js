// Members of a conversation: their presence and custom status, their trust, the way to each
// safety number, and for admins of a group, adding and removing members.

import { h, field, replace, setBusy } from './dom.js';
import { alertSlot } from './errors.js';
import { openDialog, confirmDialog } from './dialog.js';
import { trustBadge } from './trust.js';
import { avatar, statusText } from './presence.js';
import { openSafetyNumber } from './safety-number.js';
import { announce } from './announcer.js';

/** Opens the members dialog. `getConversation()` returns the freshest copy; `refresh()` reloads
 * conversations and resolves when done. */
export function openMembers({ client, me, getConversation, refresh }) {
  const alert = alertSlot();
  const list = h('ul', { class: 'member-list' });
  const addArea = h('div', {});

  const canManage = () => {
    const conversation = getConversation();
    return conversation && conversation.kind === 'group' && conversation.myRole === 'admin';
  };

  const render = () => {
    const conversation = getConversation();
    if (!conversation) return;
    replace(list, (conversation.members || []).map((member) => memberRow(member, conversation)));
    replace(addArea, canManage() ? addForm(conversation) : null);
  };

  const memberRow = (member, conversation) => {
    const isMe = me && member.userId === me.userId;
    const name = member.displayName || member.username;
    const buttons = [];
    if (!isMe) {
      buttons.push(h('button', {
        type: 'button',
        class: 'btn btn-small',
        'aria-label': `Safety number with ${name}`,
        onclick: () => openSafetyNumber({ client, member, onChanged: () => refresh().then(render) }),
      }, 'Safety number'));
    }
    if (!isMe && canManage()) {
      buttons.push(h('button', {
        type: 'button',
        class: 'btn btn-small btn-danger',
        'aria-label': `Remove ${name}`,
        onclick: async () => {
          const sure = await confirmDialog({
            title: `Remove ${name}?`,
            message: `${name} will receive no keys for new messages. Messages they already received stay with them.`,
            confirmLabel: 'Remove',
            danger: true,
          });
          if (!sure) return;
          try {
            await client.removeMember(conversation.id, member.userId);
            announce(`${name} removed.`);
            await refresh();
            render();
          } catch (error) {
            alert.show(error);
          }
        },
      }, 'Remove'));
    }
    const presence = client.presence.of(member.userId);
    const status = statusText(presence);
    return h('li', { class: 'member' },
      avatar(name, presence),
      h('span', { class: 'member-main' },
        h('span', { class: 'member-name' }, name, isMe ? ' (you)' : ''),
        status ? h('span', { class: 'member-status' }, status) : null,
        h('span', { class: 'member-meta' }, `@${member.username}`, member.role && member.role !== 'member' ? ` · ${member.role}` : ''),
        member.left ? h('span', { class: 'member-left' }, 'Left the Circle') : null,
      ),
      isMe ? null : trustBadge(member.trust),
      h('span', { class: 'member-actions' }, buttons),
    );
  };

  const addForm = (conversation) => {
    const username = field({ label: 'Add a member (username)', name: 'username', required: true, autocomplete: 'off', autocapitalize: 'none', spellcheck: 'false' });
    const form = h('form', { class: 'inline-form' }, username.field, h('button', { type: 'submit', class: 'btn btn-primary' }, 'Add'));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      if (!form.reportValidity()) return;
      const name = username.input.value.trim().replace(/^@/, '').toLowerCase();
      alert.clear();
      setBusy(form, true);
      try {
        await client.addMember(conversation.id, name);
        announce(`${name} added. They can read messages sent from now on.`);
        await refresh();
        render();
      } catch (error) {
        setBusy(form, false);
        alert.show(error);
      }
    });
    return form;
  };

  render();
  const conversation = getConversation();
  openDialog({
    title: 'Members',
    className: 'dialog-members',
    description: conversation && conversation.kind === 'group'
      ? 'New members can read messages sent after they join. Removed members get no keys for later messages.'
      : 'Compare safety numbers to make sure nobody is in between.',
    body: h('div', {}, list, alert.element, addArea),
  });
}
