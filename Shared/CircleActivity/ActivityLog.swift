import CircleCore
import CircleStore
import Foundation
import SQLKit

/// What to append to a security activity chain.
public struct ActivityItem: Sendable {
    /// A member's id, or `ActivityLog.serverChain`.
    public var chain: String
    public var kind: ActivityKind
    public var sessionId: String
    public var ip: String
    public var userAgent: String
    /// What else the entry says (never an address, user agent or secret).
    public var details: [String: String]
    /// Whether the member's other sessions are alerted.
    public var alert: Bool

    public init(chain: String, kind: ActivityKind, sessionId: String = "", ip: String = "", userAgent: String = "", details: [String: String] = [:],
                alert: Bool = false) {
        self.chain = chain
        self.kind = kind
        self.sessionId = sessionId
        self.ip = ip
        self.userAgent = userAgent
        self.details = details
        self.alert = alert
    }
}

/// What a chain check found.
public enum ChainCheck: Sendable, Equatable {
    /// Every entry from the anchor to the head is there, in order, unaltered.
    case intact(entries: Int, head: Int64)
    /// The first entry that is not as it was written: altered (or swapped), removed, or the head
    /// does not match the last entry.
    case broken(seq: Int64, reason: String)
}

/// The security activity log: one hash chain per member and one for the server (ARCHITECTURE 7).
///
/// Like the event log it is shared: every service that does something security-relevant appends
/// in its own transaction, so an entry exists exactly when the change does. A chain's head row
/// is locked to append (chains in name order, so writers cannot deadlock on each other).
public enum ActivityLog {
    /// The chain of server-wide events (failed sign-ins of unknown names, throttles, admin actions).
    public static let serverChain = "server"

    static let details: JSONEncoder = {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }()

    /// Appends the items inside the caller's transaction; returns the entries as stored.
    public static func append(_ items: [ActivityItem], sealer: ActivitySealer, at now: Timestamp, engine: DatabaseEngine,
                              in db: any SQLDatabase) async throws -> [ActivityEntry] {
        guard !items.isEmpty else { return [] }
        var stored: [ActivityEntry] = []
        let byChain = Dictionary(grouping: items, by: \.chain)
        for chain in byChain.keys.sorted() {
            try await db.raw("""
                INSERT INTO activity_heads (chain, seq, hash, anchor_seq, anchor_hash)
                VALUES (\(bind: chain), 0, \(bind: Data(ActivityEntry.genesis)), 0, \(bind: Data(ActivityEntry.genesis)))
                ON CONFLICT (chain) DO NOTHING
                """).run()
            guard let head = try await db.raw("""
                SELECT seq, hash FROM activity_heads WHERE chain = \(bind: chain)\(unsafeRaw: engine == .postgres ? " FOR UPDATE" : "")
                """).first() else { throw StoreError.corrupt("activity chain \(chain) has no head") }
            var seq = try head.decode(column: "seq", as: Int64.self)
            var previous = Array(try head.decode(column: "hash", as: Data.self))
            for item in byChain[chain]! {
                seq += 1
                let detailText = String(decoding: try Self.details.encode(item.details), as: UTF8.self)
                let entry = ActivityEntry(
                    chain: chain, seq: seq, at: now.millis, kind: item.kind.rawValue, sessionId: item.sessionId, keyId: sealer.currentKeyId,
                    ipSealed: try sealer.seal(item.ip, .ip, chain: chain, seq: seq),
                    uaSealed: try sealer.seal(item.userAgent, .userAgent, chain: chain, seq: seq),
                    details: detailText, alert: item.alert, hash: []
                ).chained(after: previous)
                try await db.raw("""
                    INSERT INTO activity_logs (chain, seq, at, kind, session_id, key_id, ip_sealed, ua_sealed, details, alert, hash)
                    VALUES (\(bind: chain), \(bind: seq), \(bind: entry.at), \(bind: entry.kind), \(bind: entry.sessionId), \(bind: entry.keyId),
                            \(bind: Data(entry.ipSealed)), \(bind: Data(entry.uaSealed)), \(bind: entry.details), \(bind: entry.alert ? 1 : 0), \(bind: Data(entry.hash)))
                    """).run()
                previous = entry.hash
                stored.append(entry)
            }
            try await db.raw("UPDATE activity_heads SET seq = \(bind: seq), hash = \(bind: Data(previous)) WHERE chain = \(bind: chain)").run()
        }
        return stored
    }

    static func decode(_ row: any SQLRow) throws -> ActivityEntry {
        ActivityEntry(
            chain: try row.decode(column: "chain", as: String.self),
            seq: try row.decode(column: "seq", as: Int64.self),
            at: try row.decode(column: "at", as: Int64.self),
            kind: try row.decode(column: "kind", as: String.self),
            sessionId: try row.decode(column: "session_id", as: String.self),
            keyId: try row.decode(column: "key_id", as: String.self),
            ipSealed: Array(try row.decode(column: "ip_sealed", as: Data.self)),
            uaSealed: Array(try row.decode(column: "ua_sealed", as: Data.self)),
            details: try row.decode(column: "details", as: String.self),
            alert: try row.decode(column: "alert", as: Int64.self) != 0,
            hash: Array(try row.decode(column: "hash", as: Data.self))
        )
    }

    /// A chain's entries before `before` (or the newest), newest first, at most `limit`.
    public static func page(_ chain: String, before: Int64?, limit: Int, in db: any SQLDatabase) async throws -> [ActivityEntry] {
        try await db.raw("""
            SELECT * FROM activity_logs WHERE chain = \(bind: chain) AND seq < \(bind: before ?? Int64.max)
            ORDER BY seq DESC LIMIT \(bind: limit)
            """).all().map(decode)
    }

    /// A chain's entries after `after`, oldest first, at most `limit`.
    public static func entries(_ chain: String, after: Int64, limit: Int, in db: any SQLDatabase) async throws -> [ActivityEntry] {
        try await db.raw("""
            SELECT * FROM activity_logs WHERE chain = \(bind: chain) AND seq > \(bind: after) ORDER BY seq LIMIT \(bind: limit)
            """).all().map(decode)
    }

    /// Entries of any chain since `since` of these kinds, newest first (admin reports).
    public static func recent(_ chain: String, since: Timestamp, limit: Int, in db: any SQLDatabase) async throws -> [ActivityEntry] {
        try await db.raw("""
            SELECT * FROM activity_logs WHERE chain = \(bind: chain) AND at >= \(bind: since.millis) ORDER BY seq DESC LIMIT \(bind: limit)
            """).all().map(decode)
    }

    /// The head and anchor of a chain (nil before its first entry).
    public static func head(_ chain: String, in db: any SQLDatabase) async throws -> (seq: Int64, hash: [UInt8], anchorSeq: Int64, anchorHash: [UInt8])? {
        guard let row = try await db.raw("SELECT * FROM activity_heads WHERE chain = \(bind: chain)").first() else { return nil }
        return (try row.decode(column: "seq", as: Int64.self), Array(try row.decode(column: "hash", as: Data.self)),
                try row.decode(column: "anchor_seq", as: Int64.self), Array(try row.decode(column: "anchor_hash", as: Data.self)))
    }

    /// Every chain's name.
    public static func chains(in db: any SQLDatabase) async throws -> [String] {
        try await db.raw("SELECT chain FROM activity_heads ORDER BY chain").all().map { try $0.decode(column: "chain", as: String.self) }
    }

    /// Walks a chain from its anchor to its head and names the first entry that is not as it was
    /// written.
    public static func verify(_ chain: String, in db: any SQLDatabase) async throws -> ChainCheck {
        guard let head = try await head(chain, in: db) else { return .intact(entries: 0, head: 0) }
        var expected = head.anchorSeq + 1
        var previous = head.anchorHash
        var count = 0
        while true {
            let page = try await entries(chain, after: expected - 1, limit: 1000, in: db)
            for entry in page {
                guard entry.seq == expected else {
                    return .broken(seq: expected, reason: "entry \(expected) is missing (removed)")
                }
                guard entry.expectedHash(after: previous) == entry.hash else {
                    return .broken(seq: entry.seq, reason: "entry \(entry.seq) was altered or moved")
                }
                previous = entry.hash
                expected += 1
                count += 1
            }
            if page.count < 1000 { break }
        }
        if expected - 1 < head.seq { return .broken(seq: expected, reason: "entries \(expected)...\(head.seq) are missing (removed)") }
        if expected - 1 > head.seq || previous != head.hash { return .broken(seq: head.seq, reason: "the head does not match the last entry") }
        return .intact(entries: count, head: head.seq)
    }

    /// Removes up to `limit` entries older than `before`, oldest first, keeping each chain
    /// verifiable: the last removed entry's number and hash become the chain's anchor. Returns
    /// how many went.
    @discardableResult
    public static func prune(before: Timestamp, limit: Int, engine: DatabaseEngine, in db: any SQLDatabase) async throws -> Int {
        let skipLocked = engine == .postgres ? " FOR UPDATE SKIP LOCKED" : ""
        let heads = try await db.raw("""
            SELECT chain FROM activity_heads h WHERE EXISTS (SELECT 1 FROM activity_logs e WHERE e.chain = h.chain AND e.at < \(bind: before.millis))
            ORDER BY chain LIMIT 100\(unsafeRaw: skipLocked)
            """).all().map { try $0.decode(column: "chain", as: String.self) }
        var removed = 0
        for chain in heads where removed < limit {
            let old = try await db.raw("""
                SELECT seq, hash FROM activity_logs WHERE chain = \(bind: chain) AND at < \(bind: before.millis) ORDER BY seq LIMIT \(bind: limit - removed)
                """).all()
            guard let last = old.last else { continue }
            let lastSeq = try last.decode(column: "seq", as: Int64.self)
            let lastHash = Data(try last.decode(column: "hash", as: Data.self))
            try await db.raw("DELETE FROM activity_logs WHERE chain = \(bind: chain) AND seq <= \(bind: lastSeq)").run()
            try await db.raw("UPDATE activity_heads SET anchor_seq = \(bind: lastSeq), anchor_hash = \(bind: lastHash) WHERE chain = \(bind: chain)").run()
            removed += old.count
        }
        return removed
    }

    /// Deletes up to `limit` entries of a chain and, once none is left, its head (a destroyed
    /// account's log; the server chain keeps the tombstone). Returns how many entries went.
    public static func deleteChain(_ chain: String, limit: Int, in db: any SQLDatabase) async throws -> Int {
        let removed = try await db.raw("""
            DELETE FROM activity_logs WHERE chain = \(bind: chain) AND seq IN (
                SELECT seq FROM activity_logs WHERE chain = \(bind: chain) ORDER BY seq LIMIT \(bind: limit)
            ) RETURNING seq
            """).all().count
        if removed < limit { try await db.raw("DELETE FROM activity_heads WHERE chain = \(bind: chain)").run() }
        return removed
    }

    /// A chain's alerts not acknowledged yet, newest first (among its latest `limit` alerts).
    public static func openAlerts(_ chain: String, limit: Int = 50, in db: any SQLDatabase) async throws -> [ActivityEntry] {
        let alerts = try await db.raw("""
            SELECT * FROM activity_logs WHERE chain = \(bind: chain) AND alert = 1 ORDER BY seq DESC LIMIT \(bind: limit)
            """).all().map(decode)
        guard let oldest = alerts.last else { return [] }
        let acknowledged = Set(try await db.raw("""
            SELECT details FROM activity_logs WHERE chain = \(bind: chain) AND kind = \(bind: ActivityKind.alertAcknowledged.rawValue) AND seq > \(bind: oldest.seq)
            """).all().compactMap { row -> Int64? in
            let text = try row.decode(column: "details", as: String.self)
            let details = try? JSONDecoder().decode([String: String].self, from: Data(text.utf8))
            return details?["seq"].flatMap(Int64.init)
        })
        return alerts.filter { !acknowledged.contains($0.seq) }
    }
}
