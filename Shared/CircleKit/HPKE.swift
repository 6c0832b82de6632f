import CircleProtocol
import Crypto
import Foundation

/// HPKE (RFC 9180) base mode for Circle's one suite: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256,
/// AES-256-GCM. Written out step by step, as the browser implements it over WebCrypto, so the
/// two can be held to the same vectors; checked against swift-crypto's HPKE in the tests.
public enum CircleHPKE {
    static let kemID: [UInt8] = [0x00, 0x20]
    static let kdfID: [UInt8] = [0x00, 0x01]
    static let aeadID: [UInt8] = [0x00, 0x02]
    static let kemSuite: [UInt8] = Array("KEM".utf8) + kemID
    static let hpkeSuite: [UInt8] = Array("HPKE".utf8) + kemID + kdfID + aeadID
    static let version: [UInt8] = Array("HPKE-v1".utf8)

    /// What the sender sends: the encapsulated key and the ciphertexts in order.
    public struct Sealed: Equatable, Sendable {
        public let enc: [UInt8]
        public let ciphertexts: [[UInt8]]
    }

    /// The key schedule's outputs (exposed for the vectors).
    public struct Context: Equatable, Sendable {
        public let sharedSecret: [UInt8]
        public let key: [UInt8]
        public let baseNonce: [UInt8]
        public let exporterSecret: [UInt8]

        /// The nonce of the `sequence`-th message: base nonce XOR the big-endian counter.
        public func nonce(_ sequence: UInt64) -> [UInt8] {
            var nonce = baseNonce
            for index in 0..<8 { nonce[11 - index] ^= UInt8(truncatingIfNeeded: sequence >> (8 * UInt64(index))) }
            return nonce
        }

        public func seal(_ plaintext: [UInt8], aad: [UInt8], sequence: UInt64) throws -> [UInt8] {
            let box = try AES.GCM.seal(plaintext, using: SymmetricKey(data: key), nonce: AES.GCM.Nonce(data: nonce(sequence)), authenticating: aad)
            return Array(box.ciphertext) + Array(box.tag)
        }

        public func open(_ ciphertext: [UInt8], aad: [UInt8], sequence: UInt64) throws -> [UInt8] {
            guard ciphertext.count >= 16 else { throw ProtocolError.decryptionFailed }
            let box = try AES.GCM.SealedBox(nonce: AES.GCM.Nonce(data: nonce(sequence)), ciphertext: ciphertext.dropLast(16), tag: ciphertext.suffix(16))
            do {
                return Array(try AES.GCM.open(box, using: SymmetricKey(data: key), authenticating: aad))
            } catch {
                throw ProtocolError.decryptionFailed
            }
        }
    }

    // MARK: Labeled HKDF (RFC 9180 section 4)

    static func labeledExtract(suite: [UInt8], salt: [UInt8], label: String, ikm: [UInt8]) -> [UInt8] {
        let labeled = version + suite + Array(label.utf8) + ikm
        return Array(HMAC<SHA256>.authenticationCode(for: labeled, using: SymmetricKey(data: salt.isEmpty ? [UInt8](repeating: 0, count: 32) : salt)))
    }

    static func labeledExpand(suite: [UInt8], prk: [UInt8], label: String, info: [UInt8], length: Int) -> [UInt8] {
        let labeledInfo = [UInt8(length >> 8), UInt8(length & 0xff)] + version + suite + Array(label.utf8) + info
        return HKDF<SHA256>.expand(pseudoRandomKey: prk, info: labeledInfo, outputByteCount: length).withUnsafeBytes { Array($0) }
    }

    // MARK: DHKEM(X25519, HKDF-SHA256)

    /// The X25519 key pair derived from `ikm` (DeriveKeyPair).
    public static func deriveKeyPair(ikm: [UInt8]) throws -> Curve25519.KeyAgreement.PrivateKey {
        let prk = labeledExtract(suite: kemSuite, salt: [], label: "dkp_prk", ikm: ikm)
        let sk = labeledExpand(suite: kemSuite, prk: prk, label: "sk", info: [], length: 32)
        return try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: sk)
    }

    /// X25519 with the explicit checks: the peer key must pass `KeyChecks`, and an all-zero
    /// result is refused.
    static func dh(_ privateKey: Curve25519.KeyAgreement.PrivateKey, _ publicKey: [UInt8]) throws -> [UInt8] {
        let peer = try Curve25519.KeyAgreement.PublicKey(rawRepresentation: publicKey)
        let shared = try privateKey.sharedSecretFromKeyAgreement(with: peer).withUnsafeBytes { Array($0) }
        guard shared.contains(where: { $0 != 0 }) else { throw ProtocolError.weakKey("the X25519 result is all zero") }
        return shared
    }

    static func extractAndExpand(dh: [UInt8], kemContext: [UInt8]) -> [UInt8] {
        let prk = labeledExtract(suite: kemSuite, salt: [], label: "eae_prk", ikm: dh)
        return labeledExpand(suite: kemSuite, prk: prk, label: "shared_secret", info: kemContext, length: 32)
    }

    static func keySchedule(sharedSecret: [UInt8], info: [UInt8]) -> Context {
        let pskIDHash = labeledExtract(suite: hpkeSuite, salt: [], label: "psk_id_hash", ikm: [])
        let infoHash = labeledExtract(suite: hpkeSuite, salt: [], label: "info_hash", ikm: info)
        let context = [0x00] + pskIDHash + infoHash
        let secret = labeledExtract(suite: hpkeSuite, salt: sharedSecret, label: "secret", ikm: [])
        return Context(
            sharedSecret: sharedSecret,
            key: labeledExpand(suite: hpkeSuite, prk: secret, label: "key", info: context, length: 32),
            baseNonce: labeledExpand(suite: hpkeSuite, prk: secret, label: "base_nonce", info: context, length: 12),
            exporterSecret: labeledExpand(suite: hpkeSuite, prk: secret, label: "exp", info: context, length: 32)
        )
    }

    /// SetupBaseS: the sender's context and `enc`. The ephemeral key is fresh unless given (vectors).
    public static func setupSender(
        recipient: [UInt8], info: [UInt8], ephemeral: Curve25519.KeyAgreement.PrivateKey = .init()
    ) throws -> (enc: [UInt8], context: Context) {
        let dh = try dh(ephemeral, recipient)
        let enc = Array(ephemeral.publicKey.rawRepresentation)
        return (enc, keySchedule(sharedSecret: extractAndExpand(dh: dh, kemContext: enc + recipient), info: info))
    }

    /// SetupBaseR: the recipient's context from `enc`.
    public static func setupRecipient(enc: [UInt8], recipient: Curve25519.KeyAgreement.PrivateKey, info: [UInt8]) throws -> Context {
        guard enc.count == 32 else { throw ProtocolError.malformed("enc must be 32 bytes") }
        let dh = try dh(recipient, enc)
        let kemContext = enc + Array(recipient.publicKey.rawRepresentation)
        return keySchedule(sharedSecret: extractAndExpand(dh: dh, kemContext: kemContext), info: info)
    }

    /// Single-shot seal to `recipient`.
    public static func seal(_ plaintext: [UInt8], to recipient: [UInt8], info: [UInt8], aad: [UInt8] = []) throws -> (enc: [UInt8], ciphertext: [UInt8]) {
        let (enc, context) = try setupSender(recipient: recipient, info: info)
        return (enc, try context.seal(plaintext, aad: aad, sequence: 0))
    }

    /// Single-shot open.
    public static func open(_ ciphertext: [UInt8], enc: [UInt8], recipient: Curve25519.KeyAgreement.PrivateKey, info: [UInt8], aad: [UInt8] = []) throws -> [UInt8] {
        try setupRecipient(enc: enc, recipient: recipient, info: info).open(ciphertext, aad: aad, sequence: 0)
    }
}
