/**
 * What the UI shows, composed from the verified chains and the decrypted cache: conversation
 * summaries with members and trust, and messages with edits, deletes and read receipts applied.
 * @module client/views
 */
import { b64u } from '../protocol/bytes.js';
import { CONTENT_TYPES } from '../protocol/message.js';
import { ApiError } from './api.js';
import { applies } from './messaging.js';
import { parseAttachment } from './vault.js';
import { decodeOp } from '../protocol/membership.js';

const PREVIEW_LENGTH = 140;

/** Orders cached messages by sequence number; messages not yet stored by the server come last. */
function bySeq(a, b) {
  return (a.seq ?? Infinity) - (b.seq ?? Infinity) || a.sentAt - b.sentAt;
}

/**
 * Messages a sender's chain shows were sent but that the server did not list: a gap in the chain
 * indexes between two received messages (PROTOCOL 6: a sender numbers its messages with no
 * gap). Checked only where neither side expires: in an epoch with a disappearing timer the
 * server deletes expired messages, and a gap is expected. Each gap becomes one "missing" entry,
 * placed just before the message after it.
 */
function missingInChains(cache, myUserId) {
  const chains = new Map();
  for (const message of cache.values()) {
    if (!message.chain || !Number.isInteger(message.chainIndex) || message.pending) continue;
    if (!chains.has(message.chain)) chains.set(message.chain, []);
    chains.get(message.chain).push(message);
  }
  const out = [];
  for (const messages of chains.values()) {
    messages.sort((a, b) => a.chainIndex - b.chainIndex);
    for (let i = 1; i < messages.length; i++) {
      const before = messages[i - 1];
      const after = messages[i];
      const count = after.chainIndex - before.chainIndex - 1;
      if (count <= 0 || before.expiresAt || after.expiresAt) continue;
      out.push({
        id: `missing:${after.chain}:${after.chainIndex}`, seq: after.seq - 0.5, sender: after.sender, kind: 'message',
        contentType: CONTENT_TYPES.text, text: '', sentAt: after.sentAt, expiresAt: 0, edited: false, deleted: false,
        missing: true, missingCount: count, mine: after.sender === myUserId,
      });
    }
  }
  return out;
}

/**
 * Text messages with their edits and deletes applied (each only from the original's author and
 * naming its header hash), and attachments (content type 4; the `text` is the file's name,
 * `attachment` is `{fileId, name, type, size, sha256}` without the key), oldest first.
 * @param {Map<string, object>} cache the conversation's cached messages by id
 * @param {string} myUserId
 * @returns {object[]} cache records with `text`, `edited`, `deleted` and `mine` as shown
 */
export function visibleMessages(cache, myUserId) {
  const changes = new Map();
  for (const message of cache.values()) {
    if (message.kind === 'message' || !message.refersTo) continue;
    if (!changes.has(message.refersTo)) changes.set(message.refersTo, []);
    changes.get(message.refersTo).push(message);
  }
  const out = missingInChains(cache, myUserId);
  const shown = (m) => m.kind === 'message' && (m.contentType === CONTENT_TYPES.text || m.contentType === CONTENT_TYPES.attachment);
  const texts = [...cache.values()].filter(shown).sort(bySeq);
  for (const message of texts) {
    // A tombstone is "deleted" only with its author's delete (messaging.js takeDeleted);
    // without one, the server suppressed a message, and the chat says one is missing.
    if (message.tombstone && !(changes.get(message.id) ?? []).some((change) => change.kind === 'delete' && applies(change, message))) {
      out.push({ ...message, text: '', edited: false, deleted: false, missing: true, mine: message.sender === myUserId });
      continue;
    }
    if (message.contentType === CONTENT_TYPES.attachment) {
      const deleted = message.deleted === true
        || (changes.get(message.id) ?? []).some((change) => change.kind === 'delete' && applies(change, message));
      const attachment = deleted ? null : parseAttachment(message.text);
      if (!deleted && !attachment) continue;
      const view = { ...message, text: deleted ? '' : attachment.name, edited: false, deleted, mine: message.sender === myUserId };
      if (attachment) {
        view.attachment = { fileId: attachment.fileId, name: attachment.name, type: attachment.type, size: attachment.size, sha256: attachment.sha256 };
      }
      out.push(view);
      continue;
    }
    const related = (changes.get(message.id) ?? []).filter((change) => applies(change, message)).sort(bySeq);
    const deleted = message.deleted === true || related.some((change) => change.kind === 'delete');
    const edits = related.filter((change) => change.kind === 'edit');
    const edit = edits[edits.length - 1];
    out.push({
      ...message,
      text: deleted ? '' : (edit ? edit.text : message.text),
      edited: !deleted && Boolean(edit),
      deleted,
      mine: message.sender === myUserId,
    });
  }
  return out.sort(bySeq);
}

/**
 * One conversation as `CircleClient.conversations()` lists it. The chain is verified (and brought
 * up to the listed head) first; one that fails is listed with `alarm` and no members.
 * @param {import('./index.js').CircleClient} client
 * @param {object} account
 * @param {object} summary the server's listing entry
 */
export async function conversationView(client, account, summary) {
  client.summaries.set(summary.id, summary);
  const record = await client.conversation(summary.id);
  if (summary.head > (record.maxHead ?? -1)) record.maxHead = summary.head;
  let chain = null;
  let alarm = null;
  try {
    chain = await client.chains.local(summary.id);
    if (!chain || chain.head < summary.head || b64u(chain.epoch) !== summary.epoch) chain = await client.chains.refresh(summary.id);
  } catch (error) {
    if (!(error instanceof ApiError && error.transient && chain)) {
      alarm = String(error?.message ?? error);
      chain = null;
    }
  }
  if (record.myReceipts === undefined) {
    try {
      record.myReceipts = (await client.api.get(`/api/v1/conversations/${summary.id}`)).readReceipts !== false;
      await client.saveConversation(record);
    } catch {
      // Asked again next time.
    }
  }
  const members = [];
  for (const [userId, member] of chain?.members ?? []) {
    members.push({
      userId,
      username: await client.directory.username(userId),
      displayName: await client.directory.displayName(userId),
      left: await client.directory.hasLeft(userId),
      role: member.role,
      trust: client.directory.trust(userId),
    });
  }
  const me = account.userId;
  members.sort((a, b) => (a.userId === me ? -1 : b.userId === me ? 1 : a.username.localeCompare(b.username)));
  const others = members.filter((member) => member.userId !== me);
  const kind = chain?.kind ?? summary.kind;
  const title = kind === 'group'
    ? (record.title?.text || others.map((member) => member.displayName).join(', ') || 'Group')
    : (others[0]?.displayName ?? 'Conversation');
  const shown = visibleMessages(await client.messaging.messagesOf(summary.id), me).filter((message) => !message.deleted && !message.missing);
  const last = shown[shown.length - 1];
  const lastMessage = last
    ? {
      preview: (last.attachment ? `Attachment: ${last.text}` : last.text).slice(0, PREVIEW_LENGTH),
      sentAt: last.sentAt,
      senderName: last.mine ? account.displayName : await client.directory.displayName(last.sender),
    }
    : null;
  return {
    id: summary.id,
    kind,
    title,
    members,
    unread: summary.unread,
    lastMessage,
    updatedAt: summary.updatedAt,
    settings: chain ? {
      disappearSeconds: chain.settings.disappearSeconds, readReceipts: chain.settings.readReceipts, retentionDays: chain.settings.retentionDays || 0,
    } : null,
    myRole: chain?.role(me) ?? summary.role,
    myReceipts: record.myReceipts !== false,
    alarm,
  };
}

/**
 * The messages of a conversation as `CircleClient.messages()` returns them, from the cache.
 * Receipts show only while the conversation's signed setting and this user's switch allow them.
 * @param {import('./index.js').CircleClient} client
 * @param {string} convId
 * @param {object} account
 */
export async function messageViews(client, convId, account) {
  const record = await client.conversation(convId);
  const chain = await client.chains.local(convId);
  const showReads = Boolean(chain?.settings.readReceipts) && record.myReceipts !== false;
  const messages = visibleMessages(await client.messaging.messagesOf(convId), account.userId);
  // Each reader is named once, under the newest of my messages they have read (a deleted one
  // shows no status, so not there); my older messages they read say only "Read".
  const readers = showReads ? Object.entries(record.reads ?? {}).filter(([userId]) => userId !== account.userId) : [];
  const mySeqs = messages.filter((message) => message.mine && message.seq && !message.deleted && !message.missing).map((message) => message.seq).sort((a, b) => a - b);
  const namedAt = new Map();
  for (const [userId, seq] of readers) {
    const newest = mySeqs.filter((mine) => mine <= seq).pop();
    if (newest !== undefined) namedAt.set(newest, [...(namedAt.get(newest) ?? []), userId]);
  }
  const views = [];
  for (const message of messages) {
    const readBy = [];
    for (const userId of (message.mine && namedAt.get(message.seq)) || []) readBy.push(await client.directory.displayName(userId));
    readBy.sort();
    const read = Boolean(message.mine && message.seq) && readers.some(([, seq]) => seq >= message.seq);
    const extra = message.attachment ? { attachment: message.attachment } : {};
    views.push({
      ...extra,
      id: message.id,
      sender: { userId: message.sender, displayName: message.mine ? account.displayName : await client.directory.displayName(message.sender) },
      mine: message.mine,
      text: message.text,
      sentAt: message.sentAt,
      expiresAt: message.localExpiresAt || null,
      edited: message.edited,
      deleted: message.deleted,
      missing: message.missing === true,
      missingCount: message.missingCount ?? (message.missing ? 1 : 0),
      tombstone: message.tombstone === true,
      status: message.pending ? 'sending' : (read ? 'read' : 'sent'),
      readBy,
    });
  }
  return views;
}

/**
 * The conversation's setting changes after its creation, from the verified chain: one entry per
 * change of the disappearing timer or of read receipts, `{id, at, actor, actorName, mine, what,
 * disappearSeconds, readReceipts}` (`what` is `timer` or `receipts`), oldest first. Everyone sees
 * the same ones: they are signed ops, not messages.
 * @param {import('./index.js').CircleClient} client
 * @param {string} convId
 * @param {object} account
 */
export async function settingsChanges(client, convId, account) {
  const chain = await client.chains.local(convId);
  if (!chain) return [];
  const changes = [];
  let previous = null;
  for (let n = 0; n < chain.ops.length; n++) {
    const op = decodeOp(chain.ops[n].op);
    if (!op.settings) continue;
    if (previous) {
      const mine = op.actor === account.userId;
      const actorName = mine ? account.displayName : await client.directory.displayName(op.actor);
      const base = {
        at: Number(op.createdAt), actor: op.actor, actorName, mine, disappearSeconds: op.settings.disappearSeconds,
        readReceipts: op.settings.readReceipts, retentionDays: op.settings.retentionDays || 0,
      };
      if (op.settings.disappearSeconds !== previous.disappearSeconds) changes.push({ ...base, id: `settings-${n}-timer`, what: 'timer' });
      if (op.settings.readReceipts !== previous.readReceipts) changes.push({ ...base, id: `settings-${n}-receipts`, what: 'receipts' });
      if ((op.settings.retentionDays || 0) !== (previous.retentionDays || 0)) changes.push({ ...base, id: `settings-${n}-retention`, what: 'retention' });
    }
    previous = op.settings;
  }
  return changes;
}
