// "What the server can see": the honest account from PROTOCOL.md section 8, in plain words.

import { h } from './dom.js';
import { openDialog } from './dialog.js';

function list(items) {
  return h('ul', { class: 'note-list' }, items.map((item) => h('li', {}, item)));
}

/** The note itself; `headingLevel` lets it sit in a page (h2) or a dialog (h3). */
export function privacyNote({ headingLevel = 3 } = {}) {
  const heading = (text) => h(`h${headingLevel}`, { class: 'note-heading' }, text);
  return h('div', { class: 'privacy-note' },
    heading('Never visible to the server'),
    list([
      'What you write, conversation titles, and your private keys.',
      'Your password: only a proof derived from it on this device is sent.',
      'What you say and show in calls: media goes from device to device, encrypted, and what sets a call up is sealed and signed on this device.',
    ]),
    heading('Visible to the server'),
    list([
      'Who talks with whom, and when; how many people are in a conversation.',
      'Approximate sizes of messages (padding blurs them but does not hide them).',
      'The IP addresses and device names of your sessions.',
      'Read receipts, typing indicators and presence. It could also forge them, so treat them as hints.',
      'Who calls whom, when, for how long, with or without video. The people you call (or the relay, if you hide your address in Settings) see your network address.',
    ]),
    heading('What this version does not protect'),
    list([
      'No forward secrecy against a stolen password: whoever learns your password and reaches the server can read your history and act as you.',
      'No deniability: messages are signed, so any member can prove to others who wrote a message.',
      'The server could reorder messages from different people, or hold back the newest ones, until members talk again.',
      'This web app is delivered by the server. A malicious server could deliver a malicious app; the command-line client is not exposed to this.',
    ]),
  );
}

export function openPrivacyNote() {
  openDialog({ title: 'What the server can see', className: 'dialog-note', body: privacyNote({ headingLevel: 3 }) });
}
