// The signed-out screen: the vault door beside the sign-in, registration or recovery form, the
// unlock stages (driven by the client's onStage) and the security level. On success the app is
// shown at once underneath and the door swings away on top of it without being waited for.

import { h, replace, setBusy } from './dom.js';
import { alertSlot } from './errors.js';
import { VaultDoor } from './vault-door.js';
import { securityPanel } from './security-level.js';
import { signInForm, registerForm, recoverForm } from './auth-forms.js';
import { recoveryKeyScreen } from './recovery-key.js';
import { icon } from './icons.js';
import { prefersReducedMotion } from './prefs.js';

const STAGES = [
  { id: 'deriving', label: 'Deriving keys', detail: 'PBKDF2-SHA256 runs here, on this device.', status: 'Deriving keys from your password…' },
  { id: 'verifying', label: 'Verifying with the server', detail: 'Only a proof derived from your password is sent.', status: 'Verifying with the server…' },
  { id: 'unlocking', label: 'Unlocking your keys', detail: 'Your key bundle is decrypted and checked here.', status: 'Unlocking your keys…' },
];

const VIEWS = {
  signin: { title: 'Sign in', lead: 'Unlock your vault. Your password never leaves this device.' },
  register: { title: 'Create your account', lead: 'Your keys are made on this device. The server never learns your password.' },
  recover: { title: 'Recover your account', lead: 'Use the recovery key you saved when you created your account, and choose a new password.' },
  recoveryKey: { title: 'Save your recovery key', lead: '' },
};

const LEAVE_FALLBACK_MS = 1800;

export class DoorScreen {
  /** `onEnter()` is called once the user is signed in and may enter the app. */
  constructor({ client, onEnter }) {
    this.client = client;
    this.onEnter = onEnter;
    this.vault = new VaultDoor();
    this.alert = alertSlot();
    this.busy = false;
    this.view = null;
    this.status = h('p', { class: 'door-status', role: 'status' }, 'Vault sealed.');
    this.stageItems = STAGES.map((stage) => h('li', { class: 'stage', dataset: { stage: stage.id, state: 'waiting' } },
      h('span', { class: 'stage-mark', 'aria-hidden': 'true' }),
      h('span', { class: 'stage-text' },
        h('span', { class: 'stage-label' }, stage.label),
        h('span', { class: 'stage-state visually-hidden' }, ': waiting'),
        h('span', { class: 'stage-detail' }, stage.detail),
      ),
    ));
    this.heading = h('h1', { class: 'door-title', id: 'door-title', tabindex: '-1' });
    this.lead = h('p', { class: 'door-lead' });
    this.notice = h('div', { class: 'door-notice' });
    this.body = h('div', { class: 'door-body' });
    this.links = h('nav', { class: 'door-links', 'aria-label': 'Other ways in' });
    this.panel = h('main', { class: 'door-panel', id: 'main', 'aria-labelledby': 'door-title' },
      h('div', { class: 'brand brand-large' }, icon('shield', 'brand-mark'), h('span', { class: 'brand-name' }, 'Circle')),
      this.heading,
      this.lead,
      this.notice,
      this.alert.element,
      this.body,
      h('section', { class: 'stages-panel', 'aria-labelledby': 'stages-title' },
        h('h2', { id: 'stages-title', class: 'stages-title' }, 'Unlock sequence'),
        h('ol', { class: 'stages' }, this.stageItems),
      ),
      this.links,
      securityPanel(),
    );
    this.element = h('div', { class: ['door-screen', this.vault.reducedMotion ? 'reduced-motion' : ''] },
      h('div', { class: 'door-visual' }, this.vault.element, this.status),
      this.panel,
    );
  }

  /** Shows the form for a route: sign in, register (with an invite code) or recover. */
  show(route, { notice } = {}) {
    if (this.busy || this.view === 'recoveryKey') return;
    const view = route.name === 'invite' || route.name === 'register' ? 'register' : route.name === 'recover' ? 'recover' : 'signin';
    if (notice) replace(this.notice, h('div', { class: 'alert alert-info', role: 'status' }, notice));
    const sameView = view === this.view && (view !== 'register' || this.invite === (route.params.code || ''));
    if (sameView) return;
    this.view = view;
    this.invite = route.params.code || '';
    if (!notice) this.notice.replaceChildren();
    this.alert.clear();
    this.resetStages();
    this.vault.setState('idle');
    const { title, lead } = VIEWS[view];
    document.title = `${title} · Circle`;
    this.heading.textContent = title;
    this.lead.textContent = lead;
    if (view === 'signin') this.form = signInForm({ onSubmit: (values) => this.signIn(values) });
    if (view === 'register') this.form = registerForm({ invite: this.invite, onSubmit: (values) => this.register(values) });
    if (view === 'recover') this.form = recoverForm({ onSubmit: (values) => this.recover(values) });
    replace(this.body, this.form.form);
    replace(this.links, ...this.linksFor(view));
    if (view === 'register' && this.invite) this.checkInvite(this.invite);
  }

  /** Says before anyone types whether the invite can still be used; a check that fails (the
   * server away) leaves the form as it is. */
  async checkInvite(code) {
    let answer;
    try {
      answer = await this.client.inviteState(code);
    } catch {
      return;
    }
    if (this.view !== 'register' || this.invite !== code || !answer) return;
    const form = this.form;
    if (answer.state === 'usable') {
      const until = answer.expiresAt ? new Date(answer.expiresAt).toLocaleString() : null;
      replace(this.notice, h('div', { class: 'alert alert-info', role: 'status' },
        until ? `This invite is valid until ${until}.` : 'This invite is valid.'));
      return;
    }
    const reasons = {
      used: 'This invite was already used: each invite admits one person.',
      expired: 'This invite has expired.',
      revoked: 'This invite was withdrawn by an administrator.',
      unknown: 'This invite link is not valid: check that it was copied whole.',
    };
    replace(this.notice, h('div', { class: 'alert alert-error', role: 'alert' },
      h('strong', {}, reasons[answer.state] || reasons.unknown), ' Ask the person who invited you for a new link.'));
    if (form.setBlocked) form.setBlocked(true);
    this.notice.scrollIntoView({ block: 'nearest' });
  }

  linksFor(view) {
    const link = (href, text) => h('a', { href, 'data-route': true, class: 'link' }, text);
    const links = [];
    if (view !== 'signin') links.push(link('/', 'Have an account? Sign in'));
    if (view !== 'register') links.push(link('/?view=register', 'New here? Create an account'));
    if (view !== 'recover') links.push(link('/?view=recover', 'Forgot your password? Use your recovery key'));
    return links;
  }

  focus() {
    if (this.form) this.form.focus();
  }

  async signIn({ username, password, deviceLabel }) {
    const ok = await this.run((onStage) => this.client.login({ username, password, deviceLabel, onStage }));
    if (ok) this.onEnter();
  }

  async recover({ username, recoveryKey, newPassword, deviceLabel }) {
    const ok = await this.run((onStage) => this.client.recover({ username, recoveryKey, newPassword, deviceLabel, onStage }));
    if (ok) this.onEnter();
  }

  async register(values) {
    let result = null;
    const ok = await this.run(async (onStage) => {
      result = await this.client.register({ ...values, onStage });
    });
    if (!ok) return;
    if (result && result.recoveryKey) this.showRecoveryKey(result.recoveryKey);
    else this.onEnter();
  }

  showRecoveryKey(recoveryKey) {
    this.view = 'recoveryKey';
    const { title } = VIEWS.recoveryKey;
    this.heading.textContent = title;
    this.lead.textContent = '';
    this.links.replaceChildren();
    const screen = recoveryKeyScreen({ recoveryKey, onConfirmed: () => this.onEnter() });
    replace(this.body, screen.element);
    this.vault.setState('unlocked');
    this.status.textContent = 'Account created. Save your recovery key to enter.';
    this.heading.focus();
  }

  /** Runs the key work with the stages shown; true on success, false after showing the error. */
  async run(task) {
    const form = this.form.form;
    this.busy = true;
    this.alert.clear();
    this.resetStages();
    setBusy(form, true);
    this.vault.setState('working');
    try {
      await task((stage) => this.setStage(stage));
      this.completeStages();
      this.status.textContent = 'Unlocked.';
      this.busy = false;
      return true;
    } catch (error) {
      this.busy = false;
      this.vault.setState('error');
      this.resetStages();
      this.status.textContent = 'Vault still sealed.';
      setBusy(form, false);
      this.alert.show(error);
      if (this.form.keepsValues) {
        this.alert.element.scrollIntoView({ block: 'nearest' });
        if (error && error.type && String(error.type).endsWith(':invite-unusable')) this.checkInvite(this.invite);
      } else {
        this.form.clearPassword();
        this.form.focusPassword();
      }
      return false;
    }
  }

  setStage(stageId) {
    const index = STAGES.findIndex((stage) => stage.id === stageId);
    if (index < 0) return;
    this.vault.setStage(stageId);
    this.stageItems.forEach((item, i) => this.markStage(item, i < index ? 'done' : i === index ? 'active' : 'waiting'));
    this.status.textContent = STAGES[index].status;
  }

  markStage(item, state) {
    item.dataset.state = state;
    item.querySelector('.stage-state').textContent = `: ${state === 'active' ? 'in progress' : state}`;
    if (state === 'active') item.setAttribute('aria-current', 'step');
    else item.removeAttribute('aria-current');
  }

  resetStages() {
    this.stageItems.forEach((item) => this.markStage(item, 'waiting'));
  }

  completeStages() {
    this.stageItems.forEach((item) => this.markStage(item, 'done'));
  }

  /** Swings the door open over the app, which is already shown underneath, and removes the
   * door when done. Never awaited: nothing waits for the animation. */
  leave() {
    const screen = this.element;
    screen.inert = true;
    screen.setAttribute('aria-hidden', 'true');
    this.panel.removeAttribute('id');
    if (this.vault.reducedMotion || prefersReducedMotion() || !screen.isConnected) {
      screen.remove();
      return;
    }
    screen.classList.add('door-leaving');
    this.vault.setState('open');
    const remove = () => screen.remove();
    screen.addEventListener('animationend', (event) => {
      if (event.target === screen && event.animationName === 'door-away') remove();
    });
    setTimeout(remove, LEAVE_FALLBACK_MS);
  }
}
