// Security alerts: a banner at the top of the app for each open alert (a sign-in elsewhere,
// failed sign-ins, a password change, the recovery key used, a share link half used up) with
// "This was me" and, for a sign-in, "Revoke that session". The activity page and the dashboard
// list them with the same actions.

import { h, replace } from './dom.js';
import { icon } from './icons.js';
import { confirmDialog } from './dialog.js';
import { announce, toast } from './announcer.js';
import { describeError } from './errors.js';
import { fullTime, toMillis } from './format.js';
import { alertText } from './activity-format.js';
import { detailsOf, sessionOf } from '../client/activity.js';
import { ACTIVITY_PATH } from './router.js';
import { openServerApproval } from './danger-zone.js';

const SHOWN_BANNERS = 3;

/**
 * The actions of one alert: "This was me" and, while the session it names is live and not this
 * one, "Revoke that session". `sessions` is the account's live sessions (or null: not known).
 */
export function alertActions({ client, entry, sessions }) {
  const text = alertText(entry);
  if (entry.kind === 'destruction.approval-requested') return approvalActions({ client, entry, text });
  const session = sessions ? sessionOf(entry, sessions) : null;
  return h('div', { class: 'banner-actions' },
    h('button', {
      type: 'button',
      class: 'btn btn-small',
      'aria-label': `This was me: ${text}`,
      onclick: (event) => acknowledge(client, entry, event.currentTarget),
    }, 'This was me'),
    session && !session.current ? h('button', {
      type: 'button',
      class: 'btn btn-small btn-danger',
      'aria-label': `Revoke that session: ${text}`,
      onclick: () => revokeSession(client, entry, session),
    }, 'Revoke that session') : null,
  );
}

/** A server's destruction waiting for this admin: review it (approve or refuse), or dismiss. */
function approvalActions({ client, entry, text }) {
  const review = async () => {
    try {
      const job = await client.destructionJob(detailsOf(entry).job || '');
      if (job.state !== 'awaiting-approval' || (job.approvalExpiresAt && job.approvalExpiresAt < Date.now())) {
        toast(job.state === 'cancelled' ? 'That request was refused.' : 'That request is no longer waiting for approval.');
        await client.activity.acknowledge(entry.seq);
        return;
      }
      openServerApproval({
        client,
        job,
        onDone: (done) => {
          if (done.state === 'cancelled') client.activity.acknowledge(entry.seq).catch(() => {});
          else client.notify('destroyed', { job: done });
        },
      });
    } catch (error) {
      toast(describeError(error), { kind: 'error' });
    }
  };
  return h('div', { class: 'banner-actions' },
    h('button', { type: 'button', class: 'btn btn-small btn-danger', 'aria-label': `Review the request: ${text}`, onclick: review }, 'Review the request'),
    h('button', {
      type: 'button', class: 'btn btn-small', 'aria-label': `Dismiss: ${text}`,
      onclick: (event) => acknowledge(client, entry, event.currentTarget),
    }, 'Dismiss'),
  );
}

async function acknowledge(client, entry, button) {
  button.disabled = true;
  try {
    await client.activity.acknowledge(entry.seq);
    announce('Alert confirmed as yours.');
  } catch (error) {
    button.disabled = false;
    toast(describeError(error), { kind: 'error' });
  }
}

/** Revokes the session a sign-in alert names; the alert is then dealt with and closes. */
async function revokeSession(client, entry, session) {
  const label = session.deviceLabel || 'Unnamed device';
  const sure = await confirmDialog({
    title: 'Revoke that session?',
    message: `${label} (${session.ip || 'unknown address'}) is signed out at once. If that sign-in was not you, change your password too.`,
    confirmLabel: 'Revoke',
    danger: true,
  });
  if (!sure) return;
  try {
    await client.revokeSession(session.id);
    await client.activity.acknowledge(entry.seq);
    announce(`Session ${label} revoked.`);
  } catch (error) {
    toast(describeError(error), { kind: 'error' });
  }
}

/** The account's live sessions, or null when they cannot be listed now. */
export async function liveSessions(client) {
  try {
    return await client.sessions();
  } catch {
    return null;
  }
}

/** Whether any alert names a session (then the session list is needed for its actions). */
export function needsSessions(alerts) {
  return alerts.some((entry) => entry.kind === 'sign-in' || entry.kind === 'session.created');
}

/** The banners at the top of the signed-in app. */
export class AlertBanners {
  constructor({ client }) {
    this.client = client;
    this.element = h('div', { class: 'alert-banners' });
    this.shown = '';
  }

  /**
   * Shows the client's open alerts (only when they changed, so each is announced once), but not
   * a sign-in's alert on the device that signed in.
   */
  async render() {
    const alerts = this.client.activity.alerts || [];
    const key = alerts.map((entry) => entry.seq).join(' ');
    if (key === this.shown) return;
    this.shown = key;
    const sessions = needsSessions(alerts) ? await liveSessions(this.client) : null;
    if (key !== this.shown) return;
    // The device that signed in is not alerted about itself (the others are).
    const shown = alerts.filter((entry) => !(sessions && sessionOf(entry, sessions)?.current));
    const banners = shown.slice(0, SHOWN_BANNERS).map((entry) => h('div', { class: 'banner banner-danger security-alert', role: 'alert' },
      icon('alert'),
      h('div', { class: 'banner-text' },
        h('strong', {}, alertText(entry)),
        h('span', { class: 'banner-time' }, ` · ${fullTime(toMillis(entry.at))}`)),
      alertActions({ client: this.client, entry, sessions }),
    ));
    if (shown.length > SHOWN_BANNERS) {
      banners.push(h('p', { class: 'alert-more' },
        h('a', { href: ACTIVITY_PATH, 'data-route': true }, `${shown.length - SHOWN_BANNERS} more alerts on the Activity page`)));
    }
    replace(this.element, banners);
  }
}
