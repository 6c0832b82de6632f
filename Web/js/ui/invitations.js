// Invitations (admins): create one with a note and an expiry, copy its link (shown once: the
// server keeps only a hash of the code), see who used which, and revoke one nobody used yet.

import { h, replace, field, checkbox, uid } from './dom.js';
import { alertSlot } from './errors.js';
import { confirmDialog } from './dialog.js';
import { announce } from './announcer.js';
import { fullTime } from './format.js';

const VALIDITY = [
  [24, '1 day'],
  [168, '7 days'],
  [720, '30 days'],
  [2160, '90 days'],
];

/** The link to hand over, at the address this page is served from (what members reach too). */
export function inviteLink(serverLink) {
  const code = String(serverLink).split('/invite/').pop();
  return `${window.location.origin}/#/invite/${code}`;
}

function stateText(invite) {
  switch (invite.state) {
    case 'usable': return `Open until ${fullTime(invite.expiresAt)}`;
    case 'used': {
      const who = invite.usedBy ? (invite.usedBy.displayName ? `${invite.usedBy.displayName} (@${invite.usedBy.username})` : `@${invite.usedBy.username || 'a member'}`) : 'a member';
      return `Used by ${who} on ${fullTime(invite.usedAt)}`;
    }
    case 'expired': return `Expired ${fullTime(invite.expiresAt)}`;
    case 'revoked': return `Revoked ${fullTime(invite.revokedAt)}`;
    default: return invite.state;
  }
}

export class InvitationsSection {
  constructor({ client }) {
    this.client = client;
    this.alert = alertSlot();
    this.note = field({ label: 'Note (only admins see it)', name: 'inviteNote', maxlength: 120, autocomplete: 'off', hint: 'Who it is for, say "Ben, from the book club".' });
    const validityId = uid('invite-validity');
    this.validity = h('select', { id: validityId, name: 'inviteValidity' },
      VALIDITY.map(([hours, label]) => h('option', { value: String(hours), selected: hours === 168 }, label)));
    this.asAdmin = checkbox({ label: 'Make them an administrator', name: 'inviteAdmin', hint: 'Administrators can invite others and see the server\'s security log.' });
    this.createButton = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Create invite');
    this.form = h('form', { class: 'invite-form', 'aria-label': 'Create an invite' },
      this.note.field,
      h('div', { class: 'field' }, h('label', { for: validityId }, 'Valid for'), this.validity),
      this.asAdmin.field,
      h('div', { class: 'actions actions-start' }, this.createButton),
    );
    this.form.addEventListener('submit', (event) => { event.preventDefault(); this.create(); });
    this.fresh = h('div', { class: 'invite-fresh', 'aria-live': 'polite' });
    this.list = h('ul', { class: 'invite-list', 'aria-labelledby': 'invitations-list-title' });
    this.element = h('section', { class: 'settings-section', id: 'invitations', 'aria-labelledby': 'invitations-title' },
      h('h2', { id: 'invitations-title' }, 'Invitations'),
      h('p', { class: 'section-lead' },
        'Each invite lets one person create an account. Its link is shown once: copy it and send it to them privately. ',
        'The code rides after the #, which browsers never send to a server; the server keeps only a hash of it.'),
      this.alert.element,
      this.form,
      this.fresh,
      h('h3', { id: 'invitations-list-title' }, 'Invites so far'),
      this.list,
    );
    replace(this.list, h('li', { class: 'muted' }, 'Loading invites…'));
  }

  async load() {
    try {
      const invites = await this.client.invites();
      replace(this.list, invites.length ? invites.map((invite) => this.row(invite)) : h('li', { class: 'muted' }, 'No invites yet.'));
    } catch (error) {
      replace(this.list);
      this.alert.show(error);
    }
  }

  row(invite) {
    const label = invite.note || 'No note';
    return h('li', { class: ['invite', `invite-${invite.state}`] },
      h('div', { class: 'invite-main' },
        h('p', { class: 'invite-note' }, label, invite.grantsAdmin ? h('span', { class: 'tag' }, 'Administrator') : null),
        h('p', { class: 'invite-meta' }, `${stateText(invite)} · created ${fullTime(invite.createdAt)}`)),
      invite.state === 'usable' ? h('button', {
        type: 'button', class: 'btn btn-small btn-danger', 'aria-label': `Revoke invite: ${label}`,
        onclick: () => this.revoke(invite, label),
      }, 'Revoke') : null,
    );
  }

  async create() {
    this.alert.clear();
    this.createButton.disabled = true;
    try {
      const made = await this.client.createInvite({
        note: this.note.input.value.trim(),
        validForHours: Number(this.validity.value),
        grantsAdmin: this.asAdmin.input.checked,
      });
      const link = inviteLink(made.link);
      const input = h('input', { type: 'text', readonly: true, value: link, class: 'mono invite-link', 'aria-label': 'Invite link' });
      const copy = h('button', { type: 'button', class: 'btn btn-small' }, 'Copy link');
      copy.addEventListener('click', async () => {
        try {
          await navigator.clipboard.writeText(link);
          copy.textContent = 'Copied';
          announce('Invite link copied.');
        } catch {
          input.select();
          announce('Select the link and copy it.');
        }
      });
      replace(this.fresh, h('div', { class: 'alert alert-info', role: 'status' },
        h('p', {}, h('strong', {}, 'Invite created. '), `Send this link to ${made.invite.note || 'the person you invite'}; it is shown only now.`),
        h('div', { class: 'invite-copy' }, input, copy)));
      this.note.input.value = '';
      this.asAdmin.input.checked = false;
      announce('Invite created.');
      await this.load();
    } catch (error) {
      this.alert.show(error);
    } finally {
      this.createButton.disabled = false;
    }
  }

  async revoke(invite, label) {
    const sure = await confirmDialog({
      title: 'Revoke this invite?',
      message: `The link for "${label}" stops working at once. Nobody has used it yet.`,
      confirmLabel: 'Revoke',
      danger: true,
    });
    if (!sure) return;
    this.alert.clear();
    try {
      await this.client.revokeInvite(invite.id);
      announce('Invite revoked.');
      await this.load();
    } catch (error) {
      this.alert.show(error);
    }
  }
}
