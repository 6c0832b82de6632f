import CircleCore
import CircleStore
import Foundation
import SQLKit

/// What a member chose to show, and whether they are connected (the presence service's row).
package struct PresenceRecord: Sendable, Equatable {
    package var userId: String
    /// online, away, busy or invisible: what the member chose (offline is only ever derived).
    package var state: PresenceState
    package var statusEmoji: String
    package var statusText: String
    /// When the custom status clears itself (0: never).
    package var statusExpiresAt: Int64
    package var hideLastSeen: Bool
    /// Whether the member sends and sees typing indicators.
    package var typing: Bool
    package var lastSeenAt: Int64
    /// Whether any of the member's sockets is open on a live gateway.
    package var online: Bool

    package init(userId: String, state: PresenceState = .online, statusEmoji: String = "", statusText: String = "", statusExpiresAt: Int64 = 0,
                 hideLastSeen: Bool = false, typing: Bool = true, lastSeenAt: Int64 = 0, online: Bool = false) {
        self.userId = userId
        self.state = state
        self.statusEmoji = statusEmoji
        self.statusText = statusText
        self.statusExpiresAt = statusExpiresAt
        self.hideLastSeen = hideLastSeen
        self.typing = typing
        self.lastSeenAt = lastSeenAt
        self.online = online
    }
}

/// The states a member can choose.
package enum PresenceState: String, Sendable, Codable, CaseIterable {
    case online, away, busy, invisible
}

/// SQL for `user_presence`, `presence_sockets` and `presence_gateways`. The presence service is
/// their only writer.
package enum PresenceRepository {
    static func decode(_ row: any SQLRow) throws -> PresenceRecord {
        PresenceRecord(
            userId: try row.decode(column: "user_id", as: String.self),
            state: PresenceState(rawValue: try row.decode(column: "state", as: String.self)) ?? .online,
            statusEmoji: try row.decode(column: "status_emoji", as: String.self),
            statusText: try row.decode(column: "status_text", as: String.self),
            statusExpiresAt: try row.decode(column: "status_expires_at", as: Int64.self),
            hideLastSeen: try row.decode(column: "hide_last_seen", as: Int64.self) != 0,
            typing: try row.decode(column: "typing", as: Int64.self) != 0,
            lastSeenAt: try row.decode(column: "last_seen_at", as: Int64.self),
            online: try row.decode(column: "online", as: Int64.self) != 0
        )
    }

    /// The members' rows; a member without one has the defaults.
    package static func records(_ userIds: [String], in db: any SQLDatabase) async throws -> [String: PresenceRecord] {
        guard !userIds.isEmpty else { return [:] }
        var found: [String: PresenceRecord] = [:]
        for start in stride(from: 0, to: userIds.count, by: 500) {
            var query = SQLQueryString("SELECT * FROM user_presence WHERE user_id IN (")
            query.appendBinds(Array(userIds[start..<min(start + 500, userIds.count)]))
            query += ")"
            for row in try await db.raw(query).all() {
                let record = try decode(row)
                found[record.userId] = record
            }
        }
        return found
    }

    /// One member's row, locked until the transaction ends (PostgreSQL), created with the defaults.
    package static func lock(_ userId: String, engine: DatabaseEngine, at now: Timestamp, in db: any SQLDatabase) async throws -> PresenceRecord {
        try await db.raw("""
            INSERT INTO user_presence (user_id, state, status_emoji, status_text, status_expires_at, hide_last_seen, typing, last_seen_at, online, updated_at)
            VALUES (\(bind: userId), 'online', '', '', 0, 0, 1, 0, 0, \(bind: now.millis)) ON CONFLICT (user_id) DO NOTHING
            """).run()
        guard let row = try await db.raw("""
            SELECT * FROM user_presence WHERE user_id = \(bind: userId)\(unsafeRaw: engine == .postgres ? " FOR UPDATE" : "")
            """).first() else { throw StoreError.corrupt("no presence row for \(userId)") }
        return try decode(row)
    }

    package static func save(_ record: PresenceRecord, at now: Timestamp, in db: any SQLDatabase) async throws {
        try await db.raw("""
            UPDATE user_presence SET state = \(bind: record.state.rawValue), status_emoji = \(bind: record.statusEmoji), status_text = \(bind: record.statusText),
              status_expires_at = \(bind: record.statusExpiresAt), hide_last_seen = \(bind: record.hideLastSeen ? 1 : 0), typing = \(bind: record.typing ? 1 : 0),
              last_seen_at = \(bind: record.lastSeenAt), online = \(bind: record.online ? 1 : 0), updated_at = \(bind: now.millis)
            WHERE user_id = \(bind: record.userId)
            """).run()
    }

    // MARK: Sockets and gateways

    /// Records an open socket, unless its close was recorded first (a tombstone).
    package static func open(gateway: String, socket: String, user: String, at now: Timestamp, in db: any SQLDatabase) async throws {
        try await db.raw("""
            INSERT INTO presence_sockets (gateway_id, socket_id, user_id, opened_at, closed_at)
            VALUES (\(bind: gateway), \(bind: socket), \(bind: user), \(bind: now.millis), 0) ON CONFLICT (gateway_id, socket_id) DO NOTHING
            """).run()
    }

    /// Records a closed socket (a tombstone, whether or not its open was read yet).
    package static func close(gateway: String, socket: String, user: String, at now: Timestamp, in db: any SQLDatabase) async throws {
        try await db.raw("""
            INSERT INTO presence_sockets (gateway_id, socket_id, user_id, opened_at, closed_at)
            VALUES (\(bind: gateway), \(bind: socket), \(bind: user), 0, \(bind: now.millis))
            ON CONFLICT (gateway_id, socket_id) DO UPDATE SET closed_at = \(bind: now.millis)
            """).run()
    }

    /// Whether the member has an open socket.
    package static func hasOpenSocket(_ user: String, in db: any SQLDatabase) async throws -> Bool {
        try await db.raw("SELECT 1 AS one FROM presence_sockets WHERE user_id = \(bind: user) AND closed_at = 0 LIMIT 1").first() != nil
    }

    /// Renews a gateway's lease, recording the gateway if it is new (its `sync`).
    package static func renew(gateway: String, until: Timestamp, in db: any SQLDatabase) async throws {
        try await db.raw("""
            INSERT INTO presence_gateways (gateway_id, lease_until) VALUES (\(bind: gateway), \(bind: until.millis))
            ON CONFLICT (gateway_id) DO UPDATE SET lease_until = \(bind: until.millis)
            """).run()
    }

    /// Renews the lease of a gateway presence knows; false when it does not (it was dropped for
    /// gone, so its sockets here are not the ones it holds: it must list them again).
    package static func renewKnown(gateway: String, until: Timestamp, in db: any SQLDatabase) async throws -> Bool {
        try await db.raw("""
            UPDATE presence_gateways SET lease_until = \(bind: until.millis) WHERE gateway_id = \(bind: gateway) RETURNING gateway_id
            """).first() != nil
    }

    /// Replaces a gateway's open sockets with the ones it lists (after it could not report some);
    /// returns every member whose sockets changed.
    package static func replaceSockets(gateway: String, with sockets: [(socket: String, user: String)], at now: Timestamp, in db: any SQLDatabase) async throws -> Set<String> {
        var affected = Set(try await db.raw("SELECT DISTINCT user_id FROM presence_sockets WHERE gateway_id = \(bind: gateway) AND closed_at = 0").all()
            .map { try $0.decode(column: "user_id", as: String.self) })
        try await db.raw("UPDATE presence_sockets SET closed_at = \(bind: now.millis) WHERE gateway_id = \(bind: gateway) AND closed_at = 0").run()
        for (socket, user) in sockets {
            try await db.raw("""
                INSERT INTO presence_sockets (gateway_id, socket_id, user_id, opened_at, closed_at)
                VALUES (\(bind: gateway), \(bind: socket), \(bind: user), \(bind: now.millis), 0)
                ON CONFLICT (gateway_id, socket_id) DO UPDATE SET closed_at = 0
                """).run()
            affected.insert(user)
        }
        return affected
    }

    /// Forgets a gateway and its sockets (it stopped, or its lease lapsed); returns the members
    /// who had an open socket there.
    package static func drop(gateway: String, in db: any SQLDatabase) async throws -> Set<String> {
        let users = Set(try await db.raw("SELECT DISTINCT user_id FROM presence_sockets WHERE gateway_id = \(bind: gateway) AND closed_at = 0").all()
            .map { try $0.decode(column: "user_id", as: String.self) })
        try await db.raw("DELETE FROM presence_sockets WHERE gateway_id = \(bind: gateway)").run()
        try await db.raw("DELETE FROM presence_gateways WHERE gateway_id = \(bind: gateway)").run()
        return users
    }

    /// Gateways whose lease ran out before `now`, and gateways never heard of whose sockets were
    /// reported before `stale` (their lease entry was lost).
    package static func lapsedGateways(now: Timestamp, stale: Timestamp, in db: any SQLDatabase) async throws -> [String] {
        let lapsed = try await db.raw("SELECT gateway_id FROM presence_gateways WHERE lease_until < \(bind: now.millis)").all()
            .map { try $0.decode(column: "gateway_id", as: String.self) }
        let orphaned = try await db.raw("""
            SELECT DISTINCT s.gateway_id FROM presence_sockets s
            WHERE NOT EXISTS (SELECT 1 FROM presence_gateways g WHERE g.gateway_id = s.gateway_id) AND s.opened_at < \(bind: stale.millis) AND s.opened_at > 0
            """).all().map { try $0.decode(column: "gateway_id", as: String.self) }
        return Array(Set(lapsed + orphaned)).sorted()
    }

    /// Deletes tombstones of sockets closed before `before`.
    package static func forgetClosed(before: Timestamp, in db: any SQLDatabase) async throws {
        try await db.raw("DELETE FROM presence_sockets WHERE closed_at > 0 AND closed_at < \(bind: before.millis)").run()
    }

    /// Members whose custom status expired by `now`, at most `limit`.
    package static func expiredStatuses(now: Timestamp, limit: Int, in db: any SQLDatabase) async throws -> [String] {
        try await db.raw("""
            SELECT user_id FROM user_presence WHERE status_expires_at > 0 AND status_expires_at <= \(bind: now.millis) LIMIT \(bind: limit)
            """).all().map { try $0.decode(column: "user_id", as: String.self) }
    }
}

/// Read-only view for other services: whether members send and see typing indicators.
public enum PresencePreferences {
    /// The members (of `userIds`) who turned typing indicators off.
    public static func typingOff(among userIds: [String], in db: any SQLDatabase) async throws -> Set<String> {
        guard !userIds.isEmpty else { return [] }
        var query = SQLQueryString("SELECT user_id FROM user_presence WHERE typing = 0 AND user_id IN (")
        query.appendBinds(userIds)
        query += ")"
        return Set(try await db.raw(query).all().map { try $0.decode(column: "user_id", as: String.self) })
    }
}
