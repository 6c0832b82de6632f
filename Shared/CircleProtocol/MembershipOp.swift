import CircleCore
import CircleCrypto
import Crypto

/// A conversation's privacy settings, carried inside signed ops so the server cannot switch them.
///
/// ```
/// settings = u8(1) || u8(kind) || u32(disappearSeconds) || u8(readReceipts)
///          | u8(2) || u8(kind) || u32(disappearSeconds) || u8(readReceipts) || u16(retentionDays)
/// ```
/// `kind` (0 direct, 1 group) is fixed by the genesis; a settings op must repeat it. Version 2
/// adds a retention: messages older than `retentionDays` (1 to 3650) are deleted for everyone.
/// Settings without one are written as version 1, so each value has exactly one encoding.
public struct ConversationSettings: Sendable, Equatable {
    public enum Kind: UInt8, Sendable { case direct = 0, group = 1 }

    public static let version: UInt8 = 1
    /// The version that carries a retention.
    public static let retentionVersion: UInt8 = 2
    /// The longest disappearing-message timer: one year.
    public static let maximumTimer: UInt32 = 365 * 24 * 3600
    /// The longest retention: ten years, in days.
    public static let maximumRetentionDays: UInt16 = 3650

    public var kind: Kind
    /// 0: messages do not disappear.
    public var disappearSeconds: UInt32
    public var readReceipts: Bool
    /// 0: messages are kept until deleted; otherwise deleted for everyone after this many days.
    public var retentionDays: UInt16

    public init(kind: Kind, disappearSeconds: UInt32 = 0, readReceipts: Bool = true, retentionDays: UInt16 = 0) {
        self.kind = kind
        self.disappearSeconds = disappearSeconds
        self.readReceipts = readReceipts
        self.retentionDays = retentionDays
    }

    public var bytes: [UInt8] {
        var writer = ByteWriter()
        writer.u8(retentionDays > 0 ? Self.retentionVersion : Self.version)
        writer.u8(kind.rawValue)
        writer.u32(disappearSeconds)
        writer.u8(readReceipts ? 1 : 0)
        if retentionDays > 0 { writer.u16(retentionDays) }
        return writer.bytes
    }

    public init(bytes: [UInt8]) throws {
        var reader = ByteReader(bytes)
        let version = try reader.u8()
        guard version == Self.version || version == Self.retentionVersion else { throw ProtocolError.malformed("unknown settings version") }
        guard let kind = Kind(rawValue: try reader.u8()) else { throw ProtocolError.malformed("unknown conversation kind") }
        let timer = try reader.u32()
        let receipts = try reader.u8()
        let retention = version == Self.retentionVersion ? try reader.u16() : 0
        try reader.finish()
        guard timer <= Self.maximumTimer else { throw ProtocolError.malformed("disappearing timer longer than a year") }
        guard receipts <= 1 else { throw ProtocolError.malformed("read receipts flag must be 0 or 1") }
        guard version == Self.version || (1...Self.maximumRetentionDays).contains(retention) else {
            throw ProtocolError.malformed("retention must be 1 to \(Self.maximumRetentionDays) days (settings without one are version 1)")
        }
        self.init(kind: kind, disappearSeconds: timer, readReceipts: receipts == 1, retentionDays: retention)
    }
}

/// One signed step of a conversation's membership chain (PROTOCOL 5).
///
/// ```
/// op = u8(1)                      version
///   || field(convId)              32 bytes; empty in the genesis
///   || u32(n)                     0 for the genesis
///   || field(prevHash)            32 bytes; empty in the genesis
///   || field(actor)               36 ASCII bytes (userId)
///   || u8(action)                 0 genesis, 1 add, 2 remove, 3 role, 4 settings, 5 leave
///   || field(target)              36 ASCII bytes, or empty
///   || field(targetFingerprint)   32 bytes: SHA-256 of the target's identity key as the actor saw it
///   || u8(role)                   0 none, 1 member, 2 admin
///   || field(settings)            ConversationSettings bytes, or empty
///   || field(nonce)               16 random bytes in the genesis, else empty
///   || u64(createdAt)             milliseconds since 1970
/// signature = Ed25519(actor identity, "circle/v1/op" || op)
/// H(op)     = SHA-256("circle/v1/op-hash" || op);  convId = H(genesis);  epoch = H(head)
/// ```
public struct MembershipOp: Sendable, Equatable {
    public enum Action: UInt8, Sendable { case genesis = 0, add = 1, remove = 2, role = 3, settings = 4, leave = 5 }
    public enum Role: UInt8, Sendable, Comparable {
        case none = 0, member = 1, admin = 2
        public static func < (a: Role, b: Role) -> Bool { a.rawValue < b.rawValue }
    }

    public static let version: UInt8 = 1
    public static let signatureLabel = Array("circle/v1/op".utf8)
    public static let hashLabel = Array("circle/v1/op-hash".utf8)

    public var convId: [UInt8]
    public var n: UInt32
    public var prevHash: [UInt8]
    public var actor: String
    public var action: Action
    public var target: String
    public var targetFingerprint: [UInt8]
    public var role: Role
    public var settings: ConversationSettings?
    public var nonce: [UInt8]
    public var createdAt: UInt64

    public init(convId: [UInt8], n: UInt32, prevHash: [UInt8], actor: String, action: Action, target: String = "",
                targetFingerprint: [UInt8] = [], role: Role = .none, settings: ConversationSettings? = nil,
                nonce: [UInt8] = [], createdAt: UInt64) {
        self.convId = convId
        self.n = n
        self.prevHash = prevHash
        self.actor = actor
        self.action = action
        self.target = target
        self.targetFingerprint = targetFingerprint
        self.role = role
        self.settings = settings
        self.nonce = nonce
        self.createdAt = createdAt
    }

    /// A new conversation's first op: the creator, as its only admin, with the starting settings.
    public static func genesis(creator: String, creatorIdentity: [UInt8], settings: ConversationSettings, createdAt: UInt64, nonce: [UInt8] = SecureRandom.bytes(16)) -> MembershipOp {
        MembershipOp(convId: [], n: 0, prevHash: [], actor: creator, action: .genesis, target: creator,
                     targetFingerprint: IdentityFingerprint.of(creatorIdentity), role: .admin, settings: settings,
                     nonce: nonce, createdAt: createdAt)
    }

    public var bytes: [UInt8] {
        var writer = ByteWriter()
        writer.u8(Self.version)
        writer.field(convId)
        writer.u32(n)
        writer.field(prevHash)
        writer.field(Array(actor.utf8))
        writer.u8(action.rawValue)
        writer.field(Array(target.utf8))
        writer.field(targetFingerprint)
        writer.u8(role.rawValue)
        writer.field(settings?.bytes ?? [])
        writer.field(nonce)
        writer.u64(createdAt)
        return writer.bytes
    }

    /// Parses and checks the shape every op of its action must have (not yet the chain rules).
    public init(bytes: [UInt8]) throws {
        var reader = ByteReader(bytes)
        guard try reader.u8() == Self.version else { throw ProtocolError.malformed("unknown op version") }
        convId = try reader.field(maxLength: 32)
        n = try reader.u32()
        prevHash = try reader.field(maxLength: 32)
        let actorBytes = try reader.field(maxLength: 36)
        guard let action = Action(rawValue: try reader.u8()) else { throw ProtocolError.malformed("unknown op action") }
        self.action = action
        let targetBytes = try reader.field(maxLength: 36)
        targetFingerprint = try reader.field(maxLength: 32)
        guard let role = Role(rawValue: try reader.u8()) else { throw ProtocolError.malformed("unknown role") }
        self.role = role
        let settingsBytes = try reader.field(maxLength: 64)
        settings = settingsBytes.isEmpty ? nil : try ConversationSettings(bytes: settingsBytes)
        nonce = try reader.field(maxLength: 16)
        createdAt = try reader.u64()
        try reader.finish()
        guard let actor = UserIdText.parse(actorBytes) else { throw ProtocolError.malformed("op actor is not a user id") }
        self.actor = actor
        if targetBytes.isEmpty {
            target = ""
        } else {
            guard let target = UserIdText.parse(targetBytes) else { throw ProtocolError.malformed("op target is not a user id") }
            self.target = target
        }
        try checkShape()
    }

    private func checkShape() throws {
        func require(_ condition: Bool, _ why: String) throws { if !condition { throw ProtocolError.malformed(why) } }
        let isGenesis = action == .genesis
        try require(isGenesis == (n == 0), "only the genesis has n = 0")
        try require(isGenesis ? convId.isEmpty && prevHash.isEmpty : convId.count == 32 && prevHash.count == 32,
                    "convId and prevHash are 32 bytes, and empty only in the genesis")
        try require(isGenesis ? nonce.count == 16 : nonce.isEmpty, "a nonce of 16 bytes belongs to the genesis only")
        switch action {
        case .genesis:
            try require(target == actor && targetFingerprint.count == 32 && role == .admin && settings != nil,
                        "a genesis names its creator as admin with a fingerprint and settings")
        case .add, .role:
            try require(!target.isEmpty && targetFingerprint.count == 32 && (role == .member || role == .admin) && settings == nil,
                        "add and role ops name a target, its fingerprint and a role")
        case .remove:
            try require(!target.isEmpty && targetFingerprint.count == 32 && role == .none && settings == nil,
                        "a remove names a target and its fingerprint")
        case .settings:
            try require(target.isEmpty && targetFingerprint.isEmpty && role == .none && settings != nil,
                        "a settings op carries settings only")
        case .leave:
            try require(target == actor && targetFingerprint.isEmpty && role == .none && settings == nil,
                        "a leave names the actor as its target")
        }
    }

    /// `H(op)`: the conversation id for a genesis, the epoch for a head.
    public static func hash(_ opBytes: [UInt8]) -> [UInt8] {
        Array(SHA256.hash(data: hashLabel + opBytes))
    }

    public func sign(with identity: Curve25519.Signing.PrivateKey) throws -> SignedOp {
        let opBytes = bytes
        return SignedOp(bytes: opBytes, signature: Array(try identity.signature(for: Self.signatureLabel + opBytes)))
    }
}

/// An op as stored and relayed: its bytes and the actor's signature.
public struct SignedOp: Sendable, Equatable {
    public let bytes: [UInt8]
    public let signature: [UInt8]

    public init(bytes: [UInt8], signature: [UInt8]) {
        self.bytes = bytes
        self.signature = signature
    }

    public var hash: [UInt8] { MembershipOp.hash(bytes) }

    public func verify(actorIdentity: [UInt8]) -> Bool {
        KeyChecks.verify(signature: signature, message: MembershipOp.signatureLabel + bytes, publicKey: actorIdentity)
    }
}

/// `SHA-256(identityPub)`: how ops name the key a member had when the actor saw them.
public enum IdentityFingerprint {
    public static func of(_ identityPublic: [UInt8]) -> [UInt8] {
        Array(SHA256.hash(data: identityPublic))
    }
}

/// User ids are lowercase UUID strings, 36 ASCII bytes wherever they are signed.
public enum UserIdText {
    public static func parse(_ bytes: [UInt8]) -> String? {
        guard bytes.count == 36 else { return nil }
        for (index, byte) in bytes.enumerated() {
            let isDash = [8, 13, 18, 23].contains(index)
            if isDash ? byte != UInt8(ascii: "-") : !((48...57).contains(byte) || (97...102).contains(byte)) { return nil }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    public static func isValid(_ text: String) -> Bool { parse(Array(text.utf8)) != nil }
}
