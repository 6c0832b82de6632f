import CircleCore
import CircleProtocol
import Crypto
import Foundation

/// One entry of this user's security activity, as the server gives it (docs/API.md,
/// "Security activity").
public struct ActivityEntry: Codable, Sendable, Equatable {
    public let seq: Int64
    public let at: Int64
    public let kind: String
    public let sessionId: String
    public let ip: String?
    public let userAgent: String?
    public let details: String
    public let alert: Bool
    public let keyId: String
    public let ipSealed: String
    public let uaSealed: String
    public let hash: String

    /// The hash this entry must have after `previous`, in `chain` (the user's id): SHA-256 of
    /// the previous hash and the entry's canonical bytes.
    public func expectedHash(after previous: [UInt8], chain: String) throws -> [UInt8] {
        var writer = ByteWriter()
        writer.u8(1)
        writer.field(Array(chain.utf8))
        writer.u64(UInt64(bitPattern: seq))
        writer.u64(UInt64(bitPattern: at))
        writer.field(Array(kind.utf8))
        writer.field(Array(sessionId.utf8))
        writer.field(Array(keyId.utf8))
        writer.field(try Base64URL.bytes(ipSealed, "ipSealed"))
        writer.field(try Base64URL.bytes(uaSealed, "uaSealed"))
        writer.field(Array(details.utf8))
        writer.u8(alert ? 1 : 0)
        var hasher = SHA256()
        hasher.update(data: previous)
        hasher.update(data: writer.bytes)
        return Array(hasher.finalize())
    }
}

/// What checking the server's view of the activity log found.
public enum ActivityCheck: Sendable, Equatable {
    /// Every entry shown chains to the one before it, and the history extends what this device
    /// saw last time (up to entry `head`).
    case verified(head: Int64)
    /// The server's history does not extend what this device saw before, or an entry does not
    /// chain: the server rewrote the history (or this device's record is wrong).
    case rewritten(seq: Int64, reason: String)
}

extension ChatClient {
    struct ActivityPage: Decodable {
        struct Position: Decodable {
            let seq: Int64
            let hash: String
        }
        let entries: [ActivityEntry]
        let more: Bool
        let head: Position
        let anchor: Position
    }

    /// The newest `limit` entries of this user's security activity, newest first, and whether
    /// the history extends the newest entry this device verified before (remembered in the
    /// device state, and moved forward when the check passes).
    public func activity(limit: Int = 50) async throws -> (entries: [ActivityEntry], check: ActivityCheck) {
        try requireSession()
        let newest: ActivityPage = try await api.call(.GET, "/api/v1/activity?limit=\(max(1, min(limit, 500)))")
        // Everything after the remembered head, oldest first, must chain from it.
        var check = ActivityCheck.verified(head: newest.head.seq)
        let from = state.activityHead
        if let from, from.seq > newest.head.seq {
            check = .rewritten(seq: from.seq, reason: "the server's history ends at \(newest.head.seq), before entry \(from.seq) seen here")
        } else if let from {
            var previous = from.hash.bytes
            var expected = from.seq + 1
            var after = from.seq - 1
            var first = true
            outer: while true {
                let page: ActivityPage = try await api.call(.GET, "/api/v1/activity?after=\(max(0, after))&limit=500")
                for entry in page.entries {
                    if first {
                        first = false
                        guard entry.seq == from.seq, try Base64URL.bytes(entry.hash, "hash") == from.hash.bytes else {
                            check = .rewritten(seq: from.seq, reason: "entry \(from.seq) is not the one seen here")
                            break outer
                        }
                        continue
                    }
                    guard entry.seq == expected, try entry.expectedHash(after: previous, chain: state.userId) == (try Base64URL.bytes(entry.hash, "hash")) else {
                        check = .rewritten(seq: expected, reason: "entry \(expected) does not follow the history seen here")
                        break outer
                    }
                    previous = try Base64URL.bytes(entry.hash, "hash")
                    expected += 1
                }
                if first {
                    check = .rewritten(seq: from.seq, reason: "entry \(from.seq) seen here is gone")
                    break
                }
                if !page.more { break }
                after = expected - 1
            }
        }
        // The page shown chains within itself.
        if case .verified = check {
            let ordered = newest.entries.reversed()
            for (earlier, later) in zip(ordered, ordered.dropFirst()) where later.seq == earlier.seq + 1 {
                guard try later.expectedHash(after: try Base64URL.bytes(earlier.hash, "hash"), chain: state.userId) == (try Base64URL.bytes(later.hash, "hash")) else {
                    check = .rewritten(seq: later.seq, reason: "entry \(later.seq) does not follow entry \(earlier.seq)")
                    break
                }
            }
        }
        if case .verified = check, let head = newest.entries.first, head.seq == newest.head.seq {
            state.activityHead = DeviceState.ActivityHead(seq: head.seq, hash: Bytes(try Base64URL.bytes(head.hash, "hash")))
            try save()
        }
        return (newest.entries, check)
    }
}
