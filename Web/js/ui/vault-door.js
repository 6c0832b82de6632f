// The vault door: a heavy round door in CSS 3D with bolts, a handle wheel and security rings.
// Purely decorative (aria-hidden); the door screen tells the same story in text. Its state is a
// data attribute that the stylesheet animates: idle, working (rings turn while keys are derived
// and checked), error, open (the door swings away). With reduced motion nothing moves.

import { h } from './dom.js';
import { prefersReducedMotion } from './prefs.js';

const BOLTS = 12;
const RIVETS = 4;

export class VaultDoor {
  constructor() {
    this.reducedMotion = prefersReducedMotion();
    const bolts = [];
    for (let i = 0; i < BOLTS; i++) {
      const bolt = h('span', { class: 'vault-bolt' });
      bolt.style.setProperty('--angle', `${(360 / BOLTS) * i}deg`);
      bolts.push(bolt);
    }
    const ticks = [];
    for (let i = 0; i < 24; i++) {
      const tick = h('span', { class: 'vault-tick' });
      tick.style.setProperty('--angle', `${15 * i}deg`);
      ticks.push(tick);
    }
    const rivets = [];
    for (let i = 0; i < RIVETS; i++) rivets.push(h('span', { class: `vault-rivet vault-rivet-${i + 1}` }));

    this.element = h('div', {
      class: ['vault', this.reducedMotion ? 'vault-still' : ''],
      'aria-hidden': 'true',
      dataset: { state: 'idle', stage: '' },
    },
    h('div', { class: 'vault-stage' },
      h('div', { class: 'vault-frame' },
        rivets,
        h('div', { class: 'vault-ring vault-ring-outer' }),
        h('div', { class: 'vault-ring vault-ring-middle' }),
        h('div', { class: 'vault-ring vault-ring-scan' }),
        h('div', { class: 'vault-opening' }, h('div', { class: 'vault-glow' })),
        h('div', { class: 'vault-hinge' },
          h('div', { class: 'vault-door' },
            h('div', { class: 'vault-door-edge' }),
            h('div', { class: 'vault-door-face' },
              bolts,
              h('div', { class: 'vault-dial' }, ticks),
              h('div', { class: 'vault-wheel' },
                h('span', { class: 'vault-spoke vault-spoke-1' }),
                h('span', { class: 'vault-spoke vault-spoke-2' }),
                h('span', { class: 'vault-spoke vault-spoke-3' }),
                h('span', { class: 'vault-hub' }),
              ),
              h('span', { class: 'vault-lamp' }),
            ),
          ),
        ),
        h('div', { class: 'vault-hinge-pins' }, h('span'), h('span')),
      ),
    ));
  }

  /** idle, working, unlocked, error or open. */
  setState(state) {
    this.element.dataset.state = state;
    if (state !== 'working') this.element.dataset.stage = state === 'open' ? 'open' : '';
  }

  /** deriving, verifying or unlocking: each turns the mechanism a little further. */
  setStage(stage) {
    this.element.dataset.state = 'working';
    this.element.dataset.stage = stage;
  }
}
