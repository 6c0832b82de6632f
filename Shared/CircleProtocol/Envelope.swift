import CircleCrypto
import CircleProtocol
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

    public func checkShape() throws {
        guard convId.count == 32, epoch.count == 32, deviceId.count == 16, UserIdText.isValid(sender), UserIdText.isValid(recipient) else {
            throw ProtocolError.malformed("an envelope address field has the wrong length")
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

    /// Whether the sender's identity key signed exactly this address, enc and ciphertext.
    public func verify(senderIdentity: [UInt8]) -> Bool {
        KeyChecks.verify(signature: signature, message: Self.signatureLabel + address.info + enc + ciphertext, publicKey: senderIdentity)
    }
}
