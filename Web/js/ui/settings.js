// The settings page: account, sessions, password, privacy on this device, what the server can
// see, and signing out.

import { h, checkbox, uid } from './dom.js';
import { announce } from './announcer.js';
import { SessionsSection } from './sessions.js';
import { changePasswordSection } from './change-password.js';
import { privacyNote } from './privacy-note.js';
import { typingIndicatorsEnabled, setTypingIndicators, THEMES, theme, setTheme } from './prefs.js';

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

export class SettingsView {
  constructor({ client, me, onSignOut }) {
    this.sessions = new SessionsSection({ client });
    const typing = checkbox({
      label: 'Send and show typing indicators',
      name: 'typing',
      checked: typingIndicatorsEnabled(),
      hint: 'Stored on this device only. When off, this device neither sends nor shows them. The server would see them.',
    });
    typing.input.addEventListener('change', () => {
      setTypingIndicators(typing.input.checked);
      announce(typing.input.checked ? 'Typing indicators on for this device.' : 'Typing indicators off for this device.');
    });

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
      this.sessions.element,
      changePasswordSection({ client }),
      h('section', { class: 'settings-section', 'aria-labelledby': 'privacy-title' },
        h('h2', { id: 'privacy-title' }, 'This device'),
        typing.field,
        themeChoice(),
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
    );
  }

  start({ section } = {}) {
    this.sessions.load();
    if (section) {
      const target = this.element.querySelector(`#${section}`);
      if (target) requestAnimationFrame(() => target.scrollIntoView());
    }
  }

  destroy() {}
}
