// Preferences of this browser only (never sent to the server), and the user's motion setting.

/** True when the user asked the system for reduced motion: then nothing animates. */
export function prefersReducedMotion() {
  return typeof matchMedia === 'function' && matchMedia('(prefers-reduced-motion: reduce)').matches;
}

function read(key, fallback) {
  try {
    const value = localStorage.getItem(key);
    return value === null ? fallback : JSON.parse(value);
  } catch {
    return fallback;
  }
}

function write(key, value) {
  try {
    localStorage.setItem(key, JSON.stringify(value));
    return true;
  } catch {
    return false;
  }
}

const THEME_KEY = 'circle.theme';
export const THEMES = [['dark', 'Dark'], ['light', 'Light'], ['system', 'Match the system']];

/** dark (the default), light, or system (follows prefers-color-scheme). */
export function theme() {
  const value = read(THEME_KEY, 'dark');
  return THEMES.some(([name]) => name === value) ? value : 'dark';
}

const systemPrefersLight = window.matchMedia('(prefers-color-scheme: light)');

/** Sets the palette: `system` resolves to light or dark now, and again when the system changes. */
export function applyTheme(name = theme()) {
  const resolved = name === 'system' ? (systemPrefersLight.matches ? 'light' : 'dark') : name;
  document.documentElement.dataset.theme = resolved;
}

systemPrefersLight.addEventListener('change', () => {
  if (theme() === 'system') applyTheme('system');
});

export function setTheme(name) {
  write(THEME_KEY, name);
  applyTheme(name);
}

const RELAY_KEY = 'circle.callsRelayOnly';

/**
 * Whether this browser's calls go only through the server's TURN relay, so the people called
 * never learn this device's network address (the call fails when the server has no TURN).
 */
export function callsRelayOnly() {
  return read(RELAY_KEY, false) === true;
}

export function setCallsRelayOnly(on) {
  write(RELAY_KEY, Boolean(on));
}

const PANIC_KEY = 'circle.panicShortcut';
/** The key combinations the panic lock can be set to (off by default). */
export const PANIC_SHORTCUTS = [['', 'Off'], ['ctrl+shift+l', 'Ctrl+Shift+L'], ['ctrl+shift+x', 'Ctrl+Shift+X'], ['alt+shift+q', 'Alt+Shift+Q']];

/** The panic shortcut of this browser ('' when off). */
export function panicShortcut() {
  const value = read(PANIC_KEY, '');
  return PANIC_SHORTCUTS.some(([name]) => name === value) ? value : '';
}

export function setPanicShortcut(value) {
  write(PANIC_KEY, PANIC_SHORTCUTS.some(([name]) => name === value) ? value : '');
}

/** Whether a key event is the configured panic shortcut. */
export function isPanicShortcut(event) {
  const shortcut = panicShortcut();
  if (!shortcut || typeof event.key !== 'string') return false;
  const parts = shortcut.split('+');
  const key = parts.pop();
  return event.key.toLowerCase() === key && parts.includes('ctrl') === event.ctrlKey && parts.includes('alt') === event.altKey
    && parts.includes('shift') === event.shiftKey && !event.metaKey;
}

const PREVIEWS_KEY = 'circle.notificationPreviews';
/** Whether notifications of this browser show the sender and the text (off by default: only the conversation). */
export function notificationPreviews() {
  return read(PREVIEWS_KEY, false) === true;
}

export function setNotificationPreviews(on) {
  write(PREVIEWS_KEY, Boolean(on));
}
