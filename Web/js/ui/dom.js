// DOM helpers. Every element is built through the DOM API: text from users or the server only
// ever becomes a text node, never markup.

const SVG_NS = 'http://www.w3.org/2000/svg';
const PROPERTIES = new Set(['value', 'checked', 'disabled', 'hidden', 'inert', 'selected', 'htmlFor', 'open']);

function applyProps(element, props) {
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') element.setAttribute('class', Array.isArray(value) ? value.filter(Boolean).join(' ') : value);
    else if (key === 'text') element.textContent = value;
    else if (key === 'dataset') Object.assign(element.dataset, value);
    else if (key === 'ref') value(element);
    else if (key.startsWith('on') && typeof value === 'function') element.addEventListener(key.slice(2), value);
    else if (PROPERTIES.has(key)) element[key] = value;
    else element.setAttribute(key, value === true ? '' : String(value));
  }
}

function appendChildren(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** h('button', {class: 'btn', onclick}, 'Label'): an HTML element with properties and children. */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  applyProps(element, props);
  appendChildren(element, children);
  return element;
}

/** The same for SVG elements. */
export function s(tag, props = {}, ...children) {
  const element = document.createElementNS(SVG_NS, tag);
  applyProps(element, props);
  appendChildren(element, children);
  return element;
}

/** Replaces an element's children. */
export function replace(element, ...children) {
  element.replaceChildren();
  appendChildren(element, children);
  return element;
}

let nextId = 0;
/** A document-unique id for label/aria wiring. */
export function uid(prefix = 'id') {
  nextId += 1;
  return `${prefix}-${nextId}`;
}

/** A labelled form field: {field, input}. `hint` becomes aria-describedby text. */
export function field({ label, name, type = 'text', hint, ...inputProps }) {
  const id = uid(name || 'field');
  const hintId = hint ? `${id}-hint` : undefined;
  const input = h('input', { id, name, type, 'aria-describedby': hintId, ...inputProps });
  const wrapper = h('div', { class: 'field' },
    h('label', { for: id }, label),
    input,
    hint ? h('p', { class: 'field-hint', id: hintId }, hint) : null,
  );
  return { field: wrapper, input };
}

/** A checkbox with its label: {field, input}. */
export function checkbox({ label, name, checked = false, hint, ...inputProps }) {
  const id = uid(name || 'check');
  const hintId = hint ? `${id}-hint` : undefined;
  const input = h('input', { id, name, type: 'checkbox', checked, 'aria-describedby': hintId, ...inputProps });
  const wrapper = h('div', { class: 'field field-check' },
    input,
    h('label', { for: id }, label),
    hint ? h('p', { class: 'field-hint', id: hintId }, hint) : null,
  );
  return { field: wrapper, input };
}

/** Disables every control of a form while `busy` (and marks it aria-busy). */
export function setBusy(form, busy) {
  form.setAttribute('aria-busy', busy ? 'true' : 'false');
  for (const control of form.querySelectorAll('input, button, select, textarea')) {
    if (busy) {
      control.dataset.wasDisabled = control.disabled ? '1' : '';
      control.disabled = true;
    } else {
      control.disabled = control.dataset.wasDisabled === '1';
      delete control.dataset.wasDisabled;
    }
  }
}
