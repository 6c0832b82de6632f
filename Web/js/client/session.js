/**
 * Account flows (PROTOCOL 2, CircleKit ChatClient.register/login): registration with keys made
 * here, login that refuses a weak KDF before sending anything else, password change, and
 * recovery. The password never leaves the page; the server gets `authKey` only. Each flow
 * returns the account record the client keeps (non-extractable CryptoKeys, never raw seeds).
 * @module client/session
 */
import { ProtocolError, b64u, fromB64u, random } from '../protocol/bytes.js';
import * as ed25519 from '../protocol/ed25519.js';
import * as x25519 from '../protocol/x25519.js';
import {
  MINIMUM_ITERATIONS, checkKdf, deriveLoginKeys, deriveRecoveryKeys, encodeBundle, formatRecoveryKey, generateAccountKeys,
  generateRecoveryKey, makeKxCert, openBundle, openRecoveryBundle, parseRecoveryKey, sealBundle, sealRecoveryBundle, unlockBundle,
} from '../protocol/account.js';

/** The label a session gets when the caller gives none. */
export const DEFAULT_DEVICE_LABEL = 'Circle web';

/** The code of an invite given as a link (`.../invite/CODE`, `.../#/invite/CODE`) or bare. */
export function inviteCode(text) {
  const trimmed = String(text).trim();
  return trimmed.split('/').filter(Boolean).pop() ?? trimmed;
}

function normalise(username) {
  return String(username).trim().toLowerCase();
}

function stageReporter(onStage) {
  return (stage) => {
    try {
      onStage?.(stage);
    } catch {
      // A UI callback failing must not break the flow.
    }
  };
}

/** The record the client stores for a signed-in account. */
function accountRecord({ serverId, session, unlocked, sealedBundle }) {
  return {
    userId: session.user.userId,
    username: session.user.username,
    displayName: session.user.displayName,
    isAdmin: Boolean(session.user.isAdmin),
    serverId,
    token: session.token,
    sessionId: session.sessionId,
    bundleVersion: session.bundleVersion ?? 0,
    deviceId: random(16),
    identity: unlocked.identity,
    x25519: unlocked.x25519,
    pinsKey: unlocked.pinsKey,
    vaultWrapKey: unlocked.vaultWrapKey ?? null,
    sealedBundle,
    pins: {},
    pinsVersion: 0,
    // null: a new device starts at the log's head (history comes from the listings).
    lastEventSeq: null,
  };
}

/** Opens the published keys of `userId` with `token` and unlocks the bundle against them. */
async function unlockAgainstDirectory(api, token, userId, bundle) {
  const me = await api.call('GET', `/api/v1/directory/users/${encodeURIComponent(userId)}`, undefined, { token });
  if (me.userId !== userId) throw new ProtocolError('refused', 'the directory answered for another user');
  return unlockBundle(bundle, { userId, identityKey: fromB64u(me.identityKey), x25519Key: fromB64u(me.x25519Key) });
}

/** Ends a session that could not be completed (best effort). */
async function abandon(api, token) {
  try {
    await api.call('POST', '/api/v1/auth/logout', undefined, { token });
  } catch {
    // The session expires on its own.
  }
}

/** The origin this page was loaded from: what every login key derived here is bound to. */
function pageOrigin() {
  return globalThis.location.origin;
}

/**
 * The origin to derive with for a prelogin answer: this page's when the account is bound to it;
 * null for an account made before the binding (bound right after it signs in). An account bound
 * to another origin is refused before anything is derived or sent: this page may be another
 * server replaying that one's answer, or the same server under another address.
 */
function boundOrigin(prelogin) {
  const origin = pageOrigin();
  if (prelogin.origin === undefined || prelogin.origin === null) return null;
  if (prelogin.origin !== origin) {
    throw new ProtocolError('refused', `this account signs in at ${prelogin.origin}, not at ${origin}: open Circle there`);
  }
  return origin;
}

/**
 * Binds an account made before the binding to this page's origin, right after it signed in: the
 * same password derived again with the origin and a fresh salt, the bundle sealed under the new
 * kek (PROTOCOL 2). Returns the new sealed bundle.
 */
async function bindLogin(api, token, { prelogin, name, password, currentAuthKey, bundle, userId }) {
  const origin = pageOrigin();
  const salt = random(32);
  const next = await deriveLoginKeys({ origin, serverId: prelogin.serverId, username: name, salt, password, iterations: MINIMUM_ITERATIONS });
  try {
    const sealedBundle = await sealBundle(next.kek, bundle, userId);
    await api.call('POST', '/api/v1/account/login-origin', {
      currentAuthKey: b64u(currentAuthKey), authKey: b64u(next.authKey), salt: b64u(salt), bundle: b64u(sealedBundle), origin,
    }, { token });
    return sealedBundle;
  } finally {
    next.authKey.fill(0);
    next.kek.fill(0);
  }
}

/**
 * Registers a new account: keys made here, sealed under the password's kek and the recovery key.
 * @param {import('./api.js').Api} api
 * @param {{invite?: string, username: string, displayName?: string, password: string, deviceLabel?: string,
 *   onStage?: (stage: string) => void}} params
 * @returns {Promise<{account: object, recoveryKey: string}>}
 */
export async function register(api, { invite, username, displayName, password, deviceLabel, onStage }) {
  const stage = stageReporter(onStage);
  const info = await api.call('GET', '/api/v1/server', undefined, { token: null });
  const name = normalise(username);
  const userId = crypto.randomUUID();
  const salt = random(32);
  stage('deriving');
  const origin = pageOrigin();
  const { authKey, kek } = await deriveLoginKeys({ origin, serverId: info.serverId, username: name, salt, password, iterations: MINIMUM_ITERATIONS });
  const keys = generateAccountKeys();
  const bundle = encodeBundle(keys);
  const recovery = generateRecoveryKey();
  try {
    const identity = await ed25519.importSeed(keys.identitySeed);
    const agreement = await x25519.importPrivate(keys.x25519Private);
    const recoveryKeys = await deriveRecoveryKeys(recovery);
    const sealedBundle = await sealBundle(kek, bundle, userId);
    const body = {
      userId,
      username: name,
      displayName: (displayName ?? '').trim() || String(username).trim(),
      authKey: b64u(authKey),
      salt: b64u(salt),
      bundle: b64u(sealedBundle),
      recoveryBundle: b64u(await sealRecoveryBundle(recoveryKeys.kek, bundle, userId)),
      recoveryAuthKey: b64u(recoveryKeys.authKey),
      identityKey: b64u(identity.publicKey),
      x25519Key: b64u(agreement.publicKey),
      kxCert: b64u(await makeKxCert(identity.privateKey, userId, agreement.publicKey)),
      deviceLabel: deviceLabel || DEFAULT_DEVICE_LABEL,
      origin,
    };
    if (invite) body.invite = inviteCode(invite);
    recoveryKeys.kek.fill(0);
    stage('verifying');
    const session = await api.call('POST', '/api/v1/auth/register', body, { token: null });
    stage('unlocking');
    const unlocked = await unlockBundle(bundle, { userId, identityKey: identity.publicKey, x25519Key: agreement.publicKey });
    return { account: accountRecord({ serverId: info.serverId, session, unlocked, sealedBundle }), recoveryKey: formatRecoveryKey(recovery) };
  } finally {
    for (const secret of [authKey, kek, bundle, keys.identitySeed, keys.x25519Private, keys.vmk, recovery]) secret.fill(0);
  }
}

/**
 * Signs in on this browser: refuses a weakened KDF before sending anything else, derives the
 * authKey, opens the bundle and checks its keys against the directory.
 * @param {import('./api.js').Api} api
 * @param {{username: string, password: string, deviceLabel?: string, onStage?: (stage: string) => void}} params
 * @returns {Promise<{account: object}>}
 */
export async function login(api, { username, password, deviceLabel, onStage }) {
  const stage = stageReporter(onStage);
  const name = normalise(username);
  const prelogin = await api.call('POST', '/api/v1/auth/prelogin', { username: name }, { token: null });
  checkKdf(prelogin.kdf);
  const origin = boundOrigin(prelogin);
  stage('deriving');
  const { authKey, kek } = await deriveLoginKeys({
    origin, serverId: prelogin.serverId, username: name, salt: fromB64u(prelogin.salt), password, iterations: prelogin.kdf.iterations,
  });
  let bundle = null;
  try {
    stage('verifying');
    const session = await api.call('POST', '/api/v1/auth/login',
      { username: name, authKey: b64u(authKey), deviceLabel: deviceLabel || DEFAULT_DEVICE_LABEL }, { token: null });
    stage('unlocking');
    try {
      const sealedBundle = fromB64u(session.bundle);
      bundle = await openBundle(kek, sealedBundle, session.user.userId);
      const unlocked = await unlockAgainstDirectory(api, session.token, session.user.userId, bundle);
      const bound = origin === null
        ? await bindLogin(api, session.token, { prelogin, name, password, currentAuthKey: authKey, bundle, userId: session.user.userId })
        : null;
      return { account: accountRecord({ serverId: prelogin.serverId, session, unlocked, sealedBundle: bound ?? sealedBundle }) };
    } catch (error) {
      await abandon(api, session.token);
      throw error;
    }
  } finally {
    authKey.fill(0);
    kek.fill(0);
    bundle?.fill(0);
  }
}

/**
 * Changes the password: the bundle this device holds sealed is opened with the current
 * password's kek and sealed again under the new one; the server ends every other session.
 * @param {import('./api.js').Api} api
 * @param {object} account the signed-in account record (its `sealedBundle` is replaced on success)
 * @param {{currentPassword: string, newPassword: string, onStage?: (stage: string) => void}} params
 */
export async function changePassword(api, account, { currentPassword, newPassword, onStage }) {
  const stage = stageReporter(onStage);
  const prelogin = await api.post('/api/v1/auth/prelogin', { username: account.username });
  checkKdf(prelogin.kdf);
  stage('deriving');
  const current = await deriveLoginKeys({
    origin: boundOrigin(prelogin), serverId: account.serverId, username: account.username, salt: fromB64u(prelogin.salt), password: currentPassword,
    iterations: prelogin.kdf.iterations,
  });
  let bundle = null;
  const salt = random(32);
  let next = null;
  try {
    try {
      bundle = await openBundle(current.kek, account.sealedBundle, account.userId);
    } catch {
      throw new ProtocolError('refused', 'the current password is not right');
    }
    const origin = pageOrigin();
    next = await deriveLoginKeys({ origin, serverId: account.serverId, username: account.username, salt, password: newPassword, iterations: MINIMUM_ITERATIONS });
    const sealedBundle = await sealBundle(next.kek, bundle, account.userId);
    stage('verifying');
    const answer = await api.post('/api/v1/account/password', {
      currentAuthKey: b64u(current.authKey), authKey: b64u(next.authKey), salt: b64u(salt), bundle: b64u(sealedBundle), origin,
    });
    account.sealedBundle = sealedBundle;
    account.bundleVersion = answer?.bundleVersion ?? account.bundleVersion;
    return { revoked: answer?.revoked ?? [] };
  } finally {
    current.authKey.fill(0);
    current.kek.fill(0);
    next?.authKey.fill(0);
    next?.kek.fill(0);
    bundle?.fill(0);
  }
}

/**
 * Proves the password again: derives the authKey here (the password never leaves the page) and
 * opens the server's five-minute window for what cannot be undone (the destruction protocol).
 * @param {import('./api.js').Api} api
 * @param {object} account the signed-in account record
 * @param {string} password
 */
export async function reauthenticate(api, account, password) {
  const prelogin = await api.post('/api/v1/auth/prelogin', { username: account.username });
  checkKdf(prelogin.kdf);
  const { authKey, kek } = await deriveLoginKeys({
    origin: boundOrigin(prelogin), serverId: account.serverId, username: account.username, salt: fromB64u(prelogin.salt), password,
    iterations: prelogin.kdf.iterations,
  });
  try {
    await api.post('/api/v1/account/reauthenticate', { authKey: b64u(authKey) });
  } finally {
    authKey.fill(0);
    kek.fill(0);
  }
}

/**
 * Recovers an account with its recovery key: opens the recovery bundle, sets a new password
 * (every other session ends) and signs in on this browser.
 * @param {import('./api.js').Api} api
 * @param {{username: string, recoveryKey: string, newPassword: string, deviceLabel?: string,
 *   onStage?: (stage: string) => void}} params
 * @returns {Promise<{account: object}>}
 */
export async function recover(api, { username, recoveryKey, newPassword, deviceLabel, onStage }) {
  const stage = stageReporter(onStage);
  const name = normalise(username);
  const key = parseRecoveryKey(recoveryKey);
  const recoveryKeys = await deriveRecoveryKeys(key);
  key.fill(0);
  const info = await api.call('GET', '/api/v1/server', undefined, { token: null });
  let bundle = null;
  let derived = null;
  try {
    stage('verifying');
    const found = await api.call('POST', '/api/v1/auth/recovery', { username: name, recoveryAuthKey: b64u(recoveryKeys.authKey) }, { token: null });
    stage('unlocking');
    bundle = await openRecoveryBundle(recoveryKeys.kek, fromB64u(found.recoveryBundle), found.userId);
    stage('deriving');
    const salt = random(32);
    const origin = pageOrigin();
    derived = await deriveLoginKeys({ origin, serverId: info.serverId, username: name, salt, password: newPassword, iterations: MINIMUM_ITERATIONS });
    const sealedBundle = await sealBundle(derived.kek, bundle, found.userId);
    stage('verifying');
    const session = await api.call('POST', '/api/v1/auth/recovery/reset', {
      username: name, recoveryAuthKey: b64u(recoveryKeys.authKey), authKey: b64u(derived.authKey), salt: b64u(salt),
      bundle: b64u(sealedBundle), deviceLabel: deviceLabel || DEFAULT_DEVICE_LABEL, origin,
    }, { token: null });
    if (session.user.userId !== found.userId) {
      await abandon(api, session.token);
      throw new ProtocolError('refused', 'the server answered for another account');
    }
    stage('unlocking');
    try {
      const unlocked = await unlockAgainstDirectory(api, session.token, found.userId, bundle);
      return { account: accountRecord({ serverId: info.serverId, session, unlocked, sealedBundle }) };
    } catch (error) {
      await abandon(api, session.token);
      throw error;
    }
  } finally {
    recoveryKeys.authKey.fill(0);
    recoveryKeys.kek.fill(0);
    derived?.authKey.fill(0);
    derived?.kek.fill(0);
    bundle?.fill(0);
  }
}
