"""The browser's vault module (Web/js/protocol/vault.js, PROTOCOL.md section 9) in Chromium.

Every check runs inside the page served by a real `circle serve` (strict CSP, `script-src 'self'`):
the module is imported with `import()` and the vectors are handed in as evaluate arguments. Covered:
every `vault.*` entry of Tests/Vectors/circle-v1.json (written by CircleKit, so the JavaScript
output is compared byte for byte with Swift's), stream round trips fed in odd pieces, every refusal
of PROTOCOL 9.1 on streams crafted here with the raw primitives, metadata and wrap bindings, link
secrets, Padmé and the stored-length rule against a Python reference, and the incremental SHA-256
against WebCrypto.

Run: `python3 -m pytest -q Tests/Web/test_vault_vectors.py`
"""
import hashlib
import json
import random
import re
from pathlib import Path

import pytest

from vaultformat import ciphertext_length, padme

ROOT = Path(__file__).resolve().parents[2]
VAULT_JS = ROOT / "Web" / "js" / "protocol" / "vault.js"
CIRCLE_VECTORS = json.loads((ROOT / "Tests" / "Vectors" / "circle-v1.json").read_text())

# `V` is vault.js, `P` index.js, `B` the bytes module, `Pr` the primitives; `x`/`h` hex in and out;
# `refusal(f)` the ProtocolError code f throws ('accepted' if none, 'unexpected: ...' otherwise);
# `v` the circle-v1 vectors. The stream helpers build payloads from the raw primitives only
# (HKDF, AES-GCM, a DataView nonce), independently of the module, to craft malformed streams.
PRELUDE = """async (arg) => {
  const V = await import('/js/protocol/vault.js');
  const P = await import('/js/protocol/index.js');
  const B = P.bytes, Pr = P.primitives;
  const x = B.fromHex, h = B.hex;
  const v = arg.v;
  const refusal = async (f) => {
    try { await f(); return 'accepted'; }
    catch (e) { return e instanceof P.ProtocolError ? e.code : 'unexpected: ' + e; }
  };
  const flip = (bytes, index, bit = 1) => { const copy = bytes.slice(); copy[index] ^= bit; return copy; };
  const cat = (...parts) => B.concat(...parts);
  const CHUNK = 65536, TAG = 16, HEADER = 17;
  // Deterministic, never all-zero content.
  const content = (n, seed = 1) => {
    const out = new Uint8Array(n);
    let s = seed >>> 0 || 1;
    for (let i = 0; i < n; i++) { s ^= s << 13; s ^= s >>> 17; s ^= s << 5; out[i] = s & 0xff; }
    return out;
  };
  // Padmé written from the spec text with BigInt.
  const padmeRef = (n) => {
    let L = BigInt(n);
    if (L < 2n) return Number(L);
    const E = BigInt(L.toString(2).length - 1), S = BigInt(E.toString(2).length);
    const mask = (1n << (E - S)) - 1n;
    return Number((L + mask) & ~mask);
  };
  const rawKey = async (fileKey, salt) => Pr.hkdfExpand(await Pr.hkdfExtract(salt, fileKey),
    cat(B.utf8('circle/v1/vault/payload'), B.u8(1)), 32);
  const rawNonce = (i, last) => {
    const n = new Uint8Array(12);
    new DataView(n.buffer).setBigUint64(3, BigInt(i));
    n[11] = last ? 1 : 0;
    return n;
  };
  // The plaintext chunks of `data` (content || zeros up to padme(size)); one empty chunk if empty.
  const plainChunks = (data, padded = padmeRef(data.length)) => {
    const all = new Uint8Array(padded); all.set(data);
    const out = [];
    for (let o = 0; o < padded; o += CHUNK) out.push(all.subarray(o, Math.min(padded, o + CHUNK)));
    if (out.length === 0) out.push(new Uint8Array(0));
    return out;
  };
  // A payload from explicit chunks: [{plain, last, counter?}] (counter defaults to the position).
  const craft = async (fileKey, salt, chunks, version = 1) => {
    const key = await rawKey(fileKey, salt);
    const sealed = [];
    for (const [i, c] of chunks.entries()) {
      sealed.push(await Pr.aesGcmEncrypt(key, rawNonce(c.counter ?? i, c.last), c.plain, new Uint8Array(0)));
    }
    return cat(B.u8(version), salt, ...sealed);
  };
  const craftFile = (fileKey, salt, data) => {
    const plains = plainChunks(data);
    return craft(fileKey, salt, plains.map((plain, i) => ({ plain, last: i === plains.length - 1 })));
  };
  // Splits `bytes` into pieces whose sizes cycle through `sizes`.
  const pieces = (bytes, sizes) => {
    const out = [];
    for (let o = 0, k = 0; o < bytes.length; k++) { const n = sizes[k % sizes.length]; out.push(bytes.subarray(o, o + n)); o += n; }
    return out;
  };
  const sealAll = async (fileKey, data, salt, sizes = [data.length || 1]) => {
    const sealer = await V.StreamSealer.create(fileKey, data.length, salt);
    const out = [sealer.header];
    for (const piece of pieces(data, sizes)) out.push(await sealer.seal(piece));
    out.push(await sealer.finish());
    return cat(...out);
  };
  // Opens `stream` in `parts` (each an open() call); reports the code, the verified content
  // released before any refusal, and whether the opener says it is complete.
  const attempt = async (fileKey, size, parts) => {
    const opener = V.StreamOpener.create(fileKey, size);
    const released = [];
    let code = 'accepted';
    try {
      for (const part of parts) released.push(await opener.open(part));
      opener.finish();
    } catch (e) {
      code = e instanceof P.ProtocolError ? e.code : 'unexpected: ' + e;
    }
    return { code, released: cat(...released), complete: opener.complete };
  };
  const chunkParts = (stream) => {
    const out = [stream.subarray(0, HEADER)];
    for (let o = HEADER; o < stream.length; o += CHUNK + TAG) out.push(stream.subarray(o, Math.min(stream.length, o + CHUNK + TAG)));
    return out;
  };
  /*BODY*/
}"""


def run(page, body, **arg):
    """Runs `body` (JavaScript, inside PRELUDE) in the page and returns what it returns."""
    return page.evaluate(PRELUDE.replace("/*BODY*/", body), {"v": CIRCLE_VECTORS, **arg})


VAULT_VECTORS = {k for k in CIRCLE_VECTORS if k.startswith("vault.")}
CHECKED = {
    "vault.content", "vault.fileId", "vault.fileKey", "vault.salt", "vault.stream",
    "vault.meta.name", "vault.meta.nonce", "vault.meta.sealed", "vault.meta.size", "vault.meta.type",
    "vault.owner", "vault.wrap", "vault.wrap.nonce",
    "vault.link.id", "vault.link.key", "vault.link.salt", "vault.link.password", "vault.link.access",
    "vault.link.verifier", "vault.link.unwrapKey", "vault.link.nonce", "vault.link.wrap",
    "vault.link.noPassword.access", "vault.link.noPassword.unwrapKey",
}


def test_every_vault_vector_is_checked():
    """A new `vault.*` entry in circle-v1.json needs a check here."""
    assert VAULT_VECTORS == CHECKED, (sorted(VAULT_VECTORS - CHECKED), sorted(CHECKED - VAULT_VECTORS))


# MARK: Payload (PROTOCOL 9.1)

def test_stream_vector_byte_for_byte(page):
    r = run(page, """
      const fileKey = x(v['vault.fileKey']), salt = x(v['vault.salt']), data = x(v['vault.content']);
      const size = data.length;
      const sealer = await V.StreamSealer.create(fileKey, size, salt);
      const outputs = [h(sealer.header)];
      for (const piece of pieces(data, [1, 6, 33])) outputs.push(h(await sealer.seal(piece)));
      outputs.push(h(await sealer.finish()));
      const splits = {};
      for (const sizes of [[100], [1], [7, 13], [99, 1]]) splits[sizes.join(',')] = h(await sealAll(fileKey, data, salt, sizes));
      const opened = {};
      for (const sizes of [[137], [1], [17, 120], [5, 11, 3]]) {
        const r = await attempt(fileKey, size, pieces(x(v['vault.stream']), sizes));
        opened[sizes.join(',')] = { code: r.code, content: h(r.released), complete: r.complete };
      }
      return {
        size,
        sealedInPieces: outputs.join(''),
        emptyUntilFinish: outputs.slice(1, -1).every((o) => o === ''),
        splits,
        crafted: h(await craftFile(fileKey, salt, data)),
        opened,
        lengthRule: [V.ciphertextLength(size), V.isValidLength(V.ciphertextLength(size)), V.padme(size), V.chunkCount(V.padme(size))],
        sealerLength: sealer.ciphertextLength,
      };
    """)
    stream = CIRCLE_VECTORS["vault.stream"]
    assert r["size"] == 100
    assert r["sealedInPieces"] == stream
    assert r["emptyUntilFinish"] is True  # one chunk: nothing can be sealed before finish
    assert r["splits"] == {k: stream for k in ["100", "1", "7,13", "99,1"]}
    assert r["crafted"] == stream  # the raw-primitive helper used for the refusals agrees with Swift
    for sizes, result in r["opened"].items():
        assert result == {"code": "accepted", "content": CIRCLE_VECTORS["vault.content"], "complete": True}, sizes
    assert r["lengthRule"] == [len(stream) // 2, True, 104, 1]
    assert r["sealerLength"] == len(stream) // 2


@pytest.mark.parametrize("size", [0, 1, 65535, 65536, 65537, 200001, 4 * 1024 * 1024 + 1])
def test_stream_round_trip_in_odd_pieces(page, size):
    r = run(page, """
      const size = arg.size;
      const fileKey = V.generateFileKey(), salt = B.random(16);
      const data = content(size, size + 7);
      const expectedLength = V.ciphertextLength(size);
      // Seal in odd pieces: no piece boundary lines up with a chunk boundary.
      const sealer = await V.StreamSealer.create(fileKey, size, salt);
      const out = [sealer.header];
      let consumed = 0, emitted = 0, heldAtMostOneChunk = true, eager = true;
      const chunks = V.chunkCount(V.padme(size));
      for (const piece of pieces(data, [1, 7, 4099, 65537, 100003, 3])) {
        const sealed = await sealer.seal(piece);
        consumed += piece.length;
        emitted += sealed.length;
        if (sealed.length % (CHUNK + TAG) !== 0) eager = false;
        const sealedChunks = emitted / (CHUNK + TAG);
        // Every whole chunk that is not the last is sealed as soon as it is complete.
        if (sealedChunks !== Math.min(Math.floor(consumed / CHUNK), chunks - 1)) eager = false;
        if (consumed - sealedChunks * CHUNK > CHUNK) heldAtMostOneChunk = false;
        out.push(sealed);
      }
      out.push(await sealer.finish());
      const stream = cat(...out);
      // The same content in one piece, and built from the raw primitives: the same bytes.
      const whole = await sealAll(fileKey, data, salt);
      const crafted = await craftFile(fileKey, salt, data);
      // Open in other odd pieces; content comes out only when a chunk verified.
      const opener = V.StreamOpener.create(fileKey, size);
      const got = [];
      let completeTooEarly = false, finishRefusedEarly = true;
      const parts = pieces(stream, [3, 65553, 11, 1, 70001]);
      for (const [i, part] of parts.entries()) {
        got.push(await opener.open(part));
        if (i < parts.length - 1) {
          if (opener.complete) completeTooEarly = true;
          if (await refusal(() => opener.finish()) !== 'malformed') finishRefusedEarly = false;
        }
      }
      opener.finish();
      const opened = cat(...got);
      return {
        length: stream.length, expectedLength, valid: V.isValidLength(stream.length),
        invalidNeighbours: [V.isValidLength(stream.length - 1), V.isValidLength(stream.length + 1)],
        sameAsWhole: B.equal(stream, whole), sameAsCrafted: B.equal(stream, crafted),
        eager, heldAtMostOneChunk,
        roundTrip: B.equal(opened, data), openedLength: opened.length,
        complete: opener.complete, completeTooEarly, finishRefusedEarly,
        afterComplete: await refusal(() => opener.open(new Uint8Array(1))),
      };
    """, size=size)
    assert r["length"] == r["expectedLength"] == ciphertext_length(size)
    assert r["valid"] is True
    assert r["sameAsWhole"] is True and r["sameAsCrafted"] is True
    assert r["eager"] is True and r["heldAtMostOneChunk"] is True
    assert r["roundTrip"] is True and r["openedLength"] == size
    assert r["complete"] is True and r["completeTooEarly"] is False and r["finishRefusedEarly"] is True
    assert r["afterComplete"] == "malformed"


def test_stream_refusals_of_protocol_9_1(page):
    """Each way PROTOCOL 9.1 says a stream must fail, on a 4-chunk file (200001 bytes)."""
    r = run(page, """
      const size = 200001;
      const fileKey = x(v['vault.fileKey']), salt = x(v['vault.salt']);
      const data = content(size, 3);
      const stream = await sealAll(fileKey, data, salt, [65537, 3]);
      const chunkAt = (i) => HEADER + i * (CHUNK + TAG);
      const parts = chunkParts(stream);  // header, chunk 0..3
      const report = async (s, n = size, key = fileKey, split = true, expected = data) => {
        const r = await attempt(key, n, split ? chunkParts(s) : [s]);
        return { code: r.code, released: r.released.length, complete: r.complete,
                 prefixOk: B.equal(r.released, expected.subarray(0, r.released.length)) };
      };
      const plains = plainChunks(data);
      const spec = plains.map((plain, i) => ({ plain, last: i === plains.length - 1 }));
      const otherSalt = await sealAll(fileKey, data, x('44'.repeat(16)));
      const swapped = (i, j) => { const p = parts.slice(); [p[i + 1], p[j + 1]] = [p[j + 1], p[i + 1]]; return cat(...p); };
      const spliced = (i, chunk) => { const p = parts.slice(); p[i + 1] = chunk; return cat(...p); };
      const badPadding = plains.map((p) => p.slice()); badPadding[3][4095] = 1;   // last byte of the padding
      const content65536 = content(65536, 9), content131072 = content(131072, 10);
      const withVersion = (n) => { const s = stream.slice(); s[0] = n; return s; };
      // A non-empty file of exactly one chunk, and of exactly two, each followed by an empty final chunk.
      const emptyFinalOne = await craft(fileKey, salt, [{ plain: content65536, last: false }, { plain: new Uint8Array(0), last: true }]);
      const emptyFinalTwo = await craft(fileKey, salt, [{ plain: content131072.subarray(0, CHUNK), last: false },
        { plain: content131072.subarray(CHUNK), last: false }, { plain: new Uint8Array(0), last: true }]);
      const firstVersionByte = async (n) => refusal(() => V.StreamOpener.create(fileKey, size).open(new Uint8Array([n])));
      return {
        baseline: await report(stream),
        craftedBaseline: B.equal(await craft(fileKey, salt, spec), stream),
        flippedCiphertext: await report(flip(stream, chunkAt(2) + 100)),
        flippedTag: await report(flip(stream, stream.length - 1, 0x80)),
        flippedHeaderSalt: await report(flip(stream, 5)),
        truncatedAtBoundary: await report(stream.subarray(0, chunkAt(3))),
        truncatedMidChunk: await report(stream.subarray(0, stream.length - 1)),
        truncatedMidChunkEarly: await report(stream.subarray(0, chunkAt(1) + 20)),
        headerOnly: await report(stream.subarray(0, HEADER)),
        partialHeader: await report(stream.subarray(0, 9)),
        swapped01: await report(swapped(0, 1)),
        swapped12: await report(swapped(1, 2)),
        appendedByte: await report(cat(stream, new Uint8Array(1))),
        appendedByteOneCall: await report(cat(stream, new Uint8Array(1)), size, fileKey, false),
        appendedLater: await (async () => {
          const o = V.StreamOpener.create(fileKey, size);
          await o.open(stream);
          return [o.complete, await refusal(() => o.open(new Uint8Array([0]))), await refusal(() => o.finish())];
        })(),
        appendedChunk: await report(cat(stream, (await craft(fileKey, salt, [{ plain: new Uint8Array(16), last: true, counter: 4 }])).subarray(HEADER))),
        chunkFromOtherSalt: await report(spliced(1, chunkParts(otherSalt)[2])),
        finalFlagMidStream: await report(await craft(fileKey, salt, spec.map((c, i) => ({ ...c, last: i === 1 || c.last })))),
        endsEarlyWithFinalFlag: await report(await craft(fileKey, salt, [spec[0], { ...spec[1], last: true }])),
        noFinalFlag: await report(await craft(fileKey, salt, spec.map((c) => ({ ...c, last: false })))),
        counterSkipped: await report(await craft(fileKey, salt, spec.map((c, i) => ({ ...c, counter: i === 0 ? 0 : i + 1 })))),
        emptyFinalOne: await report(emptyFinalOne, 65536, fileKey, true, content65536),
        emptyFinalTwo: await report(emptyFinalTwo, 131072, fileKey, true, content131072),
        nonZeroPadding: await report(await craft(fileKey, salt, badPadding.map((plain, i) => ({ plain, last: i === 3 })))),
        alteredSalt: await report(cat(B.u8(1), x('34'.repeat(16)), stream.subarray(HEADER))),
        version0: await report(withVersion(0)),
        version2: await report(withVersion(2)),
        version2FirstByte: await firstVersionByte(2),
        version1FirstByte: await firstVersionByte(1),
        wrongKey: await report(stream, size, flip(fileKey, 0)),
        smallerSize: await report(stream, 200000),
        byte200000: data[200000],
        largerSizeOtherLayout: await report(stream, 300000),
        poisoned: await (async () => {
          const o = V.StreamOpener.create(fileKey, size);
          const first = await refusal(() => o.open(flip(stream, chunkAt(0) + 1)));
          return [first, await refusal(() => o.open(new Uint8Array(0))), await refusal(() => o.finish()), o.complete];
        })(),
      };
    """)
    four = {"code": "accepted", "released": 200001, "complete": True, "prefixOk": True}
    assert r["baseline"] == four and r["craftedBaseline"] is True

    def failed(code, released, complete=False):
        return {"code": code, "released": released, "complete": complete, "prefixOk": True}

    # Tampering: content up to the bad chunk was released (verified), nothing after.
    assert r["flippedCiphertext"] == failed("decryption-failed", 2 * 65536)
    assert r["flippedTag"] == failed("decryption-failed", 3 * 65536)
    assert r["flippedHeaderSalt"] == failed("decryption-failed", 0)
    # Truncation: never complete, finish refuses.
    assert r["truncatedAtBoundary"] == failed("malformed", 3 * 65536)
    assert r["truncatedMidChunk"] == failed("malformed", 3 * 65536)
    assert r["truncatedMidChunkEarly"] == failed("malformed", 65536)
    assert r["headerOnly"] == failed("malformed", 0)
    assert r["partialHeader"] == failed("malformed", 0)
    # Reordering.
    assert r["swapped01"] == failed("decryption-failed", 0)
    assert r["swapped12"] == failed("decryption-failed", 65536)
    # Appended data.
    # The final chunk arrived in the same call as the extra byte: its content is not handed out.
    assert r["appendedByte"] == failed("malformed", 3 * 65536)
    assert r["appendedByteOneCall"] == failed("malformed", 0)
    assert r["appendedLater"] == [True, "malformed", "malformed"]
    assert r["appendedChunk"] == failed("malformed", 3 * 65536)
    # Another file's chunk, final flags, counters.
    assert r["chunkFromOtherSalt"] == failed("decryption-failed", 65536)
    assert r["finalFlagMidStream"] == failed("decryption-failed", 65536)
    assert r["endsEarlyWithFinalFlag"] == failed("decryption-failed", 65536)
    assert r["noFinalFlag"] == failed("decryption-failed", 3 * 65536)
    assert r["counterSkipped"] == failed("decryption-failed", 65536)
    assert r["emptyFinalOne"] == failed("decryption-failed", 0)
    assert r["emptyFinalTwo"] == failed("decryption-failed", 65536)
    # Padding, header, key, size.
    assert r["nonZeroPadding"] == failed("malformed", 3 * 65536)
    assert r["alteredSalt"] == failed("decryption-failed", 0)
    assert r["version0"] == r["version2"] == failed("malformed", 0)
    assert r["version2FirstByte"] == "malformed" and r["version1FirstByte"] == "accepted"
    assert r["wrongKey"] == failed("decryption-failed", 0)
    assert r["byte200000"] != 0
    assert r["smallerSize"] == failed("malformed", 3 * 65536)  # byte 200000 is content, not a padding zero
    assert r["largerSizeOtherLayout"]["code"] in ("decryption-failed", "malformed")
    assert r["largerSizeOtherLayout"]["complete"] is False
    assert r["poisoned"] == ["decryption-failed", "decryption-failed", "decryption-failed", False]


def test_padding_checked_in_chunks_that_are_only_padding(page):
    """4 MiB + 1: the padding (131071 zeros) fills the end of chunk 64 and all of chunk 65."""
    r = run(page, """
      const size = 4 * 1024 * 1024 + 1;
      const fileKey = V.generateFileKey(), salt = B.random(16);
      const data = content(size, 5);
      const plains = plainChunks(data);
      const spec = (mutate) => plains.map((p, i) => {
        const plain = mutate ? p.slice() : p;
        if (mutate) mutate(i, plain);
        return { plain, last: i === plains.length - 1 };
      });
      const reportOf = async (s) => {
        const r = await attempt(fileKey, size, chunkParts(s));
        return { code: r.code, released: r.released.length, complete: r.complete };
      };
      return {
        chunks: plains.length, padded: V.padme(size),
        good: await reportOf(await craft(fileKey, salt, spec())),
        lastChunkPadding: await reportOf(await craft(fileKey, salt, spec((i, p) => { if (i === 65) p[30000] = 0x10; }))),
        tailOfContentChunk: await reportOf(await craft(fileKey, salt, spec((i, p) => { if (i === 64) p[1] = 0x01; }))),
      };
    """)
    assert r["chunks"] == 66 and r["padded"] == padme(4 * 1024 * 1024 + 1) == 4 * 1024 * 1024 + 131072
    assert r["good"] == {"code": "accepted", "released": 4 * 1024 * 1024 + 1, "complete": True}
    assert r["lastChunkPadding"] == {"code": "malformed", "released": 4 * 1024 * 1024 + 1, "complete": False}
    assert r["tailOfContentChunk"] == {"code": "malformed", "released": 4 * 1024 * 1024, "complete": False}


def test_sealer_refuses_more_or_less_content_and_misuse(page):
    r = run(page, """
      const fileKey = x(v['vault.fileKey']), salt = x(v['vault.salt']), data = x(v['vault.content']);
      const s = await V.StreamSealer.create(fileKey, 100, salt);
      const first = await s.seal(data.subarray(0, 60));
      const tooMuch = await refusal(() => s.seal(new Uint8Array(41)));
      const earlyFinish = await refusal(() => s.finish());
      // Both refusals left the sealer as it was: the rest completes the vector.
      const rest = await s.seal(data.subarray(60));
      const done = await s.finish();
      const stream = cat(s.header, first, rest, done);
      const overlap = await (async () => {
        const t = await V.StreamSealer.create(fileKey, 200000, salt);
        const a = t.seal(new Uint8Array(100000)), b = t.seal(new Uint8Array(100000));
        const results = await Promise.allSettled([a, b]);
        return results.map((p) => p.status === 'fulfilled' ? 'ok' : (p.reason instanceof P.ProtocolError ? p.reason.code : p.reason.constructor.name));
      })();
      const zero = await V.StreamSealer.create(fileKey, 0, salt);
      return {
        tooMuch, earlyFinish, vector: h(stream) === v['vault.stream'],
        sealAfterFinish: await refusal(() => s.seal(new Uint8Array(0))),
        finishTwice: await refusal(() => s.finish()),
        overlap,
        zeroByteFile: [await refusal(() => zero.seal(new Uint8Array(1))), (await zero.finish()).length],
        shortKey: await refusal(() => V.StreamSealer.create(fileKey.subarray(1), 100, salt)),
        shortSalt: await refusal(() => V.StreamSealer.create(fileKey, 100, salt.subarray(1))),
        negativeSize: await refusal(() => V.StreamSealer.create(fileKey, -1, salt)),
        fractionalSize: await refusal(() => V.StreamSealer.create(fileKey, 1.5, salt)),
        openerShortKey: await refusal(() => V.StreamOpener.create(fileKey.subarray(1), 100)),
        randomSalt: await (async () => {
          const a = await V.StreamSealer.create(fileKey, 1), b = await V.StreamSealer.create(fileKey, 1);
          return [a.header.length, a.header[0], h(a.header) !== h(b.header)];
        })(),
      };
    """)
    assert r["tooMuch"] == "malformed" and r["earlyFinish"] == "malformed"
    assert r["vector"] is True
    assert r["sealAfterFinish"] == r["finishTwice"] == "malformed"
    assert r["overlap"] == ["ok", "Error"]
    assert r["zeroByteFile"] == ["malformed", 16]
    assert r["shortKey"] == r["shortSalt"] == r["negativeSize"] == r["fractionalSize"] == r["openerShortKey"] == "malformed"
    assert r["randomSalt"] == [17, 1, True]


def test_padme_and_stored_lengths_against_python(page):
    rng = random.Random(9)
    values = sorted({*range(0, 300), *[2 ** k + d for k in range(1, 54) for d in (-1, 0, 1) if 0 <= 2 ** k + d <= 2 ** 53],
                     *[rng.randrange(0, 2 ** 53) for _ in range(300)], 65535, 65536, 65537, 200001, 2 ** 53})
    limit = 300_000
    sizes_needed = 0
    while ciphertext_length(sizes_needed) <= limit:
        sizes_needed += 1
    valid = sorted({ciphertext_length(n) for n in range(sizes_needed + 1) if ciphertext_length(n) <= limit})
    r = run(page, """
      const valid = [];
      for (let L = 0; L <= arg.limit; L++) if (V.isValidLength(L)) valid.push(L);
      const safe = (n) => { try { return V.ciphertextLength(n); } catch (e) { return e.constructor.name; } };
      return {
        padme: arg.values.map((n) => V.padme(n)),
        padmeBig: arg.values.map((n) => String(V.padme(BigInt(n)))),
        lengths: arg.values.map(safe),
        chunkCounts: [0, 1, 65536, 65537, 131072, 131073].map((n) => V.chunkCount(n)),
        valid,
        beyond: [String(V.padme(2n ** 64n - 1n)), safe(2 ** 53)],
        outOfRange: [-1, 1.5, 2 ** 53 + 2].map((n) => { try { V.padme(n); return 'accepted'; } catch (e) { return e.constructor.name; } }),
        isValidOdd: [V.isValidLength(-1), V.isValidLength(1.5), V.isValidLength(33n)],
        constants: [V.CHUNK_SIZE, V.TAG_SIZE, V.SALT_SIZE, V.HEADER_SIZE, V.FILE_ID_SIZE, V.LINK_ID_SIZE, V.LINK_KEY_SIZE, V.LINK_ITERATIONS],
      };
    """, values=values, limit=limit)
    assert r["padme"] == [padme(n) for n in values]
    assert r["padmeBig"] == [str(padme(n)) for n in values]
    max_safe = 2 ** 53 - 1
    assert r["lengths"] == [ciphertext_length(n) if ciphertext_length(n) <= max_safe else "RangeError" for n in values]
    assert all(padme(n) - n <= n * 0.12 + 1 for n in values)
    assert r["chunkCounts"] == [1, 1, 1, 2, 2, 3]
    assert r["valid"] == valid
    assert r["beyond"] == [str(padme(2 ** 64 - 1)), "RangeError"]
    assert r["outOfRange"] == ["RangeError"] * 3
    assert r["isValidOdd"] == [False, False, True]
    assert r["constants"] == [65536, 16, 16, 17, 16, 16, 32, 600000]


# MARK: Metadata (PROTOCOL 9.2)

def test_metadata_vector_and_binding(page):
    r = run(page, """
      const fileKey = x(v['vault.fileKey']), fileId = x(v['vault.fileId']);
      const meta = { name: v['vault.meta.name'], type: v['vault.meta.type'], size: Number(v['vault.meta.size']) };
      const sealed = await V.sealMetadata(meta, fileKey, fileId, x(v['vault.meta.nonce']));
      const fresh = await V.sealMetadata(meta, fileKey, fileId);
      const fresh2 = await V.sealMetadata(meta, fileKey, fileId);
      return {
        sealed: h(sealed),
        opened: await V.openMetadata(x(v['vault.meta.sealed']), fileKey, fileId),
        fresh: [fresh.length, h(fresh) !== h(fresh2), await V.openMetadata(fresh, fileKey, fileId)],
        otherFileId: await refusal(() => V.openMetadata(x(v['vault.meta.sealed']), fileKey, flip(fileId, 15))),
        otherKey: await refusal(() => V.openMetadata(x(v['vault.meta.sealed']), flip(fileKey, 0), fileId)),
        tampered: await refusal(() => V.openMetadata(flip(x(v['vault.meta.sealed']), 40), fileKey, fileId)),
        truncated: await refusal(() => V.openMetadata(x(v['vault.meta.sealed']).subarray(0, 20), fileKey, fileId)),
        shortFileId: await refusal(() => V.openMetadata(x(v['vault.meta.sealed']), fileKey, fileId.subarray(1))),
      };
    """)
    v = CIRCLE_VECTORS
    assert r["sealed"] == v["vault.meta.sealed"]
    assert len(bytes.fromhex(v["vault.meta.sealed"])) == 12 + 256 + 16
    assert r["opened"] == {"name": v["vault.meta.name"], "type": v["vault.meta.type"], "size": int(v["vault.meta.size"])}
    assert r["fresh"][0] == 12 + 256 + 16 and r["fresh"][1] is True
    assert r["fresh"][2] == r["opened"]
    assert r["otherFileId"] == r["otherKey"] == r["tampered"] == r["truncated"] == "decryption-failed"
    assert r["shortFileId"] == "malformed"


def test_metadata_encoding_refusals(page):
    """Malformed plaintexts sealed under the right key with the raw primitives: decode refuses them."""
    r = run(page, """
      const fileKey = x(v['vault.fileKey']), fileId = x(v['vault.fileId']);
      const key = await Pr.hkdf(fileKey, B.utf8('circle/v1/vault/meta'), 32);
      const body = (name, type, size) => cat(B.u8(1), B.field(name), B.field(type), B.u64(size));
      const pad = (b, to) => { const out = new Uint8Array(to ?? Math.ceil(b.length / 256) * 256); out.set(b); return out; };
      const openRaw = async (plain) => V.openMetadata(await Pr.aesGcmSeal(key, plain, fileId), fileKey, fileId);
      const tryRaw = (plain) => refusal(() => openRaw(plain));
      const good = pad(body(B.utf8('a.txt'), B.utf8(''), 5));
      const withVersion2 = good.slice(); withVersion2[0] = 2;
      const dirtyPadding = good.slice(); dirtyPadding[255] = 1;
      const seal = (meta) => refusal(() => V.sealMetadata(meta, fileKey, fileId));
      const roundTrip = async (meta) => V.openMetadata(await V.sealMetadata(meta, fileKey, fileId), fileKey, fileId);
      const longName = 'é'.repeat(512);  // 1024 bytes
      return {
        good: await openRaw(good),
        version2: await tryRaw(withVersion2),
        dirtyPadding: await tryRaw(dirtyPadding),
        unpadded: await tryRaw(good.subarray(0, 255)),
        tooMuchPadding: await tryRaw(pad(body(B.utf8('a.txt'), B.utf8(''), 5), 512)),
        empty: await tryRaw(new Uint8Array(0)),
        badUtf8Name: await tryRaw(pad(body(x('c3'), B.utf8(''), 5))),
        overlongUtf8: await tryRaw(pad(body(x('c0af'), B.utf8(''), 5))),
        surrogateUtf8: await tryRaw(pad(body(x('eda080'), B.utf8(''), 5))),
        badUtf8Type: await tryRaw(pad(body(B.utf8('a'), x('ff'), 5))),
        emptyName: await tryRaw(pad(body(new Uint8Array(0), B.utf8(''), 5))),
        nameTooLong: await tryRaw(pad(body(new Uint8Array(1025).fill(0x61), B.utf8(''), 5))),
        typeTooLong: await tryRaw(pad(body(B.utf8('a'), new Uint8Array(256).fill(0x61), 5))),
        sizeBeyond53: await tryRaw(pad(body(B.utf8('a'), B.utf8(''), 2n ** 53n))),
        fieldPastEnd: await tryRaw(pad(cat(B.u8(1), B.u16(300), B.utf8('a')))),
        bomKept: (await openRaw(pad(body(x('efbbbf61'), B.utf8(''), 5)))).name === '\\ufeffa',
        bomRoundTrip: (await roundTrip({ name: '\\ufeffb', type: '', size: 1 })).name === '\\ufeffb',
        longest: await roundTrip({ name: longName, type: 'x'.repeat(255), size: 2 ** 53 - 1 }).then((m) => [m.name === longName, m.type.length, m.size]),
        unicode: await roundTrip({ name: 'Résumé – 履歴書 🗂.pdf', type: 'application/pdf', size: 0 }),
        sealEmptyName: await seal({ name: '', type: '', size: 1 }),
        sealLongName: await seal({ name: longName + 'a', type: '', size: 1 }),
        sealLongType: await seal({ name: 'a', type: 'x'.repeat(256), size: 1 }),
        sealLoneSurrogate: await seal({ name: 'a\\ud800', type: '', size: 1 }),
        sealBadSize: await seal({ name: 'a', type: '', size: -1 }),
        sealHugeSize: await seal({ name: 'a', type: '', size: 2 ** 53 }),
        sealShortFileId: await refusal(() => V.sealMetadata({ name: 'a', type: '', size: 1 }, fileKey, fileId.subarray(1))),
        sealShortKey: await refusal(() => V.sealMetadata({ name: 'a', type: '', size: 1 }, fileKey.subarray(1), fileId)),
        encodedLength: [V.encodeMetadata({ name: 'a', type: '', size: 0 }).length, V.encodeMetadata({ name: 'a'.repeat(250), type: '', size: 0 }).length],
      };
    """)
    assert r["good"] == {"name": "a.txt", "type": "", "size": 5}
    for name in ["version2", "dirtyPadding", "unpadded", "tooMuchPadding", "empty", "badUtf8Name", "overlongUtf8", "surrogateUtf8",
                 "badUtf8Type", "emptyName", "nameTooLong", "typeTooLong", "sizeBeyond53", "fieldPastEnd"]:
        assert r[name] == "malformed", name
    assert r["bomKept"] is True and r["bomRoundTrip"] is True
    assert r["longest"] == [True, 255, 2 ** 53 - 1]
    assert r["unicode"] == {"name": "Résumé – 履歴書 🗂.pdf", "type": "application/pdf", "size": 0}
    for name in ["sealEmptyName", "sealLongName", "sealLongType", "sealLoneSurrogate", "sealBadSize", "sealHugeSize",
                 "sealShortFileId", "sealShortKey"]:
        assert r[name] == "malformed", name
    assert r["encodedLength"] == [256, 512]


# MARK: The owner's wrap (PROTOCOL 9.3)

def test_owner_wrap_vector_and_binding(page):
    v = CIRCLE_VECTORS
    # The vault vector's owner and vmk are the bundle vector's, so unlockBundle's key must open it.
    assert v["vault.owner"] == v["bundle.userId"] and v["bundle.vmk"] == "03" * 32
    r = run(page, """
      const fileKey = x(v['vault.fileKey']), fileId = x(v['vault.fileId']), owner = v['vault.owner'];
      const vmk = x(v['bundle.vmk']), wrapped = x(v['vault.wrap']), nonce = x(v['vault.wrap.nonce']);
      const wrapKey = await V.vaultWrapKey(vmk);
      const bob = '00000000-0000-4000-8000-000000000002';
      const unwrap = (w, o, id, k) => refusal(() => V.unwrapFileKey(w, o, id, k));
      const bundle = await P.account.openBundle(x(v['login.kek']), x(v['bundle.sealed']), v['bundle.userId']);
      const unlocked = await P.account.unlockBundle(bundle, { userId: v['bundle.userId'],
        identityKey: x(v['bundle.identityPublic']), x25519Key: x(v['bundle.x25519Public']) });
      const otherKey = V.generateFileKey();
      const rawWrapKey = await Pr.hkdf(vmk, B.utf8('circle/v1/vault/wrap'), 32);
      return {
        withVmk: h(await V.wrapFileKey(fileKey, owner, fileId, vmk, nonce)),
        withWrapKey: h(await V.wrapFileKey(fileKey, owner, fileId, wrapKey, nonce)),
        byHand: h(await Pr.aesGcmSeal(rawWrapKey, fileKey, cat(B.utf8(owner), fileId), nonce)),
        unwrapVmk: h(await V.unwrapFileKey(wrapped, owner, fileId, vmk)),
        unwrapKey: h(await V.unwrapFileKey(wrapped, owner, fileId, wrapKey)),
        unlocked: h(await V.unwrapFileKey(wrapped, owner, fileId, unlocked.vaultWrapKey)),
        unlockedExtractable: [unlocked.vaultWrapKey.extractable, wrapKey.extractable, wrapKey.algorithm.name],
        fresh: h(await V.unwrapFileKey(await V.wrapFileKey(otherKey, bob, fileId, wrapKey), bob, fileId, vmk)) === h(otherKey),
        otherOwner: await unwrap(wrapped, bob, fileId, vmk),
        otherFileId: await unwrap(wrapped, owner, flip(fileId, 0), vmk),
        otherVmk: await unwrap(wrapped, owner, fileId, flip(vmk, 31)),
        tampered: await unwrap(flip(wrapped, 30), owner, fileId, vmk),
        notAUserId: await unwrap(wrapped, 'alice', fileId, vmk),
        notAUserIdUpper: await unwrap(wrapped, '0000000A-0000-4000-8000-000000000001', fileId, vmk),
        shortFileId: await unwrap(wrapped, owner, fileId.subarray(1), vmk),
        shortVmk: await unwrap(wrapped, owner, fileId, vmk.subarray(1)),
        wrapShortKey: await refusal(() => V.wrapFileKey(fileKey.subarray(1), owner, fileId, vmk)),
        notAWrappedKey: await unwrap(await Pr.aesGcmSeal(rawWrapKey, new Uint8Array(31), cat(B.utf8(owner), fileId)), owner, fileId, vmk),
        pinsKeyIsNotTheWrapKey: await unwrap(wrapped, owner, fileId, unlocked.pinsKey),
      };
    """)
    assert r["withVmk"] == r["withWrapKey"] == r["byHand"] == v["vault.wrap"]
    assert r["unwrapVmk"] == r["unwrapKey"] == r["unlocked"] == v["vault.fileKey"]
    assert r["unlockedExtractable"] == [False, False, "AES-GCM"]
    assert r["fresh"] is True
    assert r["otherOwner"] == r["otherFileId"] == r["otherVmk"] == r["tampered"] == "decryption-failed"
    assert r["notAUserId"] == r["notAUserIdUpper"] == r["shortFileId"] == r["shortVmk"] == r["wrapShortKey"] == "malformed"
    assert r["notAWrappedKey"] == "malformed"
    assert r["pinsKeyIsNotTheWrapKey"] == "decryption-failed"


# MARK: Share links (PROTOCOL 9.5)

def test_link_vectors_with_and_without_password(page):
    r = run(page, """
      const linkKey = x(v['vault.link.key']), linkId = x(v['vault.link.id']), salt = x(v['vault.link.salt']);
      const fileKey = x(v['vault.fileKey']), password = v['vault.link.password'];
      const secrets = await V.linkSecrets(linkKey, password, salt);
      const explicit = await V.linkSecrets(linkKey, password, salt, 600000);
      const open = await V.linkSecrets(linkKey);
      const openNull = await V.linkSecrets(linkKey, null, salt);
      const wrapped = x(v['vault.link.wrap']);
      const wrong = await V.linkSecrets(linkKey, 'open sesamE', salt);
      const otherSalt = await V.linkSecrets(linkKey, password, flip(salt, 0));
      const emptyPassword = await V.linkSecrets(linkKey, '', salt);
      const nfc = await V.linkSecrets(linkKey, 'caf\\u00e9', salt), nfd = await V.linkSecrets(linkKey, 'cafe\\u0301', salt);
      const openWrap = await V.wrapForLink(fileKey, linkId, open);
      const unwrap = (w, id, s) => refusal(() => V.unwrapFromLink(w, id, s));
      // By hand: linkKey || PBKDF2(NFC(password), salt, 600000, 32), then HKDF with each label.
      const material = cat(linkKey, await Pr.pbkdf2(B.utf8(password), salt, 600000, 32));
      const link = V.generateLink();
      return {
        access: h(secrets.access), unwrapKey: h(secrets.unwrapKey), verifier: h(secrets.verifier),
        explicitSame: h(explicit.access) === h(secrets.access),
        byHand: [h(await Pr.hkdf(material, B.utf8('circle/v1/vault/link-access'), 32)),
                 h(await Pr.hkdf(material, B.utf8('circle/v1/vault/link-unwrap'), 32))],
        wrap: h(await V.wrapForLink(fileKey, linkId, secrets, x(v['vault.link.nonce']))),
        unwrapped: h(await V.unwrapFromLink(wrapped, linkId, secrets)),
        noPassword: { access: h(open.access), unwrapKey: h(open.unwrapKey), verifier: h(open.verifier),
                      nullSame: h(openNull.access) === h(open.access) },
        openRoundTrip: h(await V.unwrapFromLink(openWrap, linkId, open)),
        wrongPassword: await unwrap(wrapped, linkId, wrong),
        wrongPasswordAccess: h(wrong.access) !== h(secrets.access),
        otherSalt: await unwrap(wrapped, linkId, otherSalt),
        noPasswordGiven: await unwrap(wrapped, linkId, open),
        passwordOnOpenLink: await unwrap(openWrap, linkId, secrets),
        otherLinkId: await unwrap(wrapped, flip(linkId, 15), secrets),
        otherLinkKey: await unwrap(openWrap, linkId, await V.linkSecrets(flip(linkKey, 0))),
        tampered: await unwrap(flip(wrapped, 13), linkId, secrets),
        emptyPasswordIsAPassword: h(emptyPassword.access) !== h(open.access),
        nfcSame: h(nfc.access) === h(nfd.access) && h(nfc.unwrapKey) === h(nfd.unwrapKey),
        below: await refusal(() => V.linkSecrets(linkKey, password, salt, 599999)),
        above: await refusal(() => V.linkSecrets(linkKey, password, salt, 10000001)),
        fraction: await refusal(() => V.linkSecrets(linkKey, password, salt, 600000.5)),
        noSalt: await refusal(() => V.linkSecrets(linkKey, password)),
        shortSalt: await refusal(() => V.linkSecrets(linkKey, password, salt.subarray(1))),
        shortLinkKey: await refusal(() => V.linkSecrets(linkKey.subarray(1))),
        shortLinkId: await refusal(() => V.wrapForLink(fileKey, linkId.subarray(1), secrets)),
        wrapShortFileKey: await refusal(() => V.wrapForLink(fileKey.subarray(1), linkId, secrets)),
        generated: [link.linkId.length, link.linkKey.length, V.generateFileId().length, V.generateFileKey().length,
                    h(V.generateFileKey()) !== h(V.generateFileKey()), V.generateLinkSalt().length],
      };
    """)
    v = CIRCLE_VECTORS
    assert r["access"] == v["vault.link.access"]
    assert r["unwrapKey"] == v["vault.link.unwrapKey"]
    assert r["verifier"] == v["vault.link.verifier"] == hashlib.sha256(bytes.fromhex(v["vault.link.access"])).hexdigest()
    assert r["explicitSame"] is True
    assert r["byHand"] == [v["vault.link.access"], v["vault.link.unwrapKey"]]
    assert r["wrap"] == v["vault.link.wrap"]
    assert r["unwrapped"] == v["vault.fileKey"]
    assert r["noPassword"] == {
        "access": v["vault.link.noPassword.access"], "unwrapKey": v["vault.link.noPassword.unwrapKey"],
        "verifier": hashlib.sha256(bytes.fromhex(v["vault.link.noPassword.access"])).hexdigest(), "nullSame": True,
    }
    assert r["openRoundTrip"] == v["vault.fileKey"]
    for name in ["wrongPassword", "otherSalt", "noPasswordGiven", "passwordOnOpenLink", "otherLinkId", "otherLinkKey", "tampered"]:
        assert r[name] == "decryption-failed", name
    assert r["wrongPasswordAccess"] is True and r["emptyPasswordIsAPassword"] is True and r["nfcSame"] is True
    assert r["below"] == r["above"] == r["fraction"] == "refused-kdf"
    assert r["noSalt"] == r["shortSalt"] == r["shortLinkKey"] == r["shortLinkId"] == r["wrapShortFileKey"] == "malformed"
    assert r["generated"] == [16, 32, 16, 32, True, 16]


# MARK: Incremental SHA-256

def test_incremental_sha256_equals_webcrypto(page):
    r = run(page, """
      const sizes = [0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 4095, 65536, 1000003, 5 * 1024 * 1024 + 3];
      const out = [];
      for (const n of sizes) {
        const data = B.random(n);
        const expected = h(await Pr.sha256(data));
        const whole = h(new V.Sha256().update(data).digest());
        // Random piece sizes, including empty pieces and pieces across block boundaries.
        const hasher = new V.Sha256();
        for (let o = 0; o < n;) {
          const step = Math.floor(Math.random() * (Math.random() < 0.5 ? 130 : 200000));
          hasher.update(data.subarray(o, o + step));
          o += step;
        }
        out.push([n, whole === expected, h(hasher.digest()) === expected, h(V.Sha256.hash(data)) === expected]);
      }
      const spent = new V.Sha256(); spent.update(B.utf8('abc')); spent.digest();
      const million = new V.Sha256(); const a = new Uint8Array(1000).fill(0x61);
      for (let i = 0; i < 1000; i++) million.update(a);
      return {
        out,
        abc: h(V.Sha256.hash(B.utf8('abc'))),
        empty: h(new V.Sha256().digest()),
        million: h(million.digest()),
        stream: h(V.Sha256.hash(x(v['vault.stream']))),
        spent: [(() => { try { spent.update(new Uint8Array(1)); return 'accepted'; } catch (e) { return e.constructor.name; } })(),
                (() => { try { spent.digest(); return 'accepted'; } catch (e) { return e.constructor.name; } })()],
      };
    """)
    for n, whole, pieces, hashed in r["out"]:
        assert (whole, pieces, hashed) == (True, True, True), n
    assert len(r["out"]) == 18
    assert r["abc"] == hashlib.sha256(b"abc").hexdigest()
    assert r["empty"] == hashlib.sha256(b"").hexdigest()
    assert r["million"] == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0"
    assert r["stream"] == hashlib.sha256(bytes.fromhex(CIRCLE_VECTORS["vault.stream"])).hexdigest()
    assert r["spent"] == ["Error", "Error"]


# MARK: The module itself

EXPORTS = {
    "CHUNK_SIZE", "TAG_SIZE", "SALT_SIZE", "HEADER_SIZE", "VERSION", "FILE_KEY_SIZE", "FILE_ID_SIZE", "LINK_ID_SIZE",
    "LINK_KEY_SIZE", "LINK_SALT_SIZE", "LINK_ITERATIONS", "MAXIMUM_LINK_ITERATIONS", "MAXIMUM_NAME", "MAXIMUM_TYPE",
    "METADATA_BUCKET", "padme", "chunkCount", "ciphertextLength", "isValidLength", "StreamSealer", "StreamOpener",
    "encodeMetadata", "decodeMetadata", "sealMetadata", "openMetadata", "vaultWrapKey", "wrapFileKey", "unwrapFileKey",
    "linkSecrets", "wrapForLink", "unwrapFromLink", "generateFileKey", "generateFileId", "generateLink",
    "generateLinkSalt", "Sha256",
}


def test_exports_and_index_namespace(page):
    r = run(page, """
      return { names: Object.keys(V).sort(), same: P.vault.StreamSealer === V.StreamSealer && P.vault.Sha256 === V.Sha256 };
    """)
    assert set(r["names"]) == EXPORTS
    assert r["same"] is True


def test_module_is_plain():
    """WebCrypto and the sibling modules only: no eval, no dynamic code, no other imports, no logging."""
    text = VAULT_JS.read_text()
    for forbidden in [r"\beval\s*\(", r"new\s+Function\b", r"console\.", r"\bimport\s*\(", r"https?://", r"innerHTML"]:
        assert not re.search(forbidden, text), forbidden
    imports = re.findall(r"^import .* from '([^']+)';$", text, re.M)
    assert sorted(imports) == ["./bytes.js", "./primitives.js"]
