// The settings page: account, invitations (admins), sessions, password, presence privacy (typing indicators and last
// seen, kept by the server for every device), this device's appearance and call privacy, what
// the server can see, signing out, and the danger zone (panic shortcut, destruction).

import { h, checkbox, uid } from './dom.js';
import { announce } from './announcer.js';
import { alertSlot } from './errors.js';
import { SessionsSection } from './sessions.js';
import { InvitationsSection } from './invitations.js';
import { changePasswordSection } from './change-password.js';
import { dangerZoneSection } from './danger-zone.js';
import { privacyNote } from './privacy-note.js';
import { THEMES, callsRelayOnly, setCallsRelayOnly, theme, setTheme, notificationPreviews, setNotificationPreviews } from './prefs.js';
import { askNotificationPermission, notificationPermission } from './attention.js';

function themeChoice() {
  const current = theme();
  const name = uid('theme');
  return h('fieldset', { class: 'choice' },
    h('legend', {}, 'Appearance'),
    THEMES.map(([value, label]) => {
      const id = `${name}-${value}`;
      return h('div', { class: 'field-check' },
        h('input', {
          type: 'radio', id, name, value, checked: value === current,
          onchange: () => { setTheme(value); announce(`${label} appearance.`); },
        }),
        h('label', { for: id }, label));
    }),
  );
}

/** New-message notifications of this browser: asked for here, where it says what they show. */
function notificationsSection() {
  const state = h('p', { class: 'section-lead', role: 'status' });
  const button = h('button', { type: 'button', class: 'btn' }, 'Turn on notifications');
  const previews = checkbox({
    label: 'Show the sender and the text in notifications',
    name: 'notification-previews',
    checked: notificationPreviews(),
    hint: 'Off: a notification names only the conversation, so nothing of a message shows on a locked screen.',
  });
  previews.input.addEventListener('change', () => {
    setNotificationPreviews(previews.input.checked);
    announce(previews.input.checked ? 'Notifications show the sender and text.' : 'Notifications name only the conversation.');
  });
  const render = () => {
    const permission = notificationPermission();
    state.textContent = {
      granted: 'On: when this tab is hidden, new messages show a notification (not while you are busy).',
      denied: 'Blocked in this browser\u2019s site settings; allow notifications there to turn them on.',
      unsupported: 'This browser cannot show notifications.',
    }[permission] || 'Off. When this tab is hidden, a notification can tell you a new message came.';
    button.hidden = permission !== 'default';
  };
  button.addEventListener('click', async () => {
    await askNotificationPermission();
    render();
  });
  render();
  return h('section', { class: 'settings-section', id: 'notifications', 'aria-labelledby': 'notifications-title' },
    h('h2', { id: 'notifications-title' }, 'Notifications'),
    state,
    h('div', { class: 'actions actions-start' }, button),
    previews.field,
  );
}

export class SettingsView {
  constructor({ client, me, onSignOut, onAccountDestroyed }) {
    this.client = client;
    this.sessions = new SessionsSection({ client });
    this.invitations = me.isAdmin ? new InvitationsSection({ client }) : null;
    this.presenceAlert = alertSlot();
    this.typing = checkbox({
      label: 'Send and show typing indicators',
      name: 'typing',
      checked: client.presence.typingEnabled,
      hint: 'Kept for your account: when off, none of your devices send or show them. The server relays them and could see them.',
    });
    this.hideLastSeen = checkbox({
      label: 'Hide my last seen time',
      name: 'hide-last-seen',
      checked: Boolean(client.presence.own && client.presence.own.hideLastSeen),
      hint: 'Your contacts see that you are offline, not since when.',
    });
    this.relayOnly = checkbox({
      label: 'Hide my network address in calls',
      name: 'calls-relay-only',
      checked: callsRelayOnly(),
      hint: 'Calls from this device go through the server\'s relay (TURN) only, so the people you call do not learn your IP address. Needs a server with TURN; it can add delay.',
    });
    this.relayOnly.input.addEventListener('change', () => {
      setCallsRelayOnly(this.relayOnly.input.checked);
      client.calls.iceTransportPolicy = this.relayOnly.input.checked ? 'relay' : 'all';
      announce(this.relayOnly.input.checked ? 'Calls go through the relay only.' : 'Calls connect directly when they can.');
    });
    this.preference(this.typing.input, 'typing', ['Typing indicators on.', 'Typing indicators off.']);
    this.preference(this.hideLastSeen.input, 'hideLastSeen', ['Your last seen time is hidden.', 'Your contacts see when you were last online.']);

    this.element = h('div', { class: 'settings' },
      h('h1', { class: 'page-title', id: 'settings-title', tabindex: '-1' }, 'Settings'),
      h('section', { class: 'settings-section', 'aria-labelledby': 'account-title' },
        h('h2', { id: 'account-title' }, 'Account'),
        h('dl', { class: 'facts' },
          h('div', {}, h('dt', {}, 'Display name'), h('dd', {}, me.displayName || me.username)),
          h('div', {}, h('dt', {}, 'Username'), h('dd', {}, `@${me.username}`)),
          h('div', {}, h('dt', {}, 'Role'), h('dd', {}, me.isAdmin ? 'Administrator' : 'Member')),
        ),
      ),
      this.invitations ? this.invitations.element : null,
      this.sessions.element,
      changePasswordSection({ client }),
      h('section', { class: 'settings-section', id: 'presence', 'aria-labelledby': 'presence-title' },
        h('h2', { id: 'presence-title' }, 'Presence and typing'),
        this.presenceAlert.element,
        this.typing.field,
        this.hideLastSeen.field,
      ),
      notificationsSection(),
      h('section', { class: 'settings-section', 'aria-labelledby': 'privacy-title' },
        h('h2', { id: 'privacy-title' }, 'This device'),
        themeChoice(),
        this.relayOnly.field,
      ),
      h('section', { class: 'settings-section', id: 'server-sees', 'aria-labelledby': 'server-sees-title' },
        h('h2', { id: 'server-sees-title' }, 'What the server can see'),
        privacyNote({ headingLevel: 3 }),
      ),
      h('section', { class: 'settings-section', 'aria-labelledby': 'signout-title' },
        h('h2', { id: 'signout-title' }, 'Sign out'),
        h('p', { class: 'section-lead' }, 'Ends this session on this device. Unlocking again takes your password.'),
        h('div', { class: 'actions actions-start' }, h('button', { type: 'button', class: 'btn btn-danger', onclick: onSignOut }, 'Sign out of this device')),
      ),
      dangerZoneSection({ client, isAdmin: me.isAdmin, onAccountDestroyed }),
    );
  }

  start({ section } = {}) {
    this.sessions.load();
    if (this.invitations) this.invitations.load();
    if (section) {
      const target = this.element.querySelector(`#${section}`);
      if (target) requestAnimationFrame(() => target.scrollIntoView());
    }
  }

  /** A checkbox saved as one field of the presence preferences (`PUT /api/v1/presence`). */
  preference(input, name, [onText, offText]) {
    input.addEventListener('change', async () => {
      const on = input.checked;
      this.presenceAlert.clear();
      input.disabled = true;
      try {
        await this.client.presence.set({ [name]: on });
        if (name === 'typing' && !on) this.client.typing.clear();
        announce(on ? onText : offText);
      } catch (error) {
        input.checked = !on;
        this.presenceAlert.show(error);
      } finally {
        input.disabled = false;
      }
    });
  }

  /** Called when presence changed: the switches follow the account's preferences. */
  onPresence() {
    const own = this.client.presence.own;
    if (!own) return;
    if (!this.typing.input.disabled) this.typing.input.checked = own.typing !== false;
    if (!this.hideLastSeen.input.disabled) this.hideLastSeen.input.checked = Boolean(own.hideLastSeen);
  }

  destroy() {}
}
