// Getting the member's attention for new messages while they look elsewhere: the count of unread
// messages in the tab's title, and (when allowed, and the page is hidden) a system notification.
// A notification names the conversation only; the sender and text appear only when this browser
// allows previews. Nothing rings while the member is busy (do not disturb).

import { notificationPreviews } from './prefs.js';

let baseTitle = document.title || 'Circle';
let unread = 0;

function render() {
  document.title = unread > 0 ? `(${unread > 99 ? '99+' : unread}) ${baseTitle}` : baseTitle;
}

/** The page's own title; the unread count is put in front of it. */
export function setPageTitle(title) {
  baseTitle = title;
  render();
}

/** The number of unread messages across conversations. */
export function setUnreadCount(count) {
  unread = Math.max(0, Number(count) || 0);
  render();
}

/** Whether this browser can show notifications, and what the member decided: granted, denied, default or unsupported. */
export function notificationPermission() {
  return typeof Notification === 'function' ? Notification.permission : 'unsupported';
}

/** Asks the browser for permission (only from a click that explains why); resolves to the answer. */
export async function askNotificationPermission() {
  if (typeof Notification !== 'function') return 'unsupported';
  return Notification.requestPermission();
}

/**
 * Tells the member about new messages in a conversation they are not looking at: only when the
 * page is hidden, notifications are allowed and the member is not busy. `preview()` gives
 * `{sender, text}` of the newest message, asked for only when previews are allowed.
 */
export async function notifyNewMessages({ convId, title, count, busy, preview }) {
  if (busy || count <= 0 || document.visibilityState !== 'hidden' || notificationPermission() !== 'granted') return null;
  let body = count === 1 ? 'A new message.' : `${count} new messages.`;
  if (notificationPreviews() && preview) {
    const newest = await preview();
    if (newest && newest.text) body = `${newest.sender}: ${newest.text}`.slice(0, 200);
  }
  const notification = new Notification(title, { body, tag: `circle-${convId}`, silent: false });
  notification.onclick = () => {
    window.focus();
    notification.close();
  };
  return notification;
}
