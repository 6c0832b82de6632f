"""The browser's protocol modules (Web/js/protocol/) against the committed vectors, in Chromium.

Every check runs inside the page served by a real `circle serve` (strict CSP, `script-src 'self'`):
the modules are imported with `import()` and the vectors are handed in as evaluate arguments, not
fetched. Covered: every RFC 9180 vector of Circle's suite (Tests/Vectors, all four modes:
key schedule, each encryption in both directions, exports), every entry of
Tests/Vectors/circle-v1.json (signatures verify-only), and the refusals PROTOCOL.md requires.

Run: `python3 -m pytest -q Tests/Web/test_protocol_vectors.py`
"""
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL_JS = ROOT / "Web" / "js" / "protocol"
CIRCLE_VECTORS = json.loads((ROOT / "Tests" / "Vectors" / "circle-v1.json").read_text())
HPKE_VECTORS_FILE = ROOT / "Tests" / "Vectors" / "hpke-x25519-sha256-aes256gcm.json"

ALICE = "00000000-0000-4000-8000-000000000001"
BOB = "00000000-0000-4000-8000-000000000002"
CAROL = "00000000-0000-4000-8000-000000000003"
ALICE_FINGERPRINT = hashlib.sha256(bytes.fromhex(CIRCLE_VECTORS["bundle.identityPublic"])).hexdigest()

# Wraps a test body: `P` is index.js (each module a namespace), `B` the bytes module, `x`/`h`
# hex in and out, `refusal(f)` the ProtocolError code f throws ('accepted' if none; anything
# that is not a ProtocolError is reported as unexpected), `v` the circle-v1 vectors.
PRELUDE = """async (arg) => {
  const P = await import('/js/protocol/index.js');
  const B = P.bytes;
  const x = B.fromHex, h = B.hex;
  const v = arg.v;
  const refusal = async (f) => {
    try { await f(); return 'accepted'; }
    catch (e) { return e instanceof P.ProtocolError ? e.code : 'unexpected: ' + e; }
  };
  const flip = (bytes, index) => { const copy = bytes.slice(); copy[index] ^= 1; return copy; };
  /*BODY*/
}"""


def run(page, body, **arg):
    """Runs `body` (JavaScript, inside PRELUDE) in the page and returns what it returns."""
    return page.evaluate(PRELUDE.replace("/*BODY*/", body), {"v": CIRCLE_VECTORS, **arg})


# Every entry of circle-v1.json that the tests below check (by name). The vault's entries are
# not part of this suite: the browser has no vault module yet.
CHECKED_VECTORS = {
    "login.password", "login.serverId", "login.username", "login.serverSalt", "login.iterations", "login.pbkdf2Salt",
    "login.authKey", "login.kek", "login.origin", "login.unbound.pbkdf2Salt", "login.unbound.authKey", "login.unbound.kek", "recovery.key", "recovery.text", "recovery.authKey", "recovery.kek",
    "bundle.userId", "bundle.identitySeed", "bundle.x25519Private", "bundle.vmk", "bundle.identityPublic",
    "bundle.x25519Public", "bundle.sealed", "kxcert.message", "kxcert.Signature", "settings.bytes",
    "op.genesis.bytes", "op.genesis.hash", "op.genesis.Signature", "op.peerIdentityPublic", "op.add.bytes",
    "op.add.hash", "op.add.Signature", "chain.0.key", "chain.0.nonce", "chain.1.key", "chain.1.nonce",
    "chain.2.key", "chain.2.nonce", "chain.0.commitment", "chain.1.commitment", "chain.2.commitment", "chain.start", "chain.3.chainKey", "header.bytes", "message.text",
    "message.padded", "message.ciphertext", "message.Signature", "envelope.recipientPrivate",
    "envelope.ephemeralPrivate", "envelope.info", "envelope.plaintext", "envelope.enc", "envelope.ciphertext",
    "envelope.Signature", "safety.half.alice", "safety.half.peer", "safety.combined",
    "callSignal.callId", "callSignal.sender", "callSignal.senderDevice", "callSignal.recipient",
    "callSignal.recipientDevice", "callSignal.recipientPrivate", "callSignal.ephemeralPrivate", "callSignal.seq",
    "callSignal.info", "callSignal.plaintext", "callSignal.enc", "callSignal.ciphertext", "callSignal.wireSignature",
}


def test_every_vector_entry_is_checked():
    """A new entry in circle-v1.json (outside the vault's) needs a check here."""
    unchecked = {k for k in CIRCLE_VECTORS if k not in CHECKED_VECTORS and not k.startswith("vault.")}
    assert not unchecked, f"circle-v1.json entries no browser test checks: {sorted(unchecked)}"
    assert CHECKED_VECTORS <= set(CIRCLE_VECTORS), sorted(CHECKED_VECTORS - set(CIRCLE_VECTORS))


# MARK: HPKE (PROTOCOL 4)

def test_hpke_rfc9180_vectors(page):
    vectors = json.loads(HPKE_VECTORS_FILE.read_text())
    assert {v["mode"] for v in vectors} == {0, 1, 2, 3}
    assert all((v["kem_id"], v["kdf_id"], v["aead_id"]) == (32, 1, 2) for v in vectors)
    results = run(page, """
      const H = P.hpke;
      const out = [];
      for (const t of arg.vectors) {
        const r = {};
        const recipient = await H.deriveKeyPair(x(t.ikmR));
        const ephemeral = await H.deriveKeyPair(x(t.ikmE));
        r.skRm = h(recipient.raw); r.pkRm = h(recipient.publicKey);
        r.skEm = h(ephemeral.raw); r.pkEm = h(ephemeral.publicKey);
        // The recipient as the application holds it: imported from its private key bytes.
        const imported = await P.x25519.importPrivate(x(t.skRm));
        r.importedPkRm = h(imported.publicKey);
        let sender = null;
        if (t.ikmS) {
          sender = await H.deriveKeyPair(x(t.ikmS));
          r.skSm = h(sender.raw); r.pkSm = h(sender.publicKey);
        }
        const info = x(t.info);
        const psk = t.psk ? x(t.psk) : undefined, pskId = t.psk_id ? x(t.psk_id) : undefined;
        const pkR = x(t.pkRm), pkS = t.pkSm ? x(t.pkSm) : undefined;
        let s, ctxR;
        if (t.mode === 0) {
          s = await H.setupBaseS(pkR, info, ephemeral);
          ctxR = await H.setupBaseR(s.enc, imported, info);
        } else if (t.mode === 1) {
          s = await H.setupPSKS(pkR, info, psk, pskId, ephemeral);
          ctxR = await H.setupPSKR(s.enc, imported, info, psk, pskId);
        } else if (t.mode === 2) {
          s = await H.setupAuthS(pkR, info, sender, ephemeral);
          ctxR = await H.setupAuthR(s.enc, imported, info, pkS);
        } else {
          s = await H.setupAuthPSKS(pkR, info, psk, pskId, sender, ephemeral);
          ctxR = await H.setupAuthPSKR(s.enc, imported, info, psk, pskId, pkS);
        }
        const c = s.context;
        r.enc = h(s.enc);
        for (const [name, key] of [['shared_secret', 'sharedSecret'], ['key_schedule_context', 'keyScheduleContext'],
            ['secret', 'secret'], ['key', 'key'], ['base_nonce', 'baseNonce'], ['exporter_secret', 'exporterSecret']]) {
          r[name] = h(c[key]);
          r['recipient_' + name] = h(ctxR[key]);
        }
        r.encryptions = [];
        for (const e of t.encryptions) {
          const nonce = h(c.nonce());
          const ct = h(await c.seal(x(e.aad), x(e.pt)));
          const pt = h(await ctxR.open(x(e.aad), x(e.ct)));
          r.encryptions.push({ nonce, ct, pt });
        }
        r.exports = [];
        for (const e of t.exports) {
          r.exports.push({ sender: h(await c.export(x(e.exporter_context), e.L)),
                           recipient: h(await ctxR.export(x(e.exporter_context), e.L)) });
        }
        out.push(r);
      }
      return out;
    """, vectors=vectors)
    assert len(results) == len(vectors)
    for t, r in zip(vectors, results):
        mode = t["mode"]
        for name in ["skRm", "pkRm", "skEm", "pkEm", "enc", "shared_secret", "key_schedule_context", "secret", "key", "base_nonce", "exporter_secret"]:
            assert r[name] == t[name], f"mode {mode}: {name}"
        for name in ["shared_secret", "key_schedule_context", "secret", "key", "base_nonce", "exporter_secret"]:
            assert r["recipient_" + name] == t[name], f"mode {mode}: recipient {name}"
        assert r["importedPkRm"] == t["pkRm"], f"mode {mode}: pkRm from skRm"
        if "ikmS" in t:
            assert (r["skSm"], r["pkSm"]) == (t["skSm"], t["pkSm"]), f"mode {mode}: sender key"
        assert len(r["encryptions"]) == len(t["encryptions"]) == 8
        for index, (e, got) in enumerate(zip(t["encryptions"], r["encryptions"])):
            assert got == {"nonce": e["nonce"], "ct": e["ct"], "pt": e["pt"]}, f"mode {mode}: encryption {index}"
        assert len(r["exports"]) == len(t["exports"]) == 3
        for e, got in zip(t["exports"], r["exports"]):
            assert got == {"sender": e["exported_value"], "recipient": e["exported_value"]}, f"mode {mode}: export {e}"


def test_hpke_single_shot_and_refusals(page):
    r = run(page, """
      const H = P.hpke;
      const recipient = await P.x25519.generate();
      const info = B.utf8('info'), aad = B.utf8('aad'), pt = B.utf8('a secret');
      const { enc, ciphertext } = await H.seal(recipient.publicKey, info, aad, pt);
      const other = await P.x25519.generate();
      const ctx = await H.setupBaseR(enc, recipient, info);
      return {
        opened: B.fromUtf8(await H.open(recipient, enc, info, aad, ciphertext)),
        otherInfo: await refusal(() => H.open(recipient, enc, B.utf8('inf0'), aad, ciphertext)),
        otherAad: await refusal(() => H.open(recipient, enc, info, B.utf8('aaD'), ciphertext)),
        tampered: await refusal(() => H.open(recipient, enc, info, aad, flip(ciphertext, 0))),
        otherRecipient: await refusal(() => H.open(other, enc, info, aad, ciphertext)),
        smallOrderEnc: await refusal(() => H.open(recipient, new Uint8Array(32), info, aad, ciphertext)),
        shortEnc: await refusal(() => H.open(recipient, enc.subarray(0, 31), info, aad, ciphertext)),
        smallOrderRecipient: await refusal(() => H.seal(x('01' + '00'.repeat(31)), info, aad, pt)),
        // A failed open leaves the sequence number where it was.
        failedOpenKeepsSeq: await refusal(() => ctx.open(aad, flip(ciphertext, 3))) === 'decryption-failed' && ctx.seq === 0
          && B.fromUtf8(await ctx.open(aad, ciphertext)) === 'a secret' && ctx.seq === 1,
        pskWithoutId: await refusal(() => H.setupPSKS(recipient.publicKey, info, new Uint8Array(32), new Uint8Array(0))),
      };
    """)
    assert r == {
        "opened": "a secret", "otherInfo": "decryption-failed", "otherAad": "decryption-failed",
        "tampered": "decryption-failed", "otherRecipient": "decryption-failed", "smallOrderEnc": "weak-key",
        "shortEnc": "malformed", "smallOrderRecipient": "weak-key", "failedOpenKeepsSeq": True, "pskWithoutId": "malformed",
    }


# MARK: Login, bundle, recovery, kx-cert (PROTOCOL 2-3)

def test_login_derivation_vectors(page):
    r = run(page, """
      const A = P.account;
      const params = { origin: v['login.origin'], serverId: v['login.serverId'], username: v['login.username'], salt: x(v['login.serverSalt']),
                       password: v['login.password'], iterations: Number(v['login.iterations']) };
      const keys = await A.deriveLoginKeys(params);
      const unbound = await A.deriveLoginKeys({ ...params, origin: null });
      const elsewhere = await A.deriveLoginKeys({ ...params, origin: 'https://phish.example.org' });
      const upper = await A.deriveLoginKeys({ ...params, username: 'ALICE' });
      const nfc = await A.deriveLoginKeys({ ...params, password: 'caf\\u00e9' });
      const nfd = await A.deriveLoginKeys({ ...params, password: 'cafe\\u0301' });
      return {
        pbkdf2Salt: h(await A.pbkdf2Salt(params.origin, params.serverId, params.username, params.salt)),
        authKey: h(keys.authKey), kek: h(keys.kek),
        unboundSalt: h(await A.pbkdf2Salt(null, params.serverId, params.username, params.salt)),
        unbound: [h(unbound.authKey), h(unbound.kek)],
        elsewhereDiffers: h(elsewhere.authKey) !== h(keys.authKey) && h(elsewhere.authKey) !== h(unbound.authKey),
        upperSame: h(upper.authKey) === h(keys.authKey) && h(upper.kek) === h(keys.kek),
        nfcSame: h(nfc.authKey) === h(nfd.authKey) && h(nfc.kek) === h(nfd.kek),
        nfcDiffers: h(nfc.authKey) !== h(keys.authKey),
        shortSalt: await refusal(() => A.deriveLoginKeys({ ...params, salt: new Uint8Array(31) })),
      };
    """)
    assert r["pbkdf2Salt"] == CIRCLE_VECTORS["login.pbkdf2Salt"]
    assert r["authKey"] == CIRCLE_VECTORS["login.authKey"]
    assert r["kek"] == CIRCLE_VECTORS["login.kek"]
    assert r["unboundSalt"] == CIRCLE_VECTORS["login.unbound.pbkdf2Salt"]
    assert r["unbound"] == [CIRCLE_VECTORS["login.unbound.authKey"], CIRCLE_VECTORS["login.unbound.kek"]]
    assert r["elsewhereDiffers"] is True
    assert r["upperSame"] is True
    assert r["nfcSame"] is True and r["nfcDiffers"] is True
    assert r["shortSalt"] == "malformed"


def test_kdf_below_floor_or_unknown_is_refused(page):
    r = run(page, """
      const A = P.account;
      const derive = (iterations, name) => A.deriveLoginKeys({ serverId: v['login.serverId'], username: 'alice',
        salt: x(v['login.serverSalt']), password: 'pw', iterations, name });
      return {
        floor: await refusal(() => A.checkKdf({ name: 'PBKDF2-SHA256', iterations: 600000 })),
        ceiling: await refusal(() => A.checkKdf({ name: 'PBKDF2-SHA256', iterations: 10000000 })),
        below: await refusal(() => A.checkKdf({ name: 'PBKDF2-SHA256', iterations: 599999 })),
        above: await refusal(() => A.checkKdf({ name: 'PBKDF2-SHA256', iterations: 10000001 })),
        text: await refusal(() => A.checkKdf({ name: 'PBKDF2-SHA256', iterations: '600000' })),
        fraction: await refusal(() => A.checkKdf({ name: 'PBKDF2-SHA256', iterations: 600000.5 })),
        sha1: await refusal(() => A.checkKdf({ name: 'PBKDF2-SHA1', iterations: 600000 })),
        argon: await refusal(() => A.checkKdf({ name: 'argon2id', iterations: 600000 })),
        missing: await refusal(() => A.checkKdf(undefined)),
        deriveBelow: await refusal(() => derive(100000)),
        deriveOtherName: await refusal(() => derive(600000, 'PBKDF2-SHA512')),
      };
    """)
    assert r == {
        "floor": "accepted", "ceiling": "accepted", "below": "refused-kdf", "above": "refused-kdf", "text": "refused-kdf",
        "fraction": "refused-kdf", "sha1": "refused-kdf", "argon": "refused-kdf", "missing": "refused-kdf",
        "deriveBelow": "refused-kdf", "deriveOtherName": "refused-kdf",
    }


def test_bundle_vectors_unlock_and_pins(page):
    r = run(page, """
      const A = P.account;
      const userId = v['bundle.userId'];
      const keys = { identitySeed: x(v['bundle.identitySeed']), x25519Private: x(v['bundle.x25519Private']), vmk: x(v['bundle.vmk']) };
      const kek = x(v['login.kek']);
      const sealed = await A.sealBundle(kek, keys, userId, x('04'.repeat(12)));
      const opened = await A.openBundle(kek, x(v['bundle.sealed']), userId);
      const published = { userId, identityKey: x(v['bundle.identityPublic']), x25519Key: x(v['bundle.x25519Public']) };
      const unlocked = await A.unlockBundle(opened, published);
      const message = B.utf8('signed by the unlocked key');
      const signature = await P.ed25519.sign(unlocked.identity.privateKey, message);
      // The pins key is HKDF(vmk, "circle/v1/pins"): the same blob as under the raw derived key.
      const rawPinsKey = await P.primitives.hkdf(keys.vmk, B.utf8('circle/v1/pins'), 32);
      const pins = B.utf8('{"pins":{}}');
      const blob = await P.pins.sealPins(unlocked.pinsKey, pins, userId, 7, x('0c'.repeat(12)));
      const blobRaw = await P.pins.sealPins(rawPinsKey, pins, userId, 7, x('0c'.repeat(12)));
      const peer = await P.ed25519.importSeed(x('09'.repeat(32)));
      const otherX = await P.x25519.generate();
      const wrongVersion = opened.slice(); wrongVersion[0] = 2;
      return {
        sealed: h(sealed),
        opened: h(opened),
        encoded: h(A.encodeBundle(keys)),
        identityPublic: h(unlocked.identity.publicKey),
        x25519Public: h(unlocked.x25519.publicKey),
        extractable: [unlocked.identity.privateKey.extractable, unlocked.x25519.privateKey.extractable, unlocked.pinsKey.extractable],
        signs: await P.ed25519.verify(published.identityKey, signature, message),
        pinsSame: h(blob) === h(blobRaw),
        pinsOpen: B.fromUtf8(await P.pins.openPins(unlocked.pinsKey, blob, userId, 7)),
        pinsOtherVersion: await refusal(() => P.pins.openPins(unlocked.pinsKey, blob, userId, 8)),
        pinsOtherUser: await refusal(() => P.pins.openPins(unlocked.pinsKey, blob, '00000000-0000-4000-8000-000000000002', 7)),
        openOtherUser: await refusal(() => A.openBundle(kek, x(v['bundle.sealed']), '00000000-0000-4000-8000-000000000002')),
        openTampered: await refusal(() => A.openBundle(kek, flip(x(v['bundle.sealed']), 20), userId)),
        openOtherKek: await refusal(() => A.openBundle(flip(kek, 0), x(v['bundle.sealed']), userId)),
        unlockOtherIdentity: await refusal(() => A.unlockBundle(opened, { ...published, identityKey: peer.publicKey })),
        unlockOtherX25519: await refusal(() => A.unlockBundle(opened, { ...published, x25519Key: otherX.publicKey })),
        unlockWrongVersion: await refusal(() => A.unlockBundle(wrongVersion, published)),
        unlockShort: await refusal(() => A.unlockBundle(opened.subarray(0, 96), published)),
        bundleLeftIntact: h(opened) === h(A.encodeBundle(keys)),
        fresh: (() => { const k = A.generateAccountKeys(); return [k.identitySeed.length, k.x25519Private.length, k.vmk.length]; })(),
      };
    """)
    v = CIRCLE_VECTORS
    assert r["sealed"] == v["bundle.sealed"]
    expected_plain = "01" + v["bundle.identitySeed"] + v["bundle.x25519Private"] + v["bundle.vmk"]
    assert r["opened"] == expected_plain and r["encoded"] == expected_plain
    assert r["identityPublic"] == v["bundle.identityPublic"]
    assert r["x25519Public"] == v["bundle.x25519Public"]
    assert r["extractable"] == [False, False, False]
    assert r["signs"] is True
    assert r["pinsSame"] is True and r["pinsOpen"] == '{"pins":{}}'
    assert r["pinsOtherVersion"] == r["pinsOtherUser"] == "decryption-failed"
    assert r["openOtherUser"] == r["openTampered"] == r["openOtherKek"] == "decryption-failed"
    assert r["unlockOtherIdentity"] == r["unlockOtherX25519"] == "weak-key"
    assert r["unlockWrongVersion"] == r["unlockShort"] == "malformed"
    assert r["bundleLeftIntact"] is True
    assert r["fresh"] == [32, 32, 32]


def test_recovery_vectors(page):
    r = run(page, """
      const A = P.account;
      const key = x(v['recovery.key']);
      const derived = await A.deriveRecoveryKeys(key);
      const userId = v['bundle.userId'];
      const bundle = A.encodeBundle({ identitySeed: x(v['bundle.identitySeed']), x25519Private: x(v['bundle.x25519Private']), vmk: x(v['bundle.vmk']) });
      const sealed = await A.sealRecoveryBundle(derived.kek, bundle, userId);
      const fresh = A.generateRecoveryKey();
      return {
        text: A.formatRecoveryKey(key),
        parsed: h(A.parseRecoveryKey(v['recovery.text'])),
        tolerant: h(A.parseRecoveryKey(' 1A2B 3c4d-5E6F 7a8b\\t9C0D-eF01 2345 6789 ')),
        freshRoundTrip: h(A.parseRecoveryKey(A.formatRecoveryKey(fresh))) === h(fresh) && fresh.length === 16,
        authKey: h(derived.authKey), kek: h(derived.kek),
        opened: h(await A.openRecoveryBundle(derived.kek, sealed, userId)),
        notAMainBundle: await refusal(() => A.openBundle(derived.kek, sealed, userId)),
        otherUser: await refusal(() => A.openRecoveryBundle(derived.kek, sealed, '00000000-0000-4000-8000-000000000002')),
        short: await refusal(() => A.parseRecoveryKey('2222-2222-2222-2222-2222-2222-2222-222')),
        long: await refusal(() => A.parseRecoveryKey('2222-2222-2222-2222-2222-2222-2222-22222')),
        junk: await refusal(() => A.parseRecoveryKey('2222-2222-2222-2222-2222-2222-2222-222g')),
        empty: await refusal(() => A.parseRecoveryKey('')),
      };
    """)
    v = CIRCLE_VECTORS
    assert r["text"] == v["recovery.text"]
    assert r["parsed"] == v["recovery.key"]
    assert r["tolerant"] == "1a2b3c4d5e6f7a8b9c0def0123456789"
    assert r["freshRoundTrip"] is True
    assert r["authKey"] == v["recovery.authKey"] and r["kek"] == v["recovery.kek"]
    assert r["opened"] == "01" + v["bundle.identitySeed"] + v["bundle.x25519Private"] + v["bundle.vmk"]
    assert r["notAMainBundle"] == r["otherUser"] == "decryption-failed"
    assert r["short"] == r["long"] == r["junk"] == r["empty"] == "malformed"


def test_kx_cert_vectors(page):
    r = run(page, """
      const A = P.account;
      const userId = v['bundle.userId'];
      const identityPub = x(v['bundle.identityPublic']), xPub = x(v['bundle.x25519Public']);
      const cert = x(v['kxcert.Signature']);
      const identity = await P.ed25519.importSeed(x(v['bundle.identitySeed']));
      const mine = await A.makeKxCert(identity.privateKey, userId, xPub);
      const other = await P.x25519.generate();
      return {
        message: h(A.kxCertMessage(userId, xPub)),
        vector: await A.verifyKxCert(identityPub, userId, xPub, cert),
        mine: await A.verifyKxCert(identityPub, userId, xPub, mine),
        otherUser: await A.verifyKxCert(identityPub, '00000000-0000-4000-8000-000000000002', xPub, cert),
        otherKey: await A.verifyKxCert(identityPub, userId, other.publicKey, cert),
        otherIdentity: await A.verifyKxCert(x(v['op.peerIdentityPublic']), userId, xPub, cert),
        tampered: await A.verifyKxCert(identityPub, userId, xPub, flip(cert, 40)),
      };
    """)
    assert r == {
        "message": CIRCLE_VECTORS["kxcert.message"], "vector": True, "mine": True,
        "otherUser": False, "otherKey": False, "otherIdentity": False, "tampered": False,
    }


# MARK: Membership (PROTOCOL 5)

def test_membership_vectors(page):
    r = run(page, """
      const M = P.membership;
      const alice = await P.ed25519.importSeed(x(v['bundle.identitySeed']));
      const peerPub = x(v['op.peerIdentityPublic']);
      const settings = { kind: 'group', disappearSeconds: 3600, readReceipts: true };
      const genesis = await M.makeGenesis({ creator: v['bundle.userId'], creatorIdentity: alice.publicKey, settings,
                                            createdAt: 1700000000000, nonce: x('08'.repeat(16)) });
      const genesisBytes = M.encodeOp(genesis);
      const signedGenesis = { op: x(v['op.genesis.bytes']), signature: x(v['op.genesis.Signature']) };
      const keys = { [v['bundle.userId']]: alice.publicKey, '00000000-0000-4000-8000-000000000002': peerPub };
      const lookup = (userId) => keys[userId];
      const chain0 = await M.MembershipChain.replay([signedGenesis], lookup);
      const add = await M.makeAdd(chain0, { actor: v['bundle.userId'], target: '00000000-0000-4000-8000-000000000002',
                                            targetIdentity: peerPub, role: 'member', createdAt: 1700000000001 });
      const addBytes = M.encodeOp(add);
      const signedAdd = { op: x(v['op.add.bytes']), signature: x(v['op.add.Signature']) };
      const chain = await M.MembershipChain.replay([signedGenesis, signedAdd], lookup);
      const mySignedAdd = await M.signOp(alice.privateKey, add);
      const decoded = M.decodeOp(x(v['op.genesis.bytes']));
      return {
        settings: h(M.encodeSettings(settings)),
        settingsDecoded: M.decodeSettings(x(v['settings.bytes'])),
        retention: h(M.encodeSettings({ ...settings, retentionDays: 30 })),
        retentionDecoded: M.decodeSettings(x('0201' + '00000e10' + '01' + '001e')),
        retentionRefused: ['0201000000000100' + '00', '0201000000000100', '02010000000001' + '0e43', '0301000000000100']
          .map((bytes) => { try { M.decodeSettings(x(bytes)); return 'accepted'; } catch (error) { return error.message; } }),
        retentionTooLong: (() => { try { M.encodeSettings({ kind: 'group', retentionDays: 3651 }); return 'accepted'; } catch (error) { return error.message; } })(),
        genesisBytes: h(genesisBytes),
        genesisHash: h(await M.opHash(x(v['op.genesis.bytes']))),
        genesisSignature: await M.verifyOpSignature(alice.publicKey, x(v['op.genesis.bytes']), x(v['op.genesis.Signature'])),
        decodedGenesis: { action: decoded.action, n: decoded.n, actor: decoded.actor, target: decoded.target, role: decoded.role,
                          createdAt: decoded.createdAt, nonce: h(decoded.nonce), fingerprint: h(decoded.targetFingerprint) },
        genesisRoundTrip: h(M.encodeOp(decoded)),
        addBytes: h(addBytes),
        addRoundTrip: h(M.encodeOp(M.decodeOp(x(v['op.add.bytes'])))),
        addHash: h(await M.opHash(x(v['op.add.bytes']))),
        addSignature: await M.verifyOpSignature(alice.publicKey, x(v['op.add.bytes']), x(v['op.add.Signature'])),
        addSignatureWrongKey: await M.verifyOpSignature(peerPub, x(v['op.add.bytes']), x(v['op.add.Signature'])),
        mySignature: await M.verifyOpSignature(alice.publicKey, mySignedAdd.op, mySignedAdd.signature),
        convId: h(chain.convId), epoch: h(chain.epoch), head: chain.head, kind: chain.kind,
        members: [...chain.members].map(([id, m]) => [id, m.role, h(m.fingerprint)]),
        peerAtGenesis: chain.memberAt('00000000-0000-4000-8000-000000000002', x(v['op.genesis.hash'])),
        peerAtAdd: chain.memberAt('00000000-0000-4000-8000-000000000002', x(v['op.add.hash'])),
        aliceAtGenesis: chain.wasMember(v['bundle.userId'], x(v['op.genesis.hash'])),
        unknownEpoch: chain.memberAt(v['bundle.userId'], new Uint8Array(32)),
        containsEpochs: [chain.containsEpoch(x(v['op.genesis.hash'])), chain.containsEpoch(x(v['op.add.hash'])), chain.containsEpoch(new Uint8Array(32))],
        isMember: [chain.isMember(v['bundle.userId']), chain.isMember('00000000-0000-4000-8000-000000000002'), chain.isMember('00000000-0000-4000-8000-000000000003')],
      };
    """)
    v = CIRCLE_VECTORS
    assert r["settings"] == v["settings.bytes"]
    assert r["settingsDecoded"] == {"kind": "group", "disappearSeconds": 3600, "readReceipts": True, "retentionDays": 0}
    # A retention is version 2 (only then: one encoding per value), the same bytes CircleKit writes.
    assert r["retention"] == "0201" + "00000e10" + "01" + "001e"
    assert r["retentionDecoded"] == {"kind": "group", "disappearSeconds": 3600, "readReceipts": True, "retentionDays": 30}
    refused = r["retentionRefused"]  # retention 0 in version 2, a cut u16, 3651 days, version 3
    assert ["retention" in refused[0], "truncated" in refused[1], "retention" in refused[2], "version" in refused[3]] == [True] * 4, refused
    assert "retention" in r["retentionTooLong"]
    assert r["genesisBytes"] == v["op.genesis.bytes"] == r["genesisRoundTrip"]
    assert r["genesisHash"] == v["op.genesis.hash"]
    assert r["genesisSignature"] is True
    assert r["decodedGenesis"] == {"action": "genesis", "n": 0, "actor": ALICE, "target": ALICE, "role": "admin",
                                   "createdAt": 1700000000000, "nonce": "08" * 16, "fingerprint": ALICE_FINGERPRINT}
    assert r["addBytes"] == v["op.add.bytes"] == r["addRoundTrip"]
    assert r["addHash"] == v["op.add.hash"]
    assert r["addSignature"] is True and r["addSignatureWrongKey"] is False and r["mySignature"] is True
    assert r["convId"] == v["op.genesis.hash"] and r["epoch"] == v["op.add.hash"] and r["head"] == 1 and r["kind"] == "group"
    members = {m[0]: m[1:] for m in r["members"]}
    assert members.keys() == {ALICE, BOB}
    assert members[ALICE] == ["admin", ALICE_FINGERPRINT]
    assert members[BOB] == ["member", hashlib.sha256(bytes.fromhex(v["op.peerIdentityPublic"])).hexdigest()]
    assert r["peerAtGenesis"] is False and r["peerAtAdd"] is True and r["aliceAtGenesis"] is True and r["unknownEpoch"] is False
    assert r["containsEpochs"] == [True, True, False]
    assert r["isMember"] == [True, True, False]


# The identities of the chain tests: alice (seed 01, the vectors' user), bob (seed 09, the
# vectors' peer) and carol (seed 0c), with a helper that signs ops and replays chains.
CHAIN_SETUP = """
  const M = P.membership;
  const ALICE = '00000000-0000-4000-8000-000000000001', BOB = '00000000-0000-4000-8000-000000000002', CAROL = '00000000-0000-4000-8000-000000000003';
  const who = {
    [ALICE]: await P.ed25519.importSeed(x('01'.repeat(32))),
    [BOB]: await P.ed25519.importSeed(x('09'.repeat(32))),
    [CAROL]: await P.ed25519.importSeed(x('0c'.repeat(32))),
  };
  const lookup = (userId) => who[userId].publicKey;
  const signed = (actor, op) => M.signOp(who[actor].privateKey, op);
  const start = async (kind) => {
    const genesis = await M.makeGenesis({ creator: ALICE, creatorIdentity: who[ALICE].publicKey, settings: { kind }, createdAt: 1 });
    return M.MembershipChain.replay([await signed(ALICE, genesis)], lookup);
  };
  const add = async (chain, actor, target, role, createdAt = 2) =>
    signed(actor, await M.makeAdd(chain, { actor, target, targetIdentity: who[target].publicKey, role, createdAt }));
"""


def test_membership_chain_refuses_an_add_by_a_non_admin(page):
    r = run(page, CHAIN_SETUP + """
      const chain = await start('group');
      await chain.append(await add(chain, ALICE, BOB, 'member'), lookup(ALICE));
      const byMember = await add(chain, BOB, CAROL, 'member');
      const refused = await refusal(() => chain.append(byMember, lookup(BOB)));
      const afterRefusal = { head: chain.head, carol: chain.isMember(CAROL) };
      // The same op replayed from the genesis is refused too.
      const replayed = await refusal(() => M.MembershipChain.replay([...chain.ops, byMember], lookup));
      // Once bob is an admin, his add goes through.
      await chain.append(await signed(ALICE, await M.makeRole(chain, { actor: ALICE, target: BOB, role: 'admin',
                                                                      targetIdentity: who[BOB].publicKey, createdAt: 3 })), lookup(ALICE));
      const byAdmin = await add(chain, BOB, CAROL, 'member', 4);
      await chain.append(byAdmin, lookup(BOB));
      const byNonMember = await refusal(async () => {
        const c = await start('group');
        await c.append(await add(c, BOB, CAROL, 'member'), lookup(BOB));
      });
      return { refused, afterRefusal, replayed, carolAfterAdminAdd: chain.role(CAROL), head: chain.head, byNonMember };
    """)
    assert r["refused"] == "refused"
    assert r["afterRefusal"] == {"head": 1, "carol": False}
    assert r["replayed"] == "refused"
    assert r["carolAfterAdminAdd"] == "member" and r["head"] == 3
    assert r["byNonMember"] == "refused"


def test_membership_chain_direct_conversation_takes_one_add(page):
    r = run(page, CHAIN_SETUP + """
      const asMember = await (async () => { const c = await start('direct'); return refusal(async () => c.append(await add(c, ALICE, BOB, 'member'), lookup(ALICE))); })();
      const chain = await start('direct');
      await chain.append(await add(chain, ALICE, BOB, 'admin'), lookup(ALICE));
      const second = await refusal(async () => chain.append(await add(chain, ALICE, CAROL, 'admin', 3), lookup(ALICE)));
      const secondByPeer = await refusal(async () => chain.append(await add(chain, BOB, CAROL, 'admin', 3), lookup(BOB)));
      const remove = await refusal(async () => chain.append(await signed(ALICE, await M.makeRemove(chain,
        { actor: ALICE, target: BOB, targetIdentity: who[BOB].publicKey, createdAt: 3 })), lookup(ALICE)));
      const role = await refusal(async () => chain.append(await signed(ALICE, await M.makeRole(chain,
        { actor: ALICE, target: BOB, role: 'member', targetIdentity: who[BOB].publicKey, createdAt: 3 })), lookup(ALICE)));
      const toGroup = await refusal(async () => chain.append(await signed(ALICE, M.makeSettings(chain,
        { actor: ALICE, settings: { kind: 'group' }, createdAt: 3 })), lookup(ALICE)));
      return { asMember, second, secondByPeer, remove, role, toGroup, head: chain.head, members: [...chain.members.keys()].sort() };
    """)
    assert r == {
        "asMember": "refused", "second": "refused", "secondByPeer": "refused", "remove": "refused", "role": "refused",
        "toGroup": "refused", "head": 1, "members": sorted([ALICE, BOB]),
    }


def test_membership_chain_fork_and_signature_alarms(page):
    r = run(page, CHAIN_SETUP + """
      const chain = await start('group');
      const op1 = await add(chain, ALICE, BOB, 'member', 2);
      await chain.append(op1, lookup(ALICE));
      const held = [...chain.ops];
      // The server lists the same ops: nothing changes.
      await chain.extend(held, lookup);
      const sameHead = chain.head;
      // A rewritten op 1 (validly signed by alice, other timestamp): the fork alarm.
      const start2 = await M.MembershipChain.replay([held[0]], lookup);
      const rewritten = await add(start2, ALICE, BOB, 'admin', 99);
      const fork = await refusal(() => chain.extend([held[0], rewritten], lookup));
      // An op 2 built on the rewritten op 1: it does not follow this device's op 1.
      await start2.append(rewritten, lookup(ALICE));
      const onOtherHistory = await add(start2, ALICE, CAROL, 'member', 100);
      const forkNext = await refusal(() => chain.extend([onOtherHistory], lookup));
      // An op signed by someone else than its actor, and an actor key other than the recorded one.
      const forged = await signed(BOB, await M.makeAdd(chain, { actor: ALICE, target: CAROL, targetIdentity: who[CAROL].publicKey, role: 'member', createdAt: 5 }));
      const badSignature = await refusal(() => chain.append(forged, lookup(ALICE)));
      const otherKey = await refusal(async () => chain.append(await add(chain, ALICE, CAROL, 'member', 6), lookup(CAROL)));
      const genesisOtherKey = await refusal(() => M.MembershipChain.replay([held[0]], () => who[BOB].publicKey));
      const noKey = await refusal(async () => chain.append(await add(chain, ALICE, CAROL, 'member', 8), undefined));
      // Ops that are not on top of the head, or of another conversation.
      const stale = await refusal(() => chain.append(op1, lookup(ALICE)));
      const otherConv = await refusal(async () => {
        const other = await start('group');
        await chain.append(await add(other, ALICE, CAROL, 'member', 7), lookup(ALICE));
      });
      return { sameHead, fork, forkNext, badSignature, otherKey, genesisOtherKey, noKey, stale, otherConv,
               head: chain.head, epoch: h(chain.epoch), op1Hash: h(await M.opHash(op1.op)) };
    """)
    assert r["sameHead"] == 1
    assert r["fork"] == "fork" and r["forkNext"] == "fork"
    assert r["badSignature"] == "bad-signature"
    assert r["otherKey"] == r["genesisOtherKey"] == r["noKey"] == "refused"
    assert r["stale"] == "refused" and r["otherConv"] == "refused"
    assert r["head"] == 1 and r["epoch"] == r["op1Hash"]


def test_membership_chain_roles_leave_and_shapes(page):
    r = run(page, CHAIN_SETUP + """
      const chain = await start('group');
      await chain.append(await add(chain, ALICE, BOB, 'member'), lookup(ALICE));
      const epochWithAlice = chain.epoch;
      const lastAdmin = await refusal(async () => chain.append(await signed(ALICE, M.makeLeave(chain, { actor: ALICE, createdAt: 3 })), lookup(ALICE)));
      const sameRole = await refusal(async () => chain.append(await signed(ALICE, await M.makeRole(chain,
        { actor: ALICE, target: BOB, role: 'member', targetIdentity: who[BOB].publicKey, createdAt: 3 })), lookup(ALICE)));
      const removeWrongKey = await refusal(async () => chain.append(await signed(ALICE, await M.makeRemove(chain,
        { actor: ALICE, target: BOB, targetIdentity: who[CAROL].publicKey, createdAt: 3 })), lookup(ALICE)));
      const kindChange = await refusal(async () => chain.append(await signed(ALICE, M.makeSettings(chain,
        { actor: ALICE, settings: { kind: 'direct' }, createdAt: 3 })), lookup(ALICE)));
      await chain.append(await signed(ALICE, M.makeSettings(chain, { actor: ALICE, settings: { kind: 'group', disappearSeconds: 60, readReceipts: false }, createdAt: 3 })), lookup(ALICE));
      await chain.append(await signed(ALICE, await M.makeRole(chain, { actor: ALICE, target: BOB, role: 'admin', targetIdentity: who[BOB].publicKey, createdAt: 4 })), lookup(ALICE));
      await chain.append(await signed(ALICE, M.makeLeave(chain, { actor: ALICE, createdAt: 5 })), lookup(ALICE));
      const afterLeave = { alice: chain.isMember(ALICE), aliceBefore: chain.memberAt(ALICE, epochWithAlice), aliceNow: chain.memberAt(ALICE, chain.epoch),
                           bob: chain.role(BOB), settings: chain.settings, head: chain.head };
      const leftActor = await refusal(async () => chain.append(await add(chain, ALICE, CAROL, 'member', 6), lookup(ALICE)));
      // Shapes: a genesis whose n is not 0, trailing bytes, an add without a fingerprint, a timer over a year.
      const genesisBytes = x(v['op.genesis.bytes']);
      const n1 = genesisBytes.slice(); n1[6] = 1;
      const shapes = {
        genesisN1: await refusal(() => M.decodeOp(n1)),
        trailing: await refusal(() => M.decodeOp(B.concat(genesisBytes, new Uint8Array(1)))),
        truncated: await refusal(() => M.decodeOp(genesisBytes.subarray(0, genesisBytes.length - 1))),
        addWithoutFingerprint: await refusal(() => M.encodeOp({ ...M.decodeOp(x(v['op.add.bytes'])), targetFingerprint: new Uint8Array(0) })),
        longTimer: await refusal(() => M.decodeSettings(x('0101' + '01e13381' + '01'))),
        receiptsTwo: await refusal(() => M.decodeSettings(x('010100000e1002'))),
        badActor: await refusal(() => M.encodeOp({ ...M.decodeOp(x(v['op.add.bytes'])), actor: 'AAAAAAAA-0000-4000-8000-000000000001' })),
      };
      return { lastAdmin, sameRole, removeWrongKey, kindChange, afterLeave, leftActor, shapes };
    """)
    assert r["lastAdmin"] == r["sameRole"] == r["removeWrongKey"] == r["kindChange"] == "refused"
    assert r["afterLeave"] == {"alice": False, "aliceBefore": True, "aliceNow": False, "bob": "admin",
                               "settings": {"kind": "group", "disappearSeconds": 60, "readReceipts": False, "retentionDays": 0}, "head": 4}
    assert r["leftActor"] == "refused"
    assert r["shapes"] == {k: "malformed" for k in r["shapes"]} and len(r["shapes"]) == 7


# MARK: Messages (PROTOCOL 6)

def test_chain_header_padding_and_message_vectors(page):
    r = run(page, """
      const G = P.message;
      const start = x(v['chain.start']);
      const chain = new G.SenderChain(start);
      const steps = [];
      for (let i = 0; i < 3; i++) {
        const s = await chain.next();
        steps.push({ index: s.index, key: h(s.key), nonce: h(s.nonce), commitment: h(s.commitment) });
      }
      const onDemand = [];
      for (let i = 0; i < 3; i++) {
        const k = await G.keyAndNonce(await G.messageKeyAt(start, 0, i));
        onDemand.push({ key: h(k.key), nonce: h(k.nonce), commitment: h(k.commitment) });
      }
      const fromOne = await G.keyAndNonce(await G.messageKeyAt((await G.chainStep(start)).nextChainKey, 1, 2));
      const header = { convId: x(v['op.genesis.hash']), epoch: x(v['op.add.hash']), sender: v['bundle.userId'], deviceId: x('0a'.repeat(16)),
                       generation: 0, chainIndex: 0, messageId: x('0b'.repeat(16)), sentAt: 1700000000002, expiresAt: 1700003600002,
                       kind: 'message', refersTo: new Uint8Array(0) };
      const headerBytes = G.encodeHeader(header);
      const decoded = G.decodeHeader(x(v['header.bytes']));
      const padded = G.pad(G.CONTENT_TYPES.text, B.utf8(v['message.text']));
      const identity = await P.ed25519.importSeed(x(v['bundle.identitySeed']));
      const first = await G.keyAndNonce(await G.messageKeyAt(start, 0, 0));
      const sealed = await G.sealMessage(header, padded, first, identity.privateKey);
      const vectorSealed = { header: x(v['header.bytes']), ciphertext: x(v['message.ciphertext']), signature: x(v['message.Signature']) };
      const opened = await G.openMessage(vectorSealed, x(v['bundle.identityPublic']), { chainKey: start, startIndex: 0 }, new G.ReplayWindow());
      const openedMine = await G.openMessage(sealed, identity.publicKey, { chainKey: start, startIndex: 0 });
      const unpadded = G.unpad(x(v['message.padded']));
      return {
        steps, onDemand, fromOne: { key: h(fromOne.key), nonce: h(fromOne.nonce), commitment: h(fromOne.commitment) },
        chain3: h(chain.chainKey), index: chain.index,
        headerBytes: h(headerBytes),
        headerRoundTrip: h(G.encodeHeader(decoded)),
        decoded: { sender: decoded.sender, chainIndex: decoded.chainIndex, sentAt: decoded.sentAt, expiresAt: decoded.expiresAt, kind: decoded.kind },
        headerHash: h(await G.headerHash(x(v['header.bytes']))),
        padded: h(padded),
        unpadded: [unpadded.contentType, B.fromUtf8(unpadded.content)],
        ciphertext: h(sealed.ciphertext), sealedHeader: h(sealed.header),
        vectorSignature: await G.verifyMessage(x(v['bundle.identityPublic']), vectorSealed),
        opened: [opened.contentType, B.fromUtf8(opened.content), h(opened.padded), opened.header.chainIndex],
        openedMine: B.fromUtf8(openedMine.content),
      };
    """)
    v = CIRCLE_VECTORS
    for i in range(3):
        expected = {"key": v[f"chain.{i}.key"], "nonce": v[f"chain.{i}.nonce"], "commitment": v[f"chain.{i}.commitment"]}
        assert r["steps"][i] == {"index": i, **expected}, f"chain step {i}"
        assert r["onDemand"][i] == expected, f"message key {i} from the start"
    assert r["fromOne"] == {"key": v["chain.2.key"], "nonce": v["chain.2.nonce"], "commitment": v["chain.2.commitment"]}
    assert r["chain3"] == v["chain.3.chainKey"] and r["index"] == 3
    assert r["headerBytes"] == v["header.bytes"] == r["headerRoundTrip"] == r["sealedHeader"]
    assert r["decoded"] == {"sender": ALICE, "chainIndex": 0, "sentAt": 1700000000002, "expiresAt": 1700003600002, "kind": "message"}
    assert r["headerHash"] == hashlib.sha256(bytes.fromhex(v["header.bytes"])).hexdigest()
    assert r["padded"] == v["message.padded"]
    assert r["unpadded"] == [1, v["message.text"]]
    assert r["ciphertext"] == v["message.ciphertext"]
    assert r["vectorSignature"] is True
    assert r["opened"] == [1, v["message.text"], v["message.padded"], 0]
    assert r["openedMine"] == v["message.text"]


SALAMANDER_FILE = ROOT / "Tests" / "Vectors" / "salamander.json"


def test_the_salamander_file_is_what_its_generator_writes():
    """Tests/Vectors/salamander.py builds it independently (Python's AES and GF(2^128))."""
    done = subprocess.run([sys.executable, str(ROOT / "Tests" / "Vectors" / "salamander.py"), "--check"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_salamander_opens_only_under_the_committed_key(page):
    """One AES-GCM ciphertext that opens under two chain keys (PROTOCOL 6, key commitment): the
    AEAD alone opens under both, the signed message under A only; B's holder is refused."""
    r = run(page, """
      const G = P.message;
      const s = arg.s;
      const header = x(s.header);
      const aead = {};
      for (const side of ['A', 'B']) {
        aead[side] = h(await P.primitives.aesGcmDecrypt(x(s['key' + side]), x(s['nonce' + side]), x(s.aead), header));
      }
      const sealed = { header, ciphertext: x(s.ciphertext), signature: x(s.signature) };
      const openA = await G.openMessage(sealed, x(s.identityPublic), { chainKey: x(s.chainKeyA), startIndex: 0 });
      let refusedB = null;
      try {
        await G.openMessage(sealed, x(s.identityPublic), { chainKey: x(s.chainKeyB), startIndex: 0 });
      } catch (error) {
        refusedB = [error.code, error.message];
      }
      return { aead, openA: h(openA.padded), refusedB };
    """, s=json.loads(SALAMANDER_FILE.read_text()))
    salamander = json.loads(SALAMANDER_FILE.read_text())
    assert r["aead"] == {"A": salamander["paddedA"], "B": salamander["paddedB"]}
    assert r["openA"] == salamander["paddedA"]
    assert r["refusedB"] is not None and r["refusedB"][0] == "refused" and "key commitment" in r["refusedB"][1], r["refusedB"]


def test_tampered_messages_fail(page):
    r = run(page, """
      const G = P.message;
      const start = x(v['chain.start']);
      const chain = { chainKey: start, startIndex: 0 };
      const alice = await P.ed25519.importSeed(x(v['bundle.identitySeed']));
      const sealed = { header: x(v['header.bytes']), ciphertext: x(v['message.ciphertext']), signature: x(v['message.Signature']) };
      const pub = alice.publicKey;
      const open = (s, key = pub, c = chain, replay) => G.openMessage(s, key, c, replay);
      // Re-signed by the sender: the signature holds, so the AEAD must catch the change.
      const resign = async (header, ciphertext) => ({ header, ciphertext,
        signature: await P.ed25519.sign(alice.privateKey, B.concat(B.utf8('circle/v1/msg-sig'), header, ciphertext)) });
      const otherSent = G.encodeHeader({ ...G.decodeHeader(sealed.header), sentAt: 1700000000003 });
      const window = new G.ReplayWindow(); window.add(0);
      const sig = sealed.signature;
      let s = 0n; for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(sig[i]);
      s += 2n ** 252n + 27742317777372353535851937790883648493n;
      const malleable = sig.slice(); for (let i = 32; i < 64; i++) { malleable[i] = Number(s & 0xffn); s >>= 8n; }
      return {
        ok: B.fromUtf8((await open(sealed)).content),
        header: await refusal(() => open({ ...sealed, header: flip(sealed.header, 40) })),
        ciphertext: await refusal(() => open({ ...sealed, ciphertext: flip(sealed.ciphertext, 5) })),
        tag: await refusal(() => open({ ...sealed, ciphertext: flip(sealed.ciphertext, sealed.ciphertext.length - 1) })),
        signature: await refusal(() => open({ ...sealed, signature: flip(sealed.signature, 10) })),
        malleableS: await refusal(() => open({ ...sealed, signature: malleable })),
        otherSender: await refusal(() => open(sealed, x(v['op.peerIdentityPublic']))),
        resignedCiphertext: await refusal(async () => open(await resign(sealed.header, flip(sealed.ciphertext, 5)))),
        resignedHeader: await refusal(async () => open(await resign(otherSent, sealed.ciphertext))),
        resignedTag: await refusal(async () => open(await resign(sealed.header, flip(sealed.ciphertext, sealed.ciphertext.length - 33)))),
        resignedCommitment: await refusal(async () => open(await resign(sealed.header, flip(sealed.ciphertext, sealed.ciphertext.length - 1)))),
        otherChain: await refusal(() => open(sealed, pub, { chainKey: flip(start, 0), startIndex: 0 })),
        belowStart: await refusal(() => open(sealed, pub, { chainKey: start, startIndex: 1 })),
        replayed: await refusal(() => open(sealed, pub, chain, window)),
        garbageHeader: await refusal(() => open({ ...sealed, header: sealed.header.subarray(0, 40) })),
        indexBound: await refusal(() => G.messageKeyAt(start, 0, 1000)),
      };
    """)
    assert r == {
        "ok": CIRCLE_VECTORS["message.text"], "header": "bad-signature", "ciphertext": "bad-signature", "tag": "bad-signature",
        "signature": "bad-signature", "malleableS": "bad-signature", "otherSender": "bad-signature",
        "resignedCiphertext": "decryption-failed", "resignedHeader": "decryption-failed", "resignedTag": "decryption-failed",
        "resignedCommitment": "refused", "otherChain": "refused",
        "belowStart": "malformed", "replayed": "malformed", "garbageHeader": "malformed", "indexBound": "malformed",
    }


def test_padding_buckets_and_refusals(page):
    r = run(page, """
      const G = P.message;
      const sizes = [0, 59, 60, 123, 124, 65536].map((n) => G.pad(1, new Uint8Array(n).fill(7)).length);
      const padded = G.pad(1, B.utf8('hi'));
      const tail = padded.slice(); tail[63] = 1;
      const justAfter = padded.slice(); justAfter[7] = 1;
      const longLength = padded.slice(); longLength.set([0, 0, 0, 60], 1);
      const full = G.pad(1, new Uint8Array(59).fill(9));
      return {
        sizes,
        roundTrip: B.fromUtf8(G.unpad(padded).content),
        full: G.unpad(full).content.length,
        nonZeroTail: await refusal(() => G.unpad(tail)),
        nonZeroAfterContent: await refusal(() => G.unpad(justAfter)),
        lengthBeyond: await refusal(() => G.unpad(longLength)),
        notABucket: await refusal(() => G.unpad(new Uint8Array(100))),
        tooShort: await refusal(() => G.unpad(new Uint8Array(63))),
        tooLarge: await refusal(() => G.pad(1, new Uint8Array(65537))),
        // 'hi' padded to 128 instead of 64: a larger bucket than the content needs.
        oversized: (() => { try { G.unpad(B.concat(padded, new Uint8Array(64))); return null; } catch (e) { return e.message; } })(),
      };
    """)
    assert r == {
        "sizes": [64, 64, 128, 128, 256, 131072], "roundTrip": "hi", "full": 59, "nonZeroTail": "malformed",
        "nonZeroAfterContent": "malformed", "lengthBeyond": "malformed", "notABucket": "malformed", "tooShort": "malformed",
        "tooLarge": "malformed", "oversized": "padded beyond the smallest bucket",
    }


# MARK: Envelopes (PROTOCOL 7)

ENVELOPE_SETUP = """
  const E = P.envelope;
  const address = { convId: x(v['op.genesis.hash']), epoch: x(v['op.add.hash']), sender: v['bundle.userId'],
                    deviceId: x('0a'.repeat(16)), generation: 0, recipient: '00000000-0000-4000-8000-000000000002' };
  const recipient = await P.x25519.importPrivate(x(v['envelope.recipientPrivate']));
  const ephemeral = await P.x25519.importPrivate(x(v['envelope.ephemeralPrivate']));
  const alice = await P.ed25519.importSeed(x(v['bundle.identitySeed']));
  const vectorEnvelope = { enc: x(v['envelope.enc']), ciphertext: x(v['envelope.ciphertext']), signature: x(v['envelope.Signature']) };
"""


def test_envelope_vector(page):
    r = run(page, ENVELOPE_SETUP + """
      const info = E.envelopeInfo(address);
      const { enc, context } = await P.hpke.setupBaseS(recipient.publicKey, info, ephemeral);
      const hpkeCiphertext = await context.seal(new Uint8Array(0), x(v['envelope.plaintext']));
      const sealed = await E.sealEnvelope(address, recipient.publicKey, { chainKey: x(v['chain.start']), startIndex: 0 }, alice.privateKey, { ephemeral });
      const opened = await E.openEnvelope(address, vectorEnvelope, alice.publicKey, recipient);
      const openedMine = await E.openEnvelope(address, sealed, alice.publicKey, recipient);
      const fresh = await E.sealEnvelope(address, recipient.publicKey, { chainKey: x('0d'.repeat(32)), startIndex: 17 }, alice.privateKey);
      const openedFresh = await E.openEnvelope(address, fresh, alice.publicKey, recipient);
      return {
        info: h(info), enc: h(enc), hpkeCiphertext: h(hpkeCiphertext),
        sealedEnc: h(sealed.enc), sealedCiphertext: h(sealed.ciphertext),
        vectorSignature: await E.verifyEnvelope(address, vectorEnvelope, alice.publicKey),
        opened: [h(opened.chainKey), opened.startIndex],
        openedMine: [h(openedMine.chainKey), openedMine.startIndex],
        fresh: [h(openedFresh.chainKey), openedFresh.startIndex, h(fresh.enc) !== h(sealed.enc)],
      };
    """)
    v = CIRCLE_VECTORS
    assert r["info"] == v["envelope.info"]
    assert r["enc"] == r["sealedEnc"] == v["envelope.enc"]
    assert r["hpkeCiphertext"] == r["sealedCiphertext"] == v["envelope.ciphertext"]
    assert r["vectorSignature"] is True
    assert r["opened"] == r["openedMine"] == [v["chain.start"], 0]
    assert r["fresh"] == ["0d" * 32, 17, True]


def test_tampered_or_misaddressed_envelopes_fail(page):
    r = run(page, ENVELOPE_SETUP + """
      const env = vectorEnvelope;
      const open = (a, e, key = alice.publicKey, rcpt = recipient) => E.openEnvelope(a, e, key, rcpt);
      const other = { ...address };
      const resignedFor = async (a) => ({ ...env, signature: await P.ed25519.sign(alice.privateKey,
        B.concat(B.utf8('circle/v1/env-sig'), E.envelopeInfo(a), env.enc, env.ciphertext)) });
      const otherRecipientAddress = { ...address, recipient: '00000000-0000-4000-8000-000000000003' };
      const wrongKey = await P.x25519.generate();
      return {
        ok: h((await open(address, env)).chainKey),
        enc: await refusal(() => open(address, { ...env, enc: flip(env.enc, 1) })),
        ciphertext: await refusal(() => open(address, { ...env, ciphertext: flip(env.ciphertext, 3) })),
        signature: await refusal(() => open(address, { ...env, signature: flip(env.signature, 3) })),
        otherSender: await refusal(() => open(address, env, x(v['op.peerIdentityPublic']))),
        otherRecipient: await refusal(() => open(otherRecipientAddress, env)),
        otherEpoch: await refusal(() => open({ ...address, epoch: x(v['op.genesis.hash']) }, env)),
        otherConversation: await refusal(() => open({ ...address, convId: x(v['op.add.hash']) }, env)),
        otherGeneration: await refusal(() => open({ ...address, generation: 1 }, env)),
        otherDevice: await refusal(() => open({ ...address, deviceId: x('0b'.repeat(16)) }, env)),
        // Signed again by the sender for another address: HPKE's info binding must still refuse it.
        resignedOtherRecipient: await refusal(async () => open(otherRecipientAddress, await resignedFor(otherRecipientAddress))),
        resignedOtherGeneration: await refusal(async () => open({ ...address, generation: 1 }, await resignedFor({ ...address, generation: 1 }))),
        wrongRecipientKey: await refusal(() => open(address, env, alice.publicKey, wrongKey)),
        badAddress: await refusal(() => open({ ...address, deviceId: new Uint8Array(15) }, env)),
        sealToSmallOrder: await refusal(() => E.sealEnvelope(address, new Uint8Array(32), { chainKey: x(v['chain.start']), startIndex: 0 }, alice.privateKey)),
        sealStartBeyond: await refusal(() => E.sealEnvelope(address, recipient.publicKey, { chainKey: x(v['chain.start']), startIndex: 1000 }, alice.privateKey)),
      };
    """)
    assert r == {
        "ok": CIRCLE_VECTORS["chain.start"], "enc": "bad-signature", "ciphertext": "bad-signature", "signature": "bad-signature",
        "otherSender": "bad-signature", "otherRecipient": "bad-signature", "otherEpoch": "bad-signature",
        "otherConversation": "bad-signature", "otherGeneration": "bad-signature", "otherDevice": "bad-signature",
        "resignedOtherRecipient": "decryption-failed", "resignedOtherGeneration": "decryption-failed",
        "wrongRecipientKey": "decryption-failed", "badAddress": "malformed", "sealToSmallOrder": "weak-key",
        "sealStartBeyond": "malformed",
    }


# MARK: Safety numbers (PROTOCOL 5.2)

def test_safety_number_vectors(page):
    r = run(page, """
      const S = P.safety;
      const alice = await S.safetyHalf(v['login.serverId'], v['bundle.userId'], x(v['bundle.identityPublic']));
      const peer = await S.safetyHalf(v['login.serverId'], '00000000-0000-4000-8000-000000000002', x(v['op.peerIdentityPublic']));
      return { alice, peer, combined: S.safetyNumber(alice, peer), swapped: S.safetyNumber(peer, alice),
               bad: await refusal(() => S.safetyNumber(alice, peer.slice(1))) };
    """)
    v = CIRCLE_VECTORS
    assert r["alice"] == v["safety.half.alice"]
    assert r["peer"] == v["safety.half.peer"]
    assert r["combined"] == r["swapped"] == v["safety.combined"]
    assert r["bad"] == "malformed"


# MARK: Key checks and encodings (PROTOCOL 1, 3)

# Ed25519 encodings Circle refuses: y >= p, x = 0 marked negative, and the small-order points.
BAD_ED25519 = {
    "y=p": "ed" + "ff" * 30 + "7f",
    "y=p+1": "ee" + "ff" * 30 + "7f",
    "y=2^255-1": "ff" * 32,
    "identity, negative x": "01" + "00" * 30 + "80",
    "order 2, negative x": "ec" + "ff" * 30 + "ff",
    "identity": "01" + "00" * 31,
    "order 2": "ec" + "ff" * 30 + "7f",
    "order 4": "00" * 32,
    "order 4, negative x": "00" * 31 + "80",
    "order 8 a": "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
    "order 8 a, negative x": "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
    "order 8 b": "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
    "order 8 b, negative x": "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    "31 bytes": "aa" * 31,
}

# X25519 public keys Circle refuses: top bit set, u >= p, and the small-order u values.
BAD_X25519 = {
    "top bit": "ce8d3ad1ccb633ec7b70c17814a5c76ecd029685050d344745ba05870e587dd9",
    "u=p": "ed" + "ff" * 30 + "7f",
    "u=p+1": "ee" + "ff" * 30 + "7f",
    "zero": "00" * 32,
    "one": "01" + "00" * 31,
    "p-1": "ec" + "ff" * 30 + "7f",
    "order 8 a": "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "order 8 b": "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "33 bytes": "09" * 33,
}


def test_ed25519_refuses_non_canonical_and_small_order_keys_and_s_above_l(page):
    r = run(page, """
      const Ed = P.ed25519;
      const message = x(v['kxcert.message']);
      const good = x(v['bundle.identityPublic']);
      const sig = x(v['kxcert.Signature']);
      const keys = {};
      for (const [name, key] of Object.entries(arg.bad)) {
        keys[name] = { check: await refusal(() => Ed.checkPublicKey(x(key))), verify: await Ed.verify(x(key), sig, message) };
      }
      // S + L and S = L: the same signature, malleated; and R replaced by a small-order or non-canonical point.
      const L = 2n ** 252n + 27742317777372353535851937790883648493n;
      const withS = (value) => { const out = sig.slice(); for (let i = 32; i < 64; i++) { out[i] = Number(value & 0xffn); value >>= 8n; } return out; };
      let s = 0n; for (let i = 63; i >= 32; i--) s = (s << 8n) | BigInt(sig[i]);
      const withR = (r) => B.concat(x(r), sig.subarray(32));
      const signatures = { 'S+L': withS(s + L), 'S=L': withS(L), 'R small order': withR('00'.repeat(32)),
                           'R identity': withR('01' + '00'.repeat(31)), 'R non-canonical': withR('ed' + 'ff'.repeat(30) + '7f'),
                           '63 bytes': sig.subarray(0, 63) };
      const sigs = {};
      for (const [name, bad] of Object.entries(signatures)) {
        sigs[name] = { check: await refusal(() => Ed.checkSignature(bad)), verify: await Ed.verify(good, bad, message) };
      }
      // The identity point as key, R = identity and S = 0 "sign" any message for a cofactorless
      // verifier; Circle's checks refuse it before WebCrypto sees it.
      const identity = x('01' + '00'.repeat(31));
      const universal = B.concat(identity, new Uint8Array(32));
      return {
        good: { check: await refusal(() => Ed.checkPublicKey(good)), sig: await refusal(() => Ed.checkSignature(sig)),
                verify: await Ed.verify(good, sig, message), otherMessage: await Ed.verify(good, sig, flip(message, 0)) },
        keys, sigs,
        universal: await Ed.verify(identity, universal, B.utf8('anything')),
        fingerprint: h(await Ed.fingerprint(good)),
      };
    """, bad=BAD_ED25519)
    assert r["good"] == {"check": "accepted", "sig": "accepted", "verify": True, "otherMessage": False}
    assert set(r["keys"]) == set(BAD_ED25519)
    for name, got in r["keys"].items():
        assert got == {"check": "weak-key", "verify": False}, name
    for name, got in r["sigs"].items():
        assert got == {"check": "bad-signature", "verify": False}, name
    assert len(r["sigs"]) == 6
    assert r["universal"] is False
    assert r["fingerprint"] == hashlib.sha256(bytes.fromhex(CIRCLE_VECTORS["bundle.identityPublic"])).hexdigest()


def test_identity_keys_must_be_of_prime_order(page):
    """A valid key plus a point of order 8 passes the small-order check but not the identity-key
    check (as CircleKit's KeyChecks.identityKey); generated keys pass."""
    r = run(page, """
      const E = P.ed25519;
      const prime = x('03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8');
      const mixed = x('b154bd62188ae283dd187fefe8c31f5e276edf083b4cff11c9d5cff856c74440');
      const generated = [];
      for (let i = 0; i < 5; i++) {
        const pair = await crypto.subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify']);
        const raw = new Uint8Array(await crypto.subtle.exportKey('raw', pair.publicKey));
        generated.push(await refusal(() => E.checkIdentityKey(raw)));
      }
      return {
        prime: await refusal(() => E.checkIdentityKey(prime)),
        mixedAsKey: await refusal(() => E.checkPublicKey(mixed)),
        mixed: await refusal(() => E.checkIdentityKey(mixed)),
        notAPoint: await refusal(() => E.checkIdentityKey(x('02' + '00'.repeat(31)))),
        generated,
      };
    """)
    assert r == {"prime": "accepted", "mixedAsKey": "accepted", "mixed": "weak-key", "notAPoint": "weak-key",
                 "generated": ["accepted"] * 5}


def test_x25519_refuses_non_canonical_and_small_order_keys(page):
    r = run(page, """
      const X = P.x25519;
      const mine = await X.importPrivate(x(v['bundle.x25519Private']));
      const peer = await X.importPrivate(x(v['envelope.recipientPrivate']));
      const keys = {};
      for (const [name, key] of Object.entries(arg.bad)) {
        keys[name] = { check: await refusal(() => X.checkPublicKey(x(key))), dh: await refusal(() => X.dh(mine.privateKey, x(key))) };
      }
      const generated = await X.generate();
      const again = await X.importPrivate(generated.raw);
      return {
        publicKey: h(mine.publicKey),
        good: await refusal(() => X.checkPublicKey(mine.publicKey)),
        agree: h(await X.dh(mine.privateKey, peer.publicKey)) === h(await X.dh(peer.privateKey, mine.publicKey)),
        generated: [generated.raw.length, h(again.publicKey) === h(generated.publicKey), generated.privateKey.extractable],
        keys,
      };
    """, bad=BAD_X25519)
    assert r["publicKey"] == CIRCLE_VECTORS["bundle.x25519Public"]
    assert r["good"] == "accepted" and r["agree"] is True
    assert r["generated"] == [32, True, False]
    assert set(r["keys"]) == set(BAD_X25519)
    for name, got in r["keys"].items():
        assert got == {"check": "weak-key", "dh": "weak-key"}, name


def test_base64url_is_strict(page):
    r = run(page, """
      const vectors = ['', 'f', 'fo', 'foo', 'foob', 'fooba', 'foobar'];
      const encoded = vectors.map((s) => B.b64u(B.utf8(s)));
      const decoded = encoded.map((s) => B.fromUtf8(B.fromB64u(s)));
      let roundTrips = true;
      for (let n = 0; n < 70; n++) { const b = B.random(n); roundTrips &&= h(B.fromB64u(B.b64u(b))) === h(b); }
      const bad = {};
      for (const s of arg.bad) bad[s] = await refusal(() => B.fromB64u(s));
      return { encoded, decoded, urlSafe: B.b64u(x('fbff')), urlSafeBack: h(B.fromB64u('-_8')), roundTrips, bad };
    """, bad=["Zg==", "Zm8=", "Zg=", "Z", "Zh", "Zm9", "Zm9v+w", "Zm9v/w", " Zg", "Zg\n", "Zm 9v", "Zm9v.", "Zm9vYmFy\u00e9"])
    assert r["encoded"] == ["", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"]
    assert r["decoded"] == ["", "f", "fo", "foo", "foob", "fooba", "foobar"]
    assert r["urlSafe"] == "-_8" and r["urlSafeBack"] == "fbff"
    assert r["roundTrips"] is True
    for s, got in r["bad"].items():
        assert got == "malformed", repr(s)


def test_byte_helpers(page):
    r = run(page, """
      const reader = new B.Reader(x('01' + '0203' + '04050607' + '0000000000000008' + '0002aabb' + 'cc'));
      const read = [reader.u8(), reader.u16(), reader.u32(), reader.u64(), h(reader.field()), h(reader.bytes(1)), reader.done()];
      const trailing = new B.Reader(x('0102')); trailing.u8();
      return {
        ints: [h(B.u8(255)), h(B.u16(0x1234)), h(B.u32(0xdeadbeef)), h(B.u64(2 ** 53 - 1)), h(B.u64(2n ** 64n - 1n)), h(B.field(x('abcd')))],
        read,
        bigU32: new B.Reader(x('ffffffff')).u32(),
        u64Beyond: await refusal(() => new B.Reader(x('0020000000000000')).u64()),
        truncated: await refusal(() => new B.Reader(x('0003aabb')).field()),
        fieldTooLong: await refusal(() => new B.Reader(x('0003aabbcc')).field(2)),
        trailing: await refusal(() => trailing.done()),
        overflow: [[B.u8, 256], [B.u16, 65536], [B.u32, 2 ** 32], [B.u64, -1], [B.u64, 2 ** 53], [B.u64, 2n ** 64n]].map(([f, n]) => {
          try { f(n); return 'accepted'; } catch (e) { return e.name; }
        }),
        equal: [B.equal(x('0102'), x('0102')), B.equal(x('0102'), x('0103')), B.equal(x('01'), x('0102'))],
        badHex: await refusal(() => x('0g')),
        badUtf8: await refusal(() => B.fromUtf8(x('ff'))),
      };
    """)
    assert r["ints"] == ["ff", "1234", "deadbeef", "001fffffffffffff", "ffffffffffffffff", "0002abcd"]
    assert r["read"] == [1, 0x0203, 0x04050607, 8, "aabb", "cc", True]
    assert r["bigU32"] == 0xFFFFFFFF
    assert r["u64Beyond"] == r["truncated"] == r["fieldTooLong"] == r["trailing"] == "malformed"
    assert r["overflow"] == ["RangeError"] * 6
    assert r["equal"] == [True, False, False]
    assert r["badHex"] == r["badUtf8"] == "malformed"


def test_modules_are_plain_and_all_exported():
    """No eval, no inline-script helpers, no logging left behind; index.js re-exports every module."""
    modules = sorted(p.name for p in PROTOCOL_JS.glob("*.js"))
    assert "index.js" in modules
    index = (PROTOCOL_JS / "index.js").read_text()
    internal = {"curve.js", "edwards.js"}
    for name in modules:
        text = (PROTOCOL_JS / name).read_text()
        for forbidden in [r"\beval\s*\(", r"new\s+Function\b", r"console\.", r"innerHTML", r"\bimport\s*\(", r"https?://"]:
            assert not re.search(forbidden, text), f"{name}: {forbidden}"
        if name not in internal | {"index.js"}:
            assert f"'./{name}'" in index, f"index.js does not export {name}"


# MARK: Call signals (PROTOCOL 10)

CALL_SIGNAL_SETUP = """
  const C = P.callSignal;
  const address = { callId: x(v['callSignal.callId']), sender: v['callSignal.sender'], senderDevice: x(v['callSignal.senderDevice']),
                    recipient: v['callSignal.recipient'], recipientDevice: x(v['callSignal.recipientDevice']), seq: Number(v['callSignal.seq']) };
  const recipient = await P.x25519.importPrivate(x(v['callSignal.recipientPrivate']));
  const ephemeral = await P.x25519.importPrivate(x(v['callSignal.ephemeralPrivate']));
  const alice = await P.ed25519.importSeed(x(v['bundle.identitySeed']));
  const vectorWire = x(v['callSignal.wireSignature']);
"""


def test_call_signal_vector(page):
    r = run(page, CALL_SIGNAL_SETUP + """
      const sealed = await C.sealCallSignal(address, recipient.publicKey, x(v['callSignal.plaintext']), alice.privateKey, { ephemeral });
      const parsed = C.parseCallSignal(sealed);
      const opened = await C.openCallSignal(address, vectorWire, alice.publicKey, recipient);
      const openedMine = await C.openCallSignal(address, sealed, alice.publicKey, recipient);
      return {
        info: h(C.callSignalInfo(address)), enc: h(parsed.enc), ciphertext: h(parsed.ciphertext), seq: parsed.seq,
        opened: [h(opened.plaintext), opened.seq], openedMine: h(openedMine.plaintext),
      };
    """)
    v = CIRCLE_VECTORS
    assert r["info"] == v["callSignal.info"]
    assert r["enc"] == v["callSignal.enc"] and r["ciphertext"] == v["callSignal.ciphertext"]
    assert r["seq"] == int(v["callSignal.seq"])
    assert r["opened"] == [v["callSignal.plaintext"], int(v["callSignal.seq"])]
    assert r["openedMine"] == v["callSignal.plaintext"]


def test_tampered_or_misaddressed_call_signals_fail(page):
    r = run(page, CALL_SIGNAL_SETUP + """
      const open = (a, w, key = alice.publicKey) => C.openCallSignal(a, w, key, recipient);
      const mallory = await P.ed25519.importSeed(x('5a'.repeat(32)));
      const parsed = C.parseCallSignal(vectorWire);
      // The relay re-signs the same sealed bytes with its own key; or seals its own SDP and signs it.
      const resigned = B.concat(vectorWire.slice(0, vectorWire.length - 64),
        await P.ed25519.sign(mallory.privateKey, B.concat(B.utf8('circle/v1/call-sig'), C.callSignalInfo(address), parsed.enc, parsed.ciphertext)));
      const forged = await C.sealCallSignal(address, recipient.publicKey, B.utf8('{"type":"offer","sdp":"evil"}'), mallory.privateKey);
      const laterSeq = B.concat(vectorWire.slice(0, 1), B.u64(address.seq + 1), vectorWire.slice(9));
      return {
        enc: await refusal(() => open(address, flip(vectorWire, 10))),
        ciphertext: await refusal(() => open(address, flip(vectorWire, 50))),
        signature: await refusal(() => open(address, flip(vectorWire, vectorWire.length - 3))),
        seq: await refusal(() => open(address, laterSeq)),
        otherDevice: await refusal(() => open({ ...address, recipientDevice: x('44'.repeat(16)) }, vectorWire)),
        otherCall: await refusal(() => open({ ...address, callId: x('45'.repeat(16)) }, vectorWire)),
        otherSender: await refusal(() => open(address, vectorWire, x(v['op.peerIdentityPublic']))),
        resigned: await refusal(() => open(address, resigned)),
        forged: await refusal(() => open(address, forged)),
        version: await refusal(() => open(address, B.concat(B.u8(2), vectorWire.slice(1)))),
        short: await refusal(() => open(address, vectorWire.slice(0, C.OVERHEAD))),
      };
    """)
    assert r == {
        "enc": "bad-signature", "ciphertext": "bad-signature", "signature": "bad-signature", "seq": "bad-signature",
        "otherDevice": "bad-signature", "otherCall": "bad-signature", "otherSender": "bad-signature",
        "resigned": "bad-signature", "forged": "bad-signature", "version": "malformed", "short": "malformed",
    }
