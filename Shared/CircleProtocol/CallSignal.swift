import CircleCrypto

/// Who sends one call signal to whom (PROTOCOL 10): the call, both members and both devices,
/// and the sender's sequence number. The relay fills every field but `seq` from what it
/// authenticated; the recipient rebuilds the info from them and its own identity.
///
/// ```
/// info      = "circle/v1/call-signal" || callId (16) || sender (36) || senderDevice (16)
///          || recipient (36) || recipientDevice (16) || u64(seq)
/// enc, ct   = HPKE base mode (PROTOCOL 4) to the recipient's certified X25519 key, with info, empty aad
/// signature = Ed25519(sender identity, "circle/v1/call-sig" || info || enc || ct)
/// wire      = u8(1) || u64(seq) || enc (32) || ct || signature (64)
/// ```
public struct CallSignalAddress: Sendable, Equatable, Hashable {
    public var callId: [UInt8]
    public var sender: String
    public var senderDevice: [UInt8]
    public var recipient: String
    public var recipientDevice: [UInt8]
    public var seq: UInt64

    public init(callId: [UInt8], sender: String, senderDevice: [UInt8], recipient: String, recipientDevice: [UInt8], seq: UInt64) {
        self.callId = callId
        self.sender = sender
        self.senderDevice = senderDevice
        self.recipient = recipient
        self.recipientDevice = recipientDevice
        self.seq = seq
    }

    public static let infoLabel = Array("circle/v1/call-signal".utf8)

    public var info: [UInt8] {
        var writer = ByteWriter()
        writer.raw(Self.infoLabel)
        writer.raw(callId)
        writer.raw(Array(sender.utf8))
        writer.raw(senderDevice)
        writer.raw(Array(recipient.utf8))
        writer.raw(recipientDevice)
        writer.u64(seq)
        return writer.bytes
    }

    public func checkShape() throws {
        guard callId.count == 16, senderDevice.count == 16, recipientDevice.count == 16, UserIdText.isValid(sender), UserIdText.isValid(recipient) else {
            throw ProtocolError.malformed("a call signal address field has the wrong length")
        }
    }
}

/// One sealed, signed call signal as it travels (PROTOCOL 10). The server checks only this
/// shape; it cannot read the signal, and a signal it altered or re-signed fails the recipient's
/// check.
public struct CallSignalWire: Sendable, Equatable {
    public static let version: UInt8 = 1
    public static let signatureLabel = Array("circle/v1/call-sig".utf8)
    /// The largest sealed plaintext: an SDP with many codecs and candidates fits.
    public static let maximumPlaintext = 48 * 1024
    /// AES-GCM's tag.
    static let tagLength = 16
    /// version, seq, enc, the tag and the signature.
    public static let overhead = 1 + 8 + 32 + tagLength + 64

    public let seq: UInt64
    public let enc: [UInt8]
    public let ciphertext: [UInt8]
    public let signature: [UInt8]

    public init(seq: UInt64, enc: [UInt8], ciphertext: [UInt8], signature: [UInt8]) {
        self.seq = seq
        self.enc = enc
        self.ciphertext = ciphertext
        self.signature = signature
    }

    public var bytes: [UInt8] {
        var writer = ByteWriter()
        writer.u8(Self.version)
        writer.u64(seq)
        writer.raw(enc)
        writer.raw(ciphertext)
        writer.raw(signature)
        return writer.bytes
    }

    /// Reads the wire form; refuses another version or a length outside what a signal can be.
    public init(bytes: [UInt8]) throws {
        guard bytes.count > Self.overhead, bytes.count <= Self.overhead + Self.maximumPlaintext else {
            throw ProtocolError.malformed("a call signal is \(Self.overhead + 1) to \(Self.overhead + Self.maximumPlaintext) bytes")
        }
        var reader = ByteReader(bytes)
        guard try reader.u8() == Self.version else { throw ProtocolError.malformed("unknown call signal version") }
        seq = try reader.u64()
        enc = try reader.raw(32)
        ciphertext = try reader.raw(bytes.count - Self.overhead + Self.tagLength)
        signature = try reader.raw(64)
        try reader.finish()
    }

    /// Whether the sender's identity key signed exactly this address (with this wire's `seq`),
    /// enc and ciphertext.
    public func verify(address: CallSignalAddress, senderIdentity: [UInt8]) -> Bool {
        guard address.seq == seq else { return false }
        return KeyChecks.verify(signature: signature, message: Self.signatureLabel + address.info + enc + ciphertext, publicKey: senderIdentity)
    }
}
