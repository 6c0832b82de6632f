import CircleCore
import CircleCrypto
import Crypto

/// A message's header (PROTOCOL 6): canonical bytes that the server stores opaque next to the
/// ciphertext, that are the AEAD's associated data, and that the signature covers.
///
/// ```
/// header = u8(1)                       version
///       || field(convId)               32 bytes
///       || field(epoch)                32 bytes
///       || field(senderUserId)         36 ASCII bytes
///       || field(deviceId)             16 bytes
///       || u32(generation)             which of the device's chains in this epoch
///       || u32(chainIndex)
///       || field(messageId)            16 bytes, chosen by the sender
///       || u64(sentAt)                 milliseconds since 1970
///       || u64(expiresAt)              milliseconds since 1970, 0 for never
///       || u8(kind)                    0 message, 1 edit, 2 delete
///       || field(refersTo)             the edited or deleted message's id, or empty
/// ```
public struct MessageHeader: Sendable, Equatable {
    public enum Kind: UInt8, Sendable { case message = 0, edit = 1, delete = 2 }

    public static let version: UInt8 = 1
    public var convId: [UInt8]
    public var epoch: [UInt8]
    public var senderUserId: String
    public var deviceId: [UInt8]
    public var generation: UInt32
    public var chainIndex: UInt32
    public var messageId: [UInt8]
    public var sentAt: UInt64
    public var expiresAt: UInt64
    public var kind: Kind
    public var refersTo: [UInt8]

    public init(convId: [UInt8], epoch: [UInt8], senderUserId: String, deviceId: [UInt8], generation: UInt32 = 0, chainIndex: UInt32,
                messageId: [UInt8], sentAt: UInt64, expiresAt: UInt64 = 0, kind: Kind = .message, refersTo: [UInt8] = []) {
        self.convId = convId
        self.epoch = epoch
        self.senderUserId = senderUserId
        self.deviceId = deviceId
        self.generation = generation
        self.chainIndex = chainIndex
        self.messageId = messageId
        self.sentAt = sentAt
        self.expiresAt = expiresAt
        self.kind = kind
        self.refersTo = refersTo
    }

    public var bytes: [UInt8] {
        var writer = ByteWriter()
        writer.u8(Self.version)
        writer.field(convId)
        writer.field(epoch)
        writer.field(Array(senderUserId.utf8))
        writer.field(deviceId)
        writer.u32(generation)
        writer.u32(chainIndex)
        writer.field(messageId)
        writer.u64(sentAt)
        writer.u64(expiresAt)
        writer.u8(kind.rawValue)
        writer.field(refersTo)
        return writer.bytes
    }

    /// Parses and checks every length; unknown versions and kinds are refused.
    public init(bytes: [UInt8]) throws {
        var reader = ByteReader(bytes)
        guard try reader.u8() == Self.version else { throw ProtocolError.malformed("unknown header version") }
        convId = try reader.field(maxLength: 32)
        epoch = try reader.field(maxLength: 32)
        let sender = try reader.field(maxLength: 36)
        deviceId = try reader.field(maxLength: 16)
        generation = try reader.u32()
        chainIndex = try reader.u32()
        messageId = try reader.field(maxLength: 16)
        sentAt = try reader.u64()
        expiresAt = try reader.u64()
        guard let kind = Kind(rawValue: try reader.u8()) else { throw ProtocolError.malformed("unknown message kind") }
        self.kind = kind
        refersTo = try reader.field(maxLength: 16)
        try reader.finish()
        guard convId.count == 32, epoch.count == 32, sender.count == 36, deviceId.count == 16, messageId.count == 16,
              refersTo.isEmpty || refersTo.count == 16, (kind == .message) == refersTo.isEmpty else {
            throw ProtocolError.malformed("a header field has the wrong length")
        }
        guard let senderUserId = UserIdText.parse(sender) else { throw ProtocolError.malformed("the sender is not a user id") }
        self.senderUserId = senderUserId
    }
}

/// Sealing and opening one message on a sender chain.
public enum MessageSeal {
    public static let signatureLabel = Array("circle/v1/msg-sig".utf8)

    public struct Sealed: Sendable, Equatable {
        public let header: [UInt8]
        public let ciphertext: [UInt8]
        public let signature: [UInt8]

        /// What the server stores and relays, as received from it.
        public init(header: [UInt8], ciphertext: [UInt8], signature: [UInt8]) {
            self.header = header
            self.ciphertext = ciphertext
            self.signature = signature
        }
    }

    /// Bytes of the key commitment that ends every ciphertext.
    public static let commitmentSize = 32

    /// Encrypts `padded` under the chain's next key with the header as associated data, appends
    /// the key's commitment (so no ciphertext opens under two keys: every receiver holds the
    /// same key or refuses), and signs header and ciphertext with the identity key.
    public static func seal(header: MessageHeader, padded: [UInt8], key: [UInt8], nonce: [UInt8], commitment: [UInt8], identity: Curve25519.Signing.PrivateKey) throws -> Sealed {
        precondition(commitment.count == commitmentSize)
        let headerBytes = header.bytes
        let box = try AES.GCM.seal(padded, using: SymmetricKey(data: key), nonce: AES.GCM.Nonce(data: nonce), authenticating: headerBytes)
        let ciphertext = Array(box.ciphertext) + Array(box.tag) + commitment
        let signature = Array(try identity.signature(for: signatureLabel + headerBytes + ciphertext))
        return Sealed(header: headerBytes, ciphertext: ciphertext, signature: signature)
    }

    /// The receiver's checks in order: parse, (epoch and membership: the caller), signature,
    /// index bound, key commitment, decrypt. State changes only after all of them pass (the
    /// caller's part).
    public static func open(_ sealed: Sealed, senderIdentity: [UInt8], chain: SenderChain, replay: ReplayWindow) throws -> (header: MessageHeader, padded: [UInt8]) {
        let header = try MessageHeader(bytes: sealed.header)
        guard KeyChecks.verify(signature: sealed.signature, message: signatureLabel + sealed.header + sealed.ciphertext, publicKey: senderIdentity) else {
            throw ProtocolError.badSignature("message")
        }
        guard header.chainIndex < SenderChain.maximumMessages, header.chainIndex >= chain.index else {
            throw ProtocolError.malformed("chain index out of bounds")
        }
        guard !replay.contains(header.chainIndex) else { throw ProtocolError.malformed("replayed message") }
        let (key, nonce, commitment) = try chain.key(at: header.chainIndex)
        guard sealed.ciphertext.count >= 16 + commitmentSize else { throw ProtocolError.decryptionFailed }
        guard ConstantTime.equal(sealed.ciphertext.suffix(commitmentSize), commitment) else {
            throw ProtocolError.refused("the message's key commitment does not match this chain's key")
        }
        let sealedBox = sealed.ciphertext.dropLast(commitmentSize)
        do {
            let box = try AES.GCM.SealedBox(nonce: AES.GCM.Nonce(data: nonce), ciphertext: sealedBox.dropLast(16), tag: sealedBox.suffix(16))
            return (header, Array(try AES.GCM.open(box, using: SymmetricKey(data: key), authenticating: sealed.header)))
        } catch {
            throw ProtocolError.decryptionFailed
        }
    }
}
