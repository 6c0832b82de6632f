"""An "invisible salamander" for Circle messages (docs/PROTOCOL.md section 6): one AES-GCM
ciphertext and tag that open under two different chain keys, sealed and signed as a message.

Without the key commitment a sender could give two members these two chain keys in their
envelopes and show each a different text under one signature; with it, the message opens under
chain key A only and every receiver holding B refuses it. Both clients are tested against the
file this writes (Tests/CircleProtocolTests/MessageTests.swift, Tests/Web/test_protocol_vectors.py).

The construction (Dodis, Grubbs, Ristenpart, Woodage, "Fast Message Franking", 2018): GHASH is
linear in each ciphertext block, so with every block but one fixed, the remaining block is the
solution of one equation in GF(2^128) that makes both keys' tags equal.

    python3 Tests/Vectors/salamander.py          writes Tests/Vectors/salamander.json
    python3 Tests/Vectors/salamander.py --check  exits 1 unless the file is what it would write
"""
import hashlib
import hmac
import json
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

HERE = Path(__file__).resolve().parent
OUT = HERE / "salamander.json"

# GF(2^128) as GCM uses it: bit 0 is the most significant bit of the first byte.
R = 0xE1 << 120
ONE = 1 << 127


def gf_mul(x: int, y: int) -> int:
    z, v = 0, y
    for i in range(128):
        if (x >> (127 - i)) & 1:
            z ^= v
        v = (v >> 1) ^ R if v & 1 else v >> 1
    return z


def gf_pow(x: int, e: int) -> int:
    result = ONE
    while e:
        if e & 1:
            result = gf_mul(result, x)
        x = gf_mul(x, x)
        e >>= 1
    return result


def gf_inv(x: int) -> int:
    return gf_pow(x, (1 << 128) - 2)


def block(b: bytes) -> int:
    return int.from_bytes(b, "big")


def aes_block(key: bytes, data: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def blocks_of(data: bytes):
    padded = data + b"\0" * (-len(data) % 16)
    return [block(padded[i:i + 16]) for i in range(0, len(padded), 16)]


def ghash_terms(aad: bytes, ciphertext: bytes):
    """The GHASH input blocks (aad, ciphertext, lengths) in order."""
    lengths = (len(aad) * 8).to_bytes(8, "big") + (len(ciphertext) * 8).to_bytes(8, "big")
    return blocks_of(aad) + blocks_of(ciphertext) + [block(lengths)]


def ghash(h: int, terms) -> int:
    x = 0
    for term in terms:
        x = gf_mul(x ^ term, h)
    return x


def keystream(key: bytes, nonce: bytes, count: int) -> bytes:
    return b"".join(aes_block(key, nonce + (2 + i).to_bytes(4, "big")) for i in range(count))


def hkdf(ikm: bytes, info: bytes, length: int) -> bytes:
    prk = hmac.new(b"", ikm, hashlib.sha256).digest()
    out, previous, counter = b"", b"", 1
    while len(out) < length:
        previous = hmac.new(prk, previous + info + bytes([counter]), hashlib.sha256).digest()
        out += previous
        counter += 1
    return out[:length]


def message_keys(chain_key: bytes):
    """key, nonce and commitment of message 0 of a chain (PROTOCOL 6)."""
    mk = hmac.new(chain_key, b"\x01", hashlib.sha256).digest()
    material = hkdf(mk, b"circle/v1/msg", 44)
    return material[:32], material[32:], hkdf(mk, b"circle/v1/msg-commit", 32)


def build() -> dict:
    vectors = json.loads((HERE / "circle-v1.json").read_text())
    header = bytes.fromhex(vectors["header.bytes"])
    identity = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(vectors["bundle.identitySeed"]))
    chain_a, chain_b = bytes([0x05]) * 32, bytes([0x15]) * 32
    key_a, nonce_a, commitment_a = message_keys(chain_a)
    key_b, nonce_b, _ = message_keys(chain_b)

    # What A reads: a text in the smallest bucket (5 + 59 = 64 bytes, no zeros), whose last 16
    # content bytes are the block solved for below.
    text = b"Meet at the north gate at nine, not at ten"
    text = text + b"." * (43 - len(text))
    chosen = bytes([1]) + (59).to_bytes(4, "big") + text
    stream_a, stream_b = keystream(key_a, nonce_a, 4), keystream(key_b, nonce_b, 4)
    free = 3
    ciphertext = bytearray(bytes(x ^ y for x, y in zip(chosen, stream_a)) + b"\0" * 16)

    h_a, h_b = block(aes_block(key_a, b"\0" * 16)), block(aes_block(key_b, b"\0" * 16))
    s_a = block(aes_block(key_a, nonce_a + b"\0\0\0\x01"))
    s_b = block(aes_block(key_b, nonce_b + b"\0\0\0\x01"))
    terms = ghash_terms(header, bytes(ciphertext))
    count = len(terms)
    index = len(blocks_of(header)) + free
    # sum_j t_j (h_a^(count-j) + h_b^(count-j)) = s_a + s_b, solved for the free block's t.
    coefficient = lambda j: gf_pow(h_a, count - j) ^ gf_pow(h_b, count - j)  # noqa: E731
    rest = 0
    for j, term in enumerate(terms):
        if j != index:
            rest ^= gf_mul(term, coefficient(j))
    solved = gf_mul(s_a ^ s_b ^ rest, gf_inv(coefficient(index)))
    ciphertext[16 * free:16 * free + 16] = solved.to_bytes(16, "big")
    ciphertext = bytes(ciphertext)
    tag = (ghash(h_a, ghash_terms(header, ciphertext)) ^ s_a).to_bytes(16, "big")
    assert tag == (ghash(h_b, ghash_terms(header, ciphertext)) ^ s_b).to_bytes(16, "big")

    aead = ciphertext + tag
    padded_a = AESGCM(key_a).decrypt(nonce_a, aead, header)
    padded_b = AESGCM(key_b).decrypt(nonce_b, aead, header)
    assert padded_a != padded_b and padded_a[:48] == chosen[:48]
    sealed = aead + commitment_a
    signature = identity.sign(b"circle/v1/msg-sig" + header + sealed)
    public = identity.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert public.hex() == vectors["bundle.identityPublic"]
    return {
        "about": "One AES-GCM ciphertext opening under two chain keys (Tests/Vectors/salamander.py); with the key commitment only chainKeyA opens the message.",
        "header": header.hex(),
        "identityPublic": public.hex(),
        "chainKeyA": chain_a.hex(),
        "chainKeyB": chain_b.hex(),
        "keyA": key_a.hex(), "nonceA": nonce_a.hex(),
        "keyB": key_b.hex(), "nonceB": nonce_b.hex(),
        "aead": aead.hex(),
        "paddedA": padded_a.hex(),
        "paddedB": padded_b.hex(),
        "ciphertext": sealed.hex(),
        "signature": signature.hex(),
    }


def main() -> int:
    text = json.dumps(build(), indent=2, sort_keys=True) + "\n"
    if "--check" in sys.argv[1:]:
        return 0 if OUT.exists() and OUT.read_text() == text else 1
    OUT.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
