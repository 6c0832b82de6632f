// Encryption and trust indicators: whether the keys of the people in a conversation are
// verified (safety numbers compared), unverified (pinned on first use) or changed (blocked).

import { h } from './dom.js';
import { icon } from './icons.js';

export const TRUST_TEXT = {
  verified: 'Verified',
  unverified: 'Not verified',
  changed: 'Key changed',
};

/** The other members (not me) of a conversation. */
export function otherMembers(conversation, me) {
  return (conversation.members || []).filter((member) => !me || member.userId !== me.userId);
}

/** verified when every other member is verified, changed when any key changed, else unverified. */
export function conversationTrust(conversation, me) {
  const others = otherMembers(conversation, me);
  if (others.some((member) => member.trust === 'changed')) return 'changed';
  if (others.length > 0 && others.every((member) => member.trust === 'verified')) return 'verified';
  return 'unverified';
}

/** Members whose key changed: sending is blocked until the user acknowledges each. */
export function changedMembers(conversation, me) {
  return otherMembers(conversation, me).filter((member) => member.trust === 'changed');
}

/** A small badge: icon and words (colour is never the only signal). */
export function trustBadge(trust, { prefix = '' } = {}) {
  const known = TRUST_TEXT[trust] ? trust : 'unverified';
  const iconName = known === 'verified' ? 'shieldCheck' : known === 'changed' ? 'alert' : 'shield';
  return h('span', { class: `trust trust-${known}` }, icon(iconName), h('span', {}, prefix + TRUST_TEXT[known]));
}
