// A menu button (the WAI-ARIA menu button pattern): a button that opens a list of actions,
// moved through with the arrow keys, Home and End; Escape, Tab or a click elsewhere closes it.
// Choosing an action closes the menu and returns focus to the button before the action runs,
// so a dialog it opens gives focus back to the button.

import { h, uid } from './dom.js';

/**
 * `items`: `[{label, onSelect, danger?}]`; `label` names the button (visible text), `name` its
 * accessible name when that should say more (for example which file it is for).
 * Returns the element holding the button and its menu.
 */
export function menuButton({ label, name = label, items, className = 'btn btn-small' }) {
  const menuId = uid('menu');
  const button = h('button', {
    type: 'button', class: className, 'aria-haspopup': 'menu', 'aria-expanded': 'false', 'aria-controls': menuId,
    'aria-label': name === label ? undefined : name,
  }, label, h('span', { class: 'menu-caret', 'aria-hidden': 'true' }, '▾'));
  const entries = items.map((item) => h('li', { role: 'none' },
    h('button', {
      type: 'button', role: 'menuitem', tabindex: '-1', class: ['menu-item', item.danger ? 'menu-item-danger' : ''],
      onclick: () => choose(item),
    }, item.label)));
  const menu = h('ul', { role: 'menu', id: menuId, class: 'menu', 'aria-label': name, hidden: true }, entries);
  const element = h('div', { class: 'menu-wrap' }, button, menu);
  const options = () => [...menu.querySelectorAll('[role="menuitem"]')];

  const outside = (event) => {
    if (!element.contains(event.target)) close(false);
  };
  function open(focusLast = false) {
    menu.hidden = false;
    button.setAttribute('aria-expanded', 'true');
    const all = options();
    all[focusLast ? all.length - 1 : 0]?.focus();
    document.addEventListener('pointerdown', outside, true);
  }
  function close(refocus = true) {
    if (menu.hidden) return;
    menu.hidden = true;
    button.setAttribute('aria-expanded', 'false');
    document.removeEventListener('pointerdown', outside, true);
    if (refocus) button.focus();
  }
  function choose(item) {
    close(true);
    item.onSelect();
  }

  button.addEventListener('click', () => (menu.hidden ? open() : close()));
  button.addEventListener('keydown', (event) => {
    if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
      event.preventDefault();
      open(event.key === 'ArrowUp');
    }
  });
  menu.addEventListener('keydown', (event) => {
    const all = options();
    const at = all.indexOf(document.activeElement);
    const move = { ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: all.length - 1 }[event.key];
    if (move !== undefined) {
      event.preventDefault();
      all[(move + all.length) % all.length]?.focus();
    } else if (event.key === 'Escape') {
      event.preventDefault();
      event.stopPropagation();
      close(true);
    } else if (event.key === 'Tab') {
      close(false);
    }
  });
  return element;
}
