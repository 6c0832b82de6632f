import CircleCore
import CircleKit
import CircleProtocol
import Crypto
import Foundation
import Testing

/// RFC 9180's vectors for Circle's suite, from Tests/Vectors/ (source named in its README).
@Suite("HPKE against the RFC 9180 vectors")
struct HPKEVectorTests {
    struct Vector: Decodable {
        let mode: Int
        let info: String
        let ikmR: String
        let ikmE: String
        let skRm: String
        let skEm: String
        let pkRm: String
        let pkEm: String
        let enc: String
        let shared_secret: String
        let key: String
        let base_nonce: String
        let exporter_secret: String
        let encryptions: [Encryption]
    }

    struct Encryption: Decodable {
        let aad: String
        let ct: String
        let nonce: String
        let pt: String
    }

    static func vectors() throws -> [Vector] {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let file = root.appendingPathComponent("Tests/Vectors/hpke-x25519-sha256-aes256gcm.json")
        return try JSONDecoder().decode([Vector].self, from: Data(contentsOf: file))
    }

    static func hex(_ text: String) -> [UInt8] { Hex.decode(text)! }

    @Test("the base-mode vector: derived keys, enc, key schedule and every ciphertext match byte for byte")
    func baseMode() throws {
        let vector = try #require(try Self.vectors().first { $0.mode == 0 })
        let h = Self.hex
        let recipient = try CircleHPKE.deriveKeyPair(ikm: h(vector.ikmR))
        let ephemeral = try CircleHPKE.deriveKeyPair(ikm: h(vector.ikmE))
        #expect(Array(recipient.rawRepresentation) == h(vector.skRm))
        #expect(Array(ephemeral.rawRepresentation) == h(vector.skEm))
        #expect(Array(recipient.publicKey.rawRepresentation) == h(vector.pkRm))

        let (enc, sender) = try CircleHPKE.setupSender(recipient: h(vector.pkRm), info: h(vector.info), ephemeral: ephemeral)
        #expect(enc == h(vector.enc))
        #expect(enc == h(vector.pkEm))
        #expect(sender.sharedSecret == h(vector.shared_secret))
        #expect(sender.key == h(vector.key))
        #expect(sender.baseNonce == h(vector.base_nonce))
        #expect(sender.exporterSecret == h(vector.exporter_secret))

        let receiver = try CircleHPKE.setupRecipient(enc: enc, recipient: recipient, info: h(vector.info))
        #expect(receiver == sender)
        for (sequence, encryption) in vector.encryptions.enumerated() {
            #expect(sender.nonce(UInt64(sequence)) == h(encryption.nonce))
            #expect(try sender.seal(h(encryption.pt), aad: h(encryption.aad), sequence: UInt64(sequence)) == h(encryption.ct))
            #expect(try receiver.open(h(encryption.ct), aad: h(encryption.aad), sequence: UInt64(sequence)) == h(encryption.pt))
        }
    }

    @Test("swift-crypto's HPKE opens the vector's ciphertexts and interoperates with ours both ways")
    func swiftCryptoAgrees() throws {
        let vector = try #require(try Self.vectors().first { $0.mode == 0 })
        let h = Self.hex
        let suite = HPKE.Ciphersuite(kem: .Curve25519_HKDF_SHA256, kdf: .HKDF_SHA256, aead: .AES_GCM_256)
        let recipientKey = try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: h(vector.skRm))
        var theirs = try HPKE.Recipient(privateKey: recipientKey, ciphersuite: suite, info: Data(h(vector.info)), encapsulatedKey: Data(h(vector.enc)))
        for encryption in vector.encryptions {
            #expect(Array(try theirs.open(h(encryption.ct), authenticating: h(encryption.aad))) == h(encryption.pt))
        }

        let info = Array("circle/v1/envelope test".utf8)
        let ours = try CircleHPKE.seal(Array("to swift-crypto".utf8), to: Array(recipientKey.publicKey.rawRepresentation), info: info, aad: [1, 2])
        var opener = try HPKE.Recipient(privateKey: recipientKey, ciphersuite: suite, info: Data(info), encapsulatedKey: Data(ours.enc))
        #expect(Array(try opener.open(ours.ciphertext, authenticating: [1, 2])) == Array("to swift-crypto".utf8))

        var sender = try HPKE.Sender(recipientKey: recipientKey.publicKey, ciphersuite: suite, info: Data(info))
        let sealed = try sender.seal(Array("from swift-crypto".utf8), authenticating: [3])
        #expect(try CircleHPKE.open(Array(sealed), enc: Array(sender.encapsulatedKey), recipient: recipientKey, info: info, aad: [3]) == Array("from swift-crypto".utf8))
    }

    @Test("a wrong info, aad, key or a flipped byte fails to open; an all-zero X25519 result is refused")
    func negative() throws {
        let recipient = Curve25519.KeyAgreement.PrivateKey()
        let info = Array("info".utf8)
        let sealed = try CircleHPKE.seal([1, 2, 3], to: Array(recipient.publicKey.rawRepresentation), info: info, aad: [9])
        #expect(throws: ProtocolError.decryptionFailed) { try CircleHPKE.open(sealed.ciphertext, enc: sealed.enc, recipient: recipient, info: Array("other".utf8), aad: [9]) }
        #expect(throws: ProtocolError.decryptionFailed) { try CircleHPKE.open(sealed.ciphertext, enc: sealed.enc, recipient: recipient, info: info, aad: [8]) }
        #expect(throws: ProtocolError.decryptionFailed) { try CircleHPKE.open(sealed.ciphertext, enc: sealed.enc, recipient: .init(), info: info, aad: [9]) }
        for index in sealed.ciphertext.indices {
            var flipped = sealed.ciphertext
            flipped[index] ^= 0x01
            #expect(throws: ProtocolError.decryptionFailed) { try CircleHPKE.open(flipped, enc: sealed.enc, recipient: recipient, info: info, aad: [9]) }
        }
        // enc = a point of small order: the shared secret would be all zero.
        #expect(throws: (any Error).self) { try CircleHPKE.open(sealed.ciphertext, enc: [UInt8](repeating: 0, count: 32), recipient: recipient, info: info, aad: [9]) }
        #expect(throws: (any Error).self) { try CircleHPKE.seal([1], to: [1] + [UInt8](repeating: 0, count: 31), info: info) }
    }
}
