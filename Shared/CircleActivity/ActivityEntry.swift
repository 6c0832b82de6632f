import CircleProtocol
import Crypto

/// One entry of a security activity chain, as stored.
///
/// Each chain (a member's, or the server's) is a hash chain: an entry's `hash` is
/// `SHA-256(previous hash || canonical bytes)`, the first entry's previous hash being 32 zero
/// bytes (or, once retention removed older entries, the anchor's). The canonical bytes are
/// `u8(1) || field(chain) || u64(seq) || u64(at) || field(kind) || field(sessionId) ||
/// field(keyId) || field(ipSealed) || field(uaSealed) || field(details) || u8(alert)`, where
/// `field(x) = u16(length) || x` (big-endian). Sealed fields enter the hash as stored, so a
/// chain verifies without the keys that open them.
public struct ActivityEntry: Sendable, Equatable {
    public let chain: String
    public let seq: Int64
    public let at: Int64
    public let kind: String
    public let sessionId: String
    public let keyId: String
    public let ipSealed: [UInt8]
    public let uaSealed: [UInt8]
    /// JSON text of what else the entry says (never an IP address, user agent or secret).
    public let details: String
    public let alert: Bool
    public let hash: [UInt8]

    public init(chain: String, seq: Int64, at: Int64, kind: String, sessionId: String, keyId: String, ipSealed: [UInt8], uaSealed: [UInt8],
                details: String, alert: Bool, hash: [UInt8]) {
        self.chain = chain
        self.seq = seq
        self.at = at
        self.kind = kind
        self.sessionId = sessionId
        self.keyId = keyId
        self.ipSealed = ipSealed
        self.uaSealed = uaSealed
        self.details = details
        self.alert = alert
        self.hash = hash
    }

    /// The hash of the chain's start.
    public static let genesis = [UInt8](repeating: 0, count: 32)

    /// The canonical bytes hashed after the previous hash.
    public var canonicalBytes: [UInt8] {
        var writer = ByteWriter()
        writer.u8(1)
        writer.field(Array(chain.utf8))
        writer.u64(UInt64(bitPattern: seq))
        writer.u64(UInt64(bitPattern: at))
        writer.field(Array(kind.utf8))
        writer.field(Array(sessionId.utf8))
        writer.field(Array(keyId.utf8))
        writer.field(ipSealed)
        writer.field(uaSealed)
        writer.field(Array(details.utf8))
        writer.u8(alert ? 1 : 0)
        return writer.bytes
    }

    /// The hash this entry must have after `previous`.
    public func expectedHash(after previous: [UInt8]) -> [UInt8] {
        var hasher = SHA256()
        hasher.update(data: previous)
        hasher.update(data: canonicalBytes)
        return Array(hasher.finalize())
    }

    /// The same entry with its hash computed after `previous`.
    func chained(after previous: [UInt8]) -> ActivityEntry {
        ActivityEntry(chain: chain, seq: seq, at: at, kind: kind, sessionId: sessionId, keyId: keyId, ipSealed: ipSealed, uaSealed: uaSealed,
                      details: details, alert: alert, hash: expectedHash(after: previous))
    }
}
