// Security activity entries in words: a label for each kind, what an alert means, and the
// entry's details (device, address, browser) for the activity page, the dashboard and banners.

import { detailsOf } from '../client/activity.js';

const KIND_LABELS = {
  'sign-in': 'Signed in',
  'sign-in.failed': 'Failed sign-in',
  'session.created': 'Session created',
  'session.revoked': 'Session revoked',
  'sign-out': 'Signed out',
  'password.changed': 'Password changed',
  'login.bound': 'Sign-in bound to this address',
  'recovery.used': 'Recovery key used',
  'key.changed': 'Identity key changed',
  'invite.created': 'Invite created',
  'invite.used': 'Invite used',
  'invite.revoked': 'Invite revoked',
  'link.created': 'Share link created',
  'link.opened': 'Share link used',
  'link.password-failed': 'Wrong share link password',
  'link.revoked': 'Share link revoked',
  'file.deleted': 'File deleted',
  'alert.acknowledged': 'Alert confirmed: this was me',
  'destruction.requested': 'Destruction requested',
  'destruction.finished': 'Destruction finished',
  'destruction.approval-requested': 'Server destruction awaiting your approval',
  'destruction.approved': 'Server destruction approved',
  'destruction.cancelled': 'Server destruction refused',
  'admin.action': 'Administrator action',
  throttled: 'Sign-ins slowed down',
};

const DETAIL_LABELS = {
  method: 'method',
  inARow: 'in a row',
  revoked: 'session',
  seq: 'alert entry',
  use: 'use',
  linkId: 'link',
  fileId: 'file',
  password: 'password',
  maxDownloads: 'download limit',
};

/** A human label for an entry's kind. */
export function kindLabel(kind) {
  return KIND_LABELS[kind] || kind;
}

/** What an alert says: "New sign-in on Firefox on Linux from 127.0.0.1", "5 failed sign-ins in a row", ... */
export function alertText(entry) {
  const details = detailsOf(entry);
  switch (entry.kind) {
    case 'sign-in':
      return `New sign-in on ${details.device || 'an unnamed device'} from ${entry.ip || 'an unknown address'}`;
    case 'sign-in.failed':
      return `${details.inARow || 'Several'} failed sign-ins in a row`;
    case 'password.changed':
      return 'Your password was changed';
    case 'recovery.used':
      return 'Your recovery key was used';
    case 'link.opened':
      return 'A share link passed half its downloads';
    case 'destruction.approval-requested':
      return `${details.by || 'Another admin'} asked to destroy the whole server: it needs your approval`;
    default:
      return `Security alert: ${kindLabel(entry.kind)}`;
  }
}

/** The device label an entry names, or ''. */
export function deviceOf(entry) {
  return detailsOf(entry).device || '';
}

/** The entry's other details as "method: password · in a row: 3" (the device is shown apart). */
export function detailsText(entry) {
  return Object.entries(detailsOf(entry))
    .filter(([key]) => key !== 'device')
    .map(([key, value]) => `${DETAIL_LABELS[key] || key}: ${value}`)
    .join(' · ');
}
