// The connection state in the header: online, connecting or offline, in words and colour.

import { h } from './dom.js';

const LABELS = {
  online: 'Online',
  connecting: 'Connecting…',
  offline: 'Offline',
};

export class ConnectionIndicator {
  constructor(initial = 'offline') {
    this.label = h('span', { class: 'connection-label' });
    this.element = h('div', { class: 'connection', role: 'status' },
      h('span', { class: 'connection-dot', 'aria-hidden': 'true' }),
      h('span', { class: 'visually-hidden' }, 'Connection: '),
      this.label,
    );
    this.set(initial);
  }

  set(state) {
    const known = LABELS[state] ? state : 'offline';
    if (this.element.dataset.state === known) return;
    this.element.dataset.state = known;
    this.label.textContent = LABELS[known];
  }
}
