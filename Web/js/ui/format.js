// Formatting of times, durations and names for display.

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayFormat = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

/** Accepts a Date, epoch milliseconds, or an ISO string. */
export function toDate(value) {
  if (value instanceof Date) return value;
  if (typeof value === 'number') return new Date(value);
  if (typeof value === 'string' && value) return new Date(value);
  return null;
}

export function toMillis(value) {
  const date = toDate(value);
  return date && !Number.isNaN(date.getTime()) ? date.getTime() : null;
}

/** "14:05" today, "Mar 3" otherwise. */
export function shortTime(value) {
  const date = toDate(value);
  if (!date || Number.isNaN(date.getTime())) return '';
  const today = new Date();
  return date.toDateString() === today.toDateString() ? timeFormat.format(date) : dayFormat.format(date);
}

export function clockTime(value) {
  const date = toDate(value);
  return date && !Number.isNaN(date.getTime()) ? timeFormat.format(date) : '';
}

export function fullTime(value) {
  const date = toDate(value);
  return date && !Number.isNaN(date.getTime()) ? fullFormat.format(date) : 'unknown';
}

/** A remaining time as "4:59", "1:02:03" or "3 d". */
export function countdown(milliseconds) {
  const total = Math.max(0, Math.ceil(milliseconds / 1000));
  const days = Math.floor(total / 86400);
  if (days >= 2) return `${days} d`;
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const seconds = total % 60;
  const two = (n) => String(n).padStart(2, '0');
  return hours > 0 ? `${hours}:${two(minutes)}:${two(seconds)}` : `${minutes}:${two(seconds)}`;
}

/** The disappearing-message timers offered, in seconds (0 is off). */
export const DISAPPEAR_OPTIONS = [
  [0, 'Off'],
  [30, '30 seconds'],
  [300, '5 minutes'],
  [3600, '1 hour'],
  [86400, '1 day'],
  [604800, '1 week'],
  [2419200, '4 weeks'],
];

export function disappearLabel(seconds) {
  const known = DISAPPEAR_OPTIONS.find(([value]) => value === Number(seconds));
  if (known) return known[1];
  if (seconds < 60) return `${seconds} seconds`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} minutes`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} hours`;
  return `${Math.round(seconds / 86400)} days`;
}

/** The retentions offered, in days (0 keeps messages until they are deleted). */
export const RETENTION_OPTIONS = [
  [0, 'Until deleted'],
  [1, '1 day'],
  [7, '1 week'],
  [30, '30 days'],
  [90, '90 days'],
  [365, '1 year'],
];

export function retentionLabel(days) {
  const known = RETENTION_OPTIONS.find(([value]) => value === Number(days));
  if (known) return known[1];
  return Number(days) === 1 ? '1 day' : `${Number(days)} days`;
}

/** The title to show for a conversation: its own title, else the other members' names. */
export function conversationTitle(conversation, me) {
  if (conversation.title) return conversation.title;
  const others = (conversation.members || []).filter((member) => !me || member.userId !== me.userId);
  if (others.length === 0) return 'Just you';
  return others.map((member) => member.displayName || member.username).join(', ');
}

/** Initials for an avatar: "Ada Lovelace" -> "AL". */
export function initials(name) {
  const parts = String(name || '?').trim().split(/\s+/).filter(Boolean);
  const letters = parts.length > 1 ? parts[0][0] + parts[parts.length - 1][0] : (parts[0] || '?').slice(0, 2);
  return letters.toUpperCase();
}

/** A device label from the browser, such as "Chromium on Linux". */
export function guessDeviceLabel() {
  const agent = navigator.userAgent || '';
  const browser = /Edg\//.test(agent) ? 'Edge'
    : /Firefox\//.test(agent) ? 'Firefox'
      : /Chromium\//.test(agent) ? 'Chromium'
        : /Chrome\//.test(agent) ? 'Chrome'
          : /Safari\//.test(agent) ? 'Safari' : 'Browser';
  const system = /Android/.test(agent) ? 'Android'
    : /iPhone|iPad/.test(agent) ? 'iOS'
      : /Mac OS X/.test(agent) ? 'macOS'
        : /Windows/.test(agent) ? 'Windows'
          : /Linux/.test(agent) ? 'Linux' : 'unknown system';
  return `${browser} on ${system}`;
}
