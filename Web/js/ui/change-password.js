// Changing the password: the key bundle is sealed again under keys derived from the new one,
// here on this device, with the stages shown as they happen.

import { h, field, setBusy } from './dom.js';
import { alertSlot } from './errors.js';
import { MIN_PASSWORD } from './auth-forms.js';

const STAGE_TEXT = {
  deriving: 'Deriving keys from the new password…',
  verifying: 'Verifying with the server…',
  unlocking: 'Sealing your keys under the new password…',
};

export function changePasswordSection({ client }) {
  const alert = alertSlot();
  const progress = h('p', { class: 'progress-text', role: 'status' });
  const current = field({ label: 'Current password', name: 'currentPassword', type: 'password', autocomplete: 'current-password', required: true });
  const next = field({
    label: 'New password', name: 'newPassword', type: 'password', autocomplete: 'new-password', required: true,
    minlength: MIN_PASSWORD, hint: `At least ${MIN_PASSWORD} characters.`,
  });
  const repeat = field({ label: 'Repeat new password', name: 'confirmPassword', type: 'password', autocomplete: 'new-password', required: true });
  const check = () => repeat.input.setCustomValidity(repeat.input.value && repeat.input.value !== next.input.value ? 'The passwords do not match.' : '');
  next.input.addEventListener('input', check);
  repeat.input.addEventListener('input', check);

  const form = h('form', { class: 'settings-form', 'aria-labelledby': 'password-title' },
    current.field, next.field, repeat.field, alert.element, progress,
    h('div', { class: 'actions actions-start' }, h('button', { type: 'submit', class: 'btn btn-primary' }, 'Change password')),
  );
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    check();
    if (!form.reportValidity()) return;
    alert.clear();
    setBusy(form, true);
    try {
      await client.changePassword({
        currentPassword: current.input.value,
        newPassword: next.input.value,
        onStage: (stage) => { progress.textContent = STAGE_TEXT[stage] || ''; },
      });
      form.reset();
      progress.textContent = '';
      alert.show('Password changed. Other sessions must sign in with the new password.', { kind: 'success' });
    } catch (error) {
      progress.textContent = '';
      alert.show(error);
    } finally {
      setBusy(form, false);
    }
  });

  return h('section', { class: 'settings-section', id: 'password', 'aria-labelledby': 'password-title' },
    h('h2', { id: 'password-title' }, 'Change password'),
    h('p', { class: 'section-lead' }, 'Your keys are sealed again on this device under the new password. The server never learns either one.'),
    form,
  );
}
