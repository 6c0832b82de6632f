// The forms at the vault door: sign in, register (with an invite) and recover with the recovery
// key. They only collect and check input; the door screen runs the key work.

import { h, field } from './dom.js';
import { guessDeviceLabel } from './format.js';

export const USERNAME_PATTERN = '[A-Za-z0-9][A-Za-z0-9._\\-]{2,31}';
export const USERNAME_HINT = '3 to 32 characters: letters, digits, dots, dashes and underscores.';
export const MIN_PASSWORD = 10;
const RECOVERY_PATTERN = '\\s*[0-9A-Fa-f]{4}(\\s*-?\\s*[0-9A-Fa-f]{4}){7}\\s*';

/** The code inside an invite link (…/#/invite/CODE, …/invite/CODE, ?invite=CODE) or a bare code. */
export function extractInviteCode(text) {
  const value = String(text || '').trim();
  if (!value) return '';
  const match = /invite[/=]([A-Za-z0-9_-]+)/.exec(value);
  return match ? match[1] : value;
}

/** A recovery key in its canonical form: 8 groups of 4 lowercase hex digits. */
export function normaliseRecoveryKey(text) {
  const hex = String(text || '').toLowerCase().replace(/[^0-9a-f]/g, '');
  return hex.match(/.{1,4}/g)?.join('-') ?? '';
}

function deviceField() {
  const { field: wrapper, input } = field({
    label: 'Name of this device',
    name: 'deviceLabel',
    value: guessDeviceLabel(),
    maxlength: 64,
    autocomplete: 'off',
    hint: 'Shown in your list of sessions.',
  });
  return { details: h('details', { class: 'more-options' }, h('summary', {}, 'Device name'), wrapper), input };
}

function passwordPair(form, { label = 'Password', confirmLabel = 'Repeat password' } = {}) {
  const password = field({
    label, name: 'newPassword', type: 'password', autocomplete: 'new-password', required: true,
    minlength: MIN_PASSWORD, hint: `At least ${MIN_PASSWORD} characters. It never leaves this device.`,
  });
  const confirm = field({ label: confirmLabel, name: 'confirmPassword', type: 'password', autocomplete: 'new-password', required: true });
  const check = () => confirm.input.setCustomValidity(confirm.input.value && confirm.input.value !== password.input.value ? 'The passwords do not match.' : '');
  password.input.addEventListener('input', check);
  confirm.input.addEventListener('input', check);
  form.addEventListener('submit', check, { capture: true });
  return { password, confirm, fields: [password.field, confirm.field] };
}

function submitButton(label) {
  return h('button', { type: 'submit', class: 'btn btn-primary btn-wide' }, label);
}

function onValidSubmit(form, handler) {
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (!form.reportValidity()) return;
    handler();
  });
}

/** Sign in: username and password. */
export function signInForm({ onSubmit, username = '' }) {
  const form = h('form', { class: 'auth-form', 'aria-label': 'Sign in' });
  const user = field({ label: 'Username', name: 'username', autocomplete: 'username', required: true, value: username, autocapitalize: 'none', spellcheck: 'false' });
  const password = field({ label: 'Password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const device = deviceField();
  form.append(user.field, password.field, device.details, submitButton('Unlock'));
  onValidSubmit(form, () => onSubmit({
    username: user.input.value.trim(),
    password: password.input.value,
    deviceLabel: device.input.value.trim(),
  }));
  return {
    form,
    focus: () => (user.input.value ? password.input : user.input).focus(),
    clearPassword: () => { password.input.value = ''; },
    focusPassword: () => password.input.focus(),
  };
}

/** Register: invite (when the server needs one), username, display name, password twice. */
export function registerForm({ onSubmit, invite = '' }) {
  const form = h('form', { class: 'auth-form', 'aria-label': 'Create account' });
  const inviteField = field({
    label: 'Invite',
    name: 'invite',
    value: invite,
    autocomplete: 'off',
    hint: invite ? 'From your invite link.' : 'Paste the invite link or code you were given (not needed on open servers).',
  });
  if (invite) inviteField.input.readOnly = true;
  const user = field({
    label: 'Username', name: 'username', autocomplete: 'username', required: true, pattern: USERNAME_PATTERN,
    minlength: 3, maxlength: 32, autocapitalize: 'none', spellcheck: 'false', hint: USERNAME_HINT,
  });
  const display = field({ label: 'Display name', name: 'displayName', autocomplete: 'name', required: true, maxlength: 64, hint: 'What other members see.' });
  const passwords = passwordPair(form);
  const device = deviceField();
  const submit = submitButton('Create account');
  form.append(inviteField.field, user.field, display.field, ...passwords.fields, device.details, submit);
  onValidSubmit(form, () => onSubmit({
    invite: extractInviteCode(inviteField.input.value) || undefined,
    username: user.input.value.trim().toLowerCase(),
    displayName: display.input.value.trim(),
    password: passwords.password.input.value,
    deviceLabel: device.input.value.trim(),
  }));
  return {
    form,
    focus: () => user.input.focus(),
    // A failed registration keeps what was typed: the reason is rarely the password.
    keepsValues: true,
    clearPassword: () => { passwords.password.input.value = ''; passwords.confirm.input.value = ''; },
    focusPassword: () => passwords.password.input.focus(),
    /** While the invite cannot be used, the form cannot be sent. */
    setBlocked: (blocked) => { submit.disabled = blocked; },
  };
}

/** Recover: username, recovery key, new password twice. */
export function recoverForm({ onSubmit }) {
  const form = h('form', { class: 'auth-form', 'aria-label': 'Recover account' });
  const user = field({ label: 'Username', name: 'username', autocomplete: 'username', required: true, autocapitalize: 'none', spellcheck: 'false' });
  const key = field({
    label: 'Recovery key', name: 'recoveryKey', required: true, autocomplete: 'off', spellcheck: 'false',
    pattern: RECOVERY_PATTERN, class: 'mono', hint: '8 groups of 4 characters, as shown when you created the account.',
  });
  const passwords = passwordPair(form, { label: 'New password', confirmLabel: 'Repeat new password' });
  const device = deviceField();
  form.append(user.field, key.field, ...passwords.fields, device.details, submitButton('Recover and unlock'));
  onValidSubmit(form, () => onSubmit({
    username: user.input.value.trim(),
    recoveryKey: normaliseRecoveryKey(key.input.value),
    newPassword: passwords.password.input.value,
    deviceLabel: device.input.value.trim(),
  }));
  return {
    form,
    focus: () => user.input.focus(),
    clearPassword: () => { passwords.password.input.value = ''; passwords.confirm.input.value = ''; },
    focusPassword: () => key.input.focus(),
  };
}
