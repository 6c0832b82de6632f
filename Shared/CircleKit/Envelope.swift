import CircleCrypto
import Crypto

/// A sender chain's key sealed to one member (PROTOCOL 7).
///
/// ```
/// info      = "circle/v1/envelope" || convId (32) || epoch (32) || senderUserId (36)
///          || deviceId (16) || u32(generation) || recipientUserId (36)
/// plaintext = u8(1) || ck (32) || u32(startIndex)
/// enc, ct   = HPKE base mode (PROTOCOL 4) to the recipient's certified X25519 key, with info, empty aad
/// signature = Ed25519(sender identity, "circle/v1/env-sig" || info || enc || ct)
/// ```
/// `generation` numbers the chains one device starts within one epoch (a chain ends after 1,000
/// messages, or when local state is in doubt); at most one envelope exists per (conversation,
/// epoch, sender, device, generation, recipient).
public struct EnvelopeAddress: Sendable, Equatable, Hashable {
    public var convId: [UInt8]
    public var epoch: [UInt8]
    public var sender: String
    public var deviceId: [UInt8]
    public var generation: UInt32
    public var recipient: String

    public init(convId: [UInt8], epoch: [UInt8], sender: String, deviceId: [UInt8], generation: UInt32, recipient: String) {
        self.convId = convId
        self.epoch = epoch
        self.sender = sender
        self.deviceId = deviceId
        self.generation = generation
        self.recipient = recipient
    }

    public static let infoLabel = Array("circle/v1/envelope".utf8)

    public var info: [UInt8] {
        var writer = ByteWriter()
        writer.u32(generation)
        return Self.infoLabel + convId + epoch + Array(sender.utf8) + deviceId + writer.bytes + Array(recipient.utf8)
    }

    func checkShape() throws {
        guard convId.count == 32, epoch.count == 32, deviceId.count == 16, UserIdText.isValid(sender), UserIdText.isValid(recipient) else {
            throw CircleKitError.malformed("an envelope address field has the wrong length")
        }
    }
}

public struct Envelope: Sendable, Equatable {
    public static let version: UInt8 = 1
    public static let signatureLabel = Array("circle/v1/env-sig".utf8)

    public let address: EnvelopeAddress
    public let enc: [UInt8]
    public let ciphertext: [UInt8]
    public let signature: [UInt8]

    public init(address: EnvelopeAddress, enc: [UInt8], ciphertext: [UInt8], signature: [UInt8]) {
        self.address = address
        self.enc = enc
        self.ciphertext = ciphertext
        self.signature = signature
    }

    /// Seals `chain` (its key and start index) to `recipientX25519`, which the caller has
    /// checked: certified by the recipient's pinned identity key, member at head.
    public static func seal(chainKey: [UInt8], startIndex: UInt32, to recipientX25519: [UInt8], address: EnvelopeAddress,
                            signer: Curve25519.Signing.PrivateKey) throws -> Envelope {
        try address.checkShape()
        guard chainKey.count == 32 else { throw CircleKitError.malformed("a chain key is 32 bytes") }
        _ = try KeyChecks.x25519PublicKey(recipientX25519)
        guard startIndex < SenderChain.maximumMessages else { throw CircleKitError.malformed("start index beyond the chain") }
        var plaintext = ByteWriter()
        plaintext.u8(version)
        plaintext.raw(chainKey)
        plaintext.u32(startIndex)
        let info = address.info
        let (enc, ciphertext) = try CircleHPKE.seal(plaintext.bytes, to: recipientX25519, info: info)
        let signature = Array(try signer.signature(for: signatureLabel + info + enc + ciphertext))
        return Envelope(address: address, enc: enc, ciphertext: ciphertext, signature: signature)
    }

    /// Whether the sender's identity key signed exactly this address, enc and ciphertext.
    public func verify(senderIdentity: [UInt8]) -> Bool {
        KeyChecks.verify(signature: signature, message: Self.signatureLabel + address.info + enc + ciphertext, publicKey: senderIdentity)
    }

    /// Checks the sender's signature first, then opens with the recipient's key: the chain key
    /// and its start index. A wrong address (another conversation, epoch, sender or recipient)
    /// fails both checks.
    public func open(senderIdentity: [UInt8], recipient: Curve25519.KeyAgreement.PrivateKey) throws -> SenderChain {
        try address.checkShape()
        let info = address.info
        guard verify(senderIdentity: senderIdentity) else { throw CircleKitError.badSignature("envelope") }
        let plaintext: [UInt8]
        do {
            plaintext = try CircleHPKE.open(ciphertext, enc: enc, recipient: recipient, info: info)
        } catch let error as CircleKitError {
            throw error
        } catch {
            throw CircleKitError.decryptionFailed
        }
        var reader = ByteReader(plaintext)
        guard try reader.u8() == Self.version else { throw CircleKitError.malformed("unknown envelope version") }
        let key = try reader.raw(32)
        let start = try reader.u32()
        try reader.finish()
        guard start < SenderChain.maximumMessages else { throw CircleKitError.malformed("start index beyond the chain") }
        return SenderChain(chainKey: key, index: start)
    }
}
