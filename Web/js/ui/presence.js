// Presence as shown: a dot on avatars (its state also in words for screen readers), the custom
// status beside a name, "last seen 5 min ago" for offline contacts, and who is typing.

import { h } from './dom.js';
import { initials } from './format.js';
import { icon } from './icons.js';

const STATE_LABELS = {
  online: 'online',
  away: 'away',
  busy: 'busy',
  offline: 'offline',
  invisible: 'invisible',
};

/** The states in words where there is room (the status menu, a chat's header). */
export const STATE_NAMES = {
  online: 'Online',
  away: 'Away',
  busy: 'Busy (do not disturb)',
  offline: 'Offline',
  invisible: 'Invisible (appear offline)',
};

/** The state shown for a view (unknown: offline). */
export function stateOf(view) {
  return view && STATE_LABELS[view.state] ? view.state : 'offline';
}

/** "5 min ago", "3 h ago", "2 days ago" (or "just now") from a time in milliseconds. */
function ago(millis, now = Date.now()) {
  const minutes = Math.floor(Math.max(0, now - millis) / 60_000);
  if (minutes < 1) return 'just now';
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return `${hours} h ago`;
  const days = Math.floor(hours / 24);
  return `${days} ${days === 1 ? 'day' : 'days'} ago`;
}

/** "last seen 5 min ago" for an offline view that gives it, else ''. */
export function lastSeen(view) {
  return view && stateOf(view) === 'offline' && Number.isFinite(view.lastSeenAt) ? `last seen ${ago(view.lastSeenAt)}` : '';
}

/** A custom status `{emoji, text}` as text ("🍕 At lunch"), or ''. */
export function customStatus(status) {
  return status ? [status.emoji, status.text].filter(Boolean).join(' ') : '';
}

/** A contact's custom status as text, or '' (none shown while offline). */
export function statusText(view) {
  return view && stateOf(view) !== 'offline' ? customStatus(view.status) : '';
}

/** "Ana, busy" (with the last seen time when offline): what a screen reader hears for a dot. */
function presenceText(name, view) {
  const seen = lastSeen(view);
  return `${name}, ${STATE_LABELS[stateOf(view)]}${seen ? `, ${seen}` : ''}`;
}

/** A dot for a presence state (decorative: pair it with presenceText). */
function presenceDot(view) {
  return h('span', { class: 'presence-dot', dataset: { state: stateOf(view) }, 'aria-hidden': 'true' });
}

/**
 * An avatar with its presence dot, and the state in words for screen readers. `view` undefined
 * means presence does not apply (groups): no dot.
 */
export function avatar(name, view, { group = false, className = '' } = {}) {
  const face = h('span', { class: ['avatar', group ? 'avatar-group' : '', className], 'aria-hidden': 'true' },
    group ? icon('users') : initials(name),
    view === undefined ? null : presenceDot(view));
  if (view === undefined) return face;
  return h('span', { class: 'avatar-wrap' }, face, h('span', { class: 'visually-hidden presence-text' }, presenceText(name, view)));
}

/** "Ana is typing…", "Ana and Ben are typing…", "Ana and 2 others are typing…", or ''. */
export function typingText(names) {
  if (names.length === 0) return '';
  if (names.length === 1) return `${names[0]} is typing…`;
  if (names.length === 2) return `${names[0]} and ${names[1]} are typing…`;
  return `${names[0]} and ${names.length - 1} others are typing…`;
}

/** A member's name in a conversation ("Someone" for one no longer listed). */
export function memberName(conversation, userId) {
  const member = ((conversation && conversation.members) || []).find((candidate) => candidate.userId === userId);
  return member ? member.displayName || member.username : 'Someone';
}
