import CircleCore
import CircleProtocol
import Crypto
import Foundation

/// Everything one client device keeps: its session, its keys, its pins, and per conversation the
/// verified chain, its own sender chain and the chains it received. Stored by `StateFile`.
public struct DeviceState: Codable, Sendable {
    public var server: String
    public var serverId: String
    public var userId: String
    public var username: String
    /// 16 random bytes, chosen once per device: two devices never share a sender chain.
    public var deviceId: Bytes
    public var token: String?
    public var sessionId: String?
    public var identitySeed: Bytes
    public var x25519Private: Bytes
    public var vaultMasterKey: Bytes
    /// Trust on first use: each contact's identity key as first seen, and whether the user
    /// compared safety numbers.
    public var pins: [String: Pin] = [:]
    /// The version of the server's pins blob this device last merged.
    public var pinsVersion: Int64 = 0
    public var conversations: [String: ConversationState] = [:]
    /// The last event of this user's log that this device handled.
    public var lastEventSeq: Int64 = 0
    /// The newest entry of this user's security activity that this device verified: the next
    /// view must extend it.
    public var activityHead: ActivityHead?

    public struct ActivityHead: Codable, Sendable, Equatable {
        public var seq: Int64
        public var hash: Bytes
    }

    public struct Pin: Codable, Sendable, Equatable {
        public var username: String
        public var identityKey: Bytes
        public var verified: Bool
        /// A key the directory now shows instead, until the user acknowledges it.
        public var pendingChange: Bytes?
    }

    public struct ConversationState: Codable, Sendable {
        public var ops: [StoredOp] = []
        /// This device's current sender chain (the next key to use), with the epoch it belongs to.
        public var sending: OwnChain?
        /// Chains received, keyed by `ChainAddress.key`.
        public var received: [String: ReceivedChain] = [:]
        /// Messages up to this sequence number were handled.
        public var lastSeq: Int64 = 0
        /// A message sealed and saved but not yet confirmed by the server: a retry resends these
        /// bytes, never re-encrypts.
        public var outbox: [StoredMessage] = []
    }

    public struct StoredOp: Codable, Sendable, Equatable {
        public var op: Bytes
        public var signature: Bytes
        public var signed: SignedOp { SignedOp(bytes: op.bytes, signature: signature.bytes) }
        public init(_ signed: SignedOp) {
            op = Bytes(signed.bytes)
            signature = Bytes(signed.signature)
        }
    }

    public struct OwnChain: Codable, Sendable {
        public var epoch: Bytes
        public var generation: UInt32
        public var chainKey: Bytes
        public var index: UInt32
        /// Whether the envelopes of this chain reached the server.
        public var announced: Bool
    }

    public struct ReceivedChain: Codable, Sendable {
        public var startKey: Bytes
        public var startIndex: UInt32
        public var seen: [UInt64]
        /// The chain moved forward to a recent index, so keys are not derived from the start
        /// every time (messages older than the cursor still derive from the start).
        public var cursorKey: Bytes?
        public var cursorIndex: UInt32?
    }

    public struct StoredMessage: Codable, Sendable, Equatable {
        public var header: Bytes
        public var ciphertext: Bytes
        public var signature: Bytes
    }

    var identity: Curve25519.Signing.PrivateKey {
        get throws { try Curve25519.Signing.PrivateKey(rawRepresentation: identitySeed.bytes) }
    }

    var agreement: Curve25519.KeyAgreement.PrivateKey {
        get throws { try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: x25519Private.bytes) }
    }
}

/// Binary values in the state file, as base64url strings.
public struct Bytes: Codable, Sendable, Equatable, Hashable {
    public var bytes: [UInt8]
    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let data = Base64URL.decode(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not base64url"))
        }
        bytes = Array(data)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(Base64URL.encode(bytes))
    }
}

/// Which chain a message or envelope belongs to.
struct ChainAddress: Hashable {
    let epoch: [UInt8]
    let sender: String
    let deviceId: [UInt8]
    let generation: UInt32

    var key: String { "\(Base64URL.encode(epoch))/\(sender)/\(Base64URL.encode(deviceId))/\(generation)" }
}

/// The state file: JSON, readable and writable by its owner only (0600), replaced atomically
/// (written to a temporary file in the same folder, flushed to disk, renamed over the old one,
/// and the folder flushed), so a crash leaves either the old or the new state, never a mix:
/// a chain key that was used is never found unused again.
public enum StateFile {
    public static func load(_ path: String) throws -> DeviceState {
        guard FileManager.default.fileExists(atPath: path) else {
            throw ProtocolError.malformed("no device state at \(path): run `circle login` or `circle register` first")
        }
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        if let mode = attributes[.posixPermissions] as? NSNumber, mode.intValue & 0o077 != 0 {
            throw ProtocolError.malformed("\(path) is readable by others (mode \(String(mode.intValue, radix: 8))): chmod 600 it")
        }
        let data = try Data(contentsOf: URL(fileURLWithPath: path))
        do {
            return try JSONDecoder().decode(DeviceState.self, from: data)
        } catch {
            throw ProtocolError.malformed("\(path) is not a Circle device state: \(error)")
        }
    }

    public static func save(_ state: DeviceState, to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let data = try encoder.encode(state)
        let url = URL(fileURLWithPath: path)
        let folder = url.deletingLastPathComponent()
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let temporary = folder.appendingPathComponent(".\(url.lastPathComponent).\(UUID().uuidString).tmp").path
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else { throw ProtocolError.malformed("cannot write \(temporary): errno \(errno)") }
        var ok = data.withUnsafeBytes { buffer -> Bool in
            var offset = 0
            while offset < buffer.count {
                let written = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if written <= 0 { return false }
                offset += written
            }
            return true
        }
        ok = ok && fsync(fd) == 0
        close(fd)
        guard ok, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw ProtocolError.malformed("cannot save the device state to \(path): errno \(errno)")
        }
        let folderFD = open(folder.path, O_RDONLY)
        if folderFD >= 0 {
            fsync(folderFD)
            close(folderFD)
        }
    }
}
