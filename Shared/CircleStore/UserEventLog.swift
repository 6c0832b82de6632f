import CircleCore
import PostgresNIO
import SQLKit

/// An event to append to a user's log.
public struct NewUserEvent: Sendable, Equatable {
    public let userId: String
    public let type: String
    /// The event's `data` member, as JSON text.
    public let data: String

    public init(userId: String, type: String, data: String) {
        self.userId = userId
        self.type = type
        self.data = data
    }
}

/// An event in a user's log: what a client receives as `{"seq", "type", "data"}`.
public struct UserEvent: Sendable, Equatable {
    public let userId: String
    public let seq: Int64
    public let type: String
    public let data: String
    public let createdAt: Timestamp

    public init(userId: String, seq: Int64, type: String, data: String, createdAt: Timestamp) {
        self.userId = userId
        self.seq = seq
        self.type = type
        self.data = data
        self.createdAt = createdAt
    }

    /// The event as the client sees it (and as it travels on the bus), as JSON text.
    public var frameJSON: String {
        "{\"seq\":\(seq),\"type\":\(JSONText.quote(type)),\"data\":\(data)}"
    }
}

/// The answer to "what happened since N".
public enum UserEventPage: Sendable, Equatable {
    /// Events after N, in order; `more` says a further page exists.
    case events([UserEvent], more: Bool)
    /// N is older than the retention (or unknown): the client must resync through the REST API.
    case resyncRequired
}

/// The per-user event log (DESIGN section 11): the one table every service writes.
///
/// Appends happen inside the writer's own transaction, so an event exists exactly when the change
/// it reports does. Counters are locked in user-id order, so concurrent writers cannot deadlock.
public enum UserEventLog {
    /// Appends events inside the caller's transaction and returns them with their sequence numbers.
    public static func append(_ events: [NewUserEvent], at now: Timestamp, in db: any SQLDatabase) async throws -> [UserEvent] {
        guard !events.isEmpty else { return [] }
        var countByUser: [String: Int64] = [:]
        for event in events { countByUser[event.userId, default: 0] += 1 }
        // One statement takes every counter, in user-id order (the rows are locked in the
        // order of VALUES), so concurrent writers cannot deadlock.
        var upsert = SQLQueryString("INSERT INTO user_event_counters (user_id, last_seq) VALUES ")
        for (index, userId) in countByUser.keys.sorted().enumerated() {
            if index > 0 { upsert += ", " }
            upsert += "(\(bind: userId), \(bind: countByUser[userId]!))"
        }
        upsert += " ON CONFLICT (user_id) DO UPDATE SET last_seq = user_event_counters.last_seq + excluded.last_seq RETURNING user_id, last_seq"
        let stored = try numbered(events, lastSeqs: try await db.raw(upsert).all(), at: now)
        // In chunks, to stay below the engines' limits on bound parameters.
        for start in stride(from: 0, to: stored.count, by: 1000) {
            var insert = SQLQueryString("INSERT INTO user_events (user_id, seq, type, payload, created_at) VALUES ")
            for (index, event) in stored[start..<min(start + 1000, stored.count)].enumerated() {
                if index > 0 { insert += ", " }
                insert += "(\(bind: event.userId), \(bind: event.seq), \(bind: event.type), \(bind: event.data), \(bind: now.millis))"
            }
            try await db.raw(insert).run()
        }
        return stored
    }

    /// The events with their sequence numbers, from the counters' new values (rows of `user_id`,
    /// `last_seq`): each user's events take the numbers up to the new value, in order.
    public static func numbered(_ events: [NewUserEvent], lastSeqs rows: [any SQLRow], at now: Timestamp) throws -> [UserEvent] {
        try numbered(events, lastSeqs: rows.map { (try $0.decode(column: "user_id", as: String.self), try $0.decode(column: "last_seq", as: Int64.self)) }, at: now)
    }

    /// `numbered` from (user id, new last sequence number) pairs.
    public static func numbered(_ events: [NewUserEvent], lastSeqs: [(userId: String, lastSeq: Int64)], at now: Timestamp) throws -> [UserEvent] {
        var countByUser: [String: Int64] = [:]
        for event in events { countByUser[event.userId, default: 0] += 1 }
        var nextSeq: [String: Int64] = [:]
        for (userId, last) in lastSeqs {
            guard let count = countByUser[userId] else { throw StoreError.corrupt("event counter update returned an unknown user") }
            nextSeq[userId] = last - count + 1
        }
        guard nextSeq.count == countByUser.count else { throw StoreError.corrupt("event counter update returned too few rows") }
        var stored: [UserEvent] = []
        stored.reserveCapacity(events.count)
        for event in events {
            let seq = nextSeq[event.userId]!
            nextSeq[event.userId] = seq + 1
            stored.append(UserEvent(userId: event.userId, seq: seq, type: event.type, data: event.data, createdAt: now))
        }
        return stored
    }

    /// The end of a PostgreSQL statement (after `WITH ..., `) that appends events to the log
    /// only if `condition` (an SQL boolean over the earlier parts) holds: the counters, taken in
    /// user-id order as in `append`, then the events; the statement returns the counters' new
    /// values for `numbered`, and no rows when the condition is false. The events come as array
    /// parameters (`appendArrayBindings`) numbered from `userIds`, so the text is the same for
    /// any events and the statement can be prepared once; `createdAt` is the parameter holding
    /// the time. One statement, so a writer can put its own change and its events in one round trip.
    public static func appendingFromArrays(userIds first: Int, createdAt: Int, when condition: String) -> String {
        """
        counters AS (
          INSERT INTO user_event_counters (user_id, last_seq)
          SELECT v.user_id, v.n FROM unnest($\(first)::text[], $\(first + 1)::int8[]) AS v (user_id, n) WHERE \(condition) ORDER BY v.user_id
          ON CONFLICT (user_id) DO UPDATE SET last_seq = user_event_counters.last_seq + excluded.last_seq RETURNING user_id, last_seq
        ), appended AS (
          INSERT INTO user_events (user_id, seq, type, payload, created_at)
          SELECT v.user_id, counters.last_seq - v.n + v.k, v.type, v.payload, $\(createdAt)::int8
          FROM unnest($\(first + 2)::text[], $\(first + 3)::int8[], $\(first + 4)::int8[], $\(first + 5)::text[], $\(first + 6)::text[])
            AS v (user_id, k, n, type, payload) JOIN counters ON counters.user_id = v.user_id
        )
        SELECT user_id, last_seq FROM counters
        """
    }

    /// How many parameters `appendArrayBindings` adds.
    public static let arrayParameterCount = 7

    /// The parameters of `appendingFromArrays`: each user's id and event count (in user-id
    /// order), then each event's user, place among that user's events, the user's count, type
    /// and data.
    public static func appendArrayBindings(_ events: [NewUserEvent], to bindings: inout PostgresBindings) {
        var countByUser: [String: Int64] = [:]
        for event in events { countByUser[event.userId, default: 0] += 1 }
        let users = countByUser.keys.sorted()
        bindings.append(users)
        bindings.append(users.map { countByUser[$0]! })
        var position: [String: Int64] = [:]
        var places: [Int64] = []
        places.reserveCapacity(events.count)
        for event in events {
            let k = (position[event.userId] ?? 0) + 1
            position[event.userId] = k
            places.append(k)
        }
        bindings.append(events.map(\.userId))
        bindings.append(places)
        bindings.append(events.map { countByUser[$0.userId]! })
        bindings.append(events.map(\.type))
        bindings.append(events.map(\.data))
    }

    /// The user's events after `since`, oldest first, at most `limit`.
    public static func events(for userId: String, since: Int64, limit: Int, in db: any SQLDatabase) async throws -> UserEventPage {
        let lastRow = try await db.raw("SELECT last_seq FROM user_event_counters WHERE user_id = \(bind: userId)").first()
        let last = try lastRow?.decode(column: "last_seq", as: Int64.self) ?? 0
        if since == last { return .events([], more: false) }
        if since > last || since < 0 { return .resyncRequired }
        let rows = try await db.raw("""
            SELECT user_id, seq, type, payload, created_at FROM user_events
            WHERE user_id = \(bind: userId) AND seq > \(bind: since)
            ORDER BY seq LIMIT \(bind: limit + 1)
            """).all()
        let events = try rows.map(decode)
        // The first event after `since` must still be there, or some were pruned away.
        guard let first = events.first, first.seq == since + 1 else { return .resyncRequired }
        return .events(Array(events.prefix(limit)), more: events.count > limit)
    }

    /// The user's latest sequence number (0 when nothing has happened yet).
    public static func lastSeq(for userId: String, in db: any SQLDatabase) async throws -> Int64 {
        let row = try await db.raw("SELECT last_seq FROM user_event_counters WHERE user_id = \(bind: userId)").first()
        return try row?.decode(column: "last_seq", as: Int64.self) ?? 0
    }

    /// Records that these events went out on the bus.
    public static func markPublished(_ events: [UserEvent], at now: Timestamp, in db: any SQLDatabase) async throws {
        guard !events.isEmpty else { return }
        var query = SQLQueryString("UPDATE user_events SET published_at = \(bind: now.millis) WHERE published_at IS NULL AND (")
        for (index, event) in events.enumerated() {
            if index > 0 { query += " OR " }
            query += "(user_id = \(bind: event.userId) AND seq = \(bind: event.seq))"
        }
        query += ")"
        try await db.raw(query).run()
    }

    /// Events created before `before` that were never marked published (for the relay).
    /// With `lock` (PostgreSQL, inside a transaction) the rows are claimed with
    /// `FOR UPDATE SKIP LOCKED`, so concurrent relays take different rows.
    public static func unpublished(before: Timestamp, limit: Int, lock: Bool = false, in db: any SQLDatabase) async throws -> [UserEvent] {
        try await db.raw("""
            SELECT user_id, seq, type, payload, created_at FROM user_events
            WHERE published_at IS NULL AND created_at < \(bind: before.millis)
            ORDER BY created_at, user_id, seq LIMIT \(bind: limit)\(unsafeRaw: lock ? " FOR UPDATE SKIP LOCKED" : "")
            """).all().map(decode)
    }

    /// Deletes at most `limit` events created before `before`; returns how many went.
    @discardableResult
    public static func prune(before: Timestamp, limit: Int, in db: any SQLDatabase) async throws -> Int {
        let rows = try await db.raw("""
            DELETE FROM user_events WHERE (user_id, seq) IN (
                SELECT user_id, seq FROM user_events WHERE created_at < \(bind: before.millis)
                ORDER BY created_at LIMIT \(bind: limit)
            ) RETURNING seq
            """).all()
        return rows.count
    }

    static func decode(_ row: any SQLRow) throws -> UserEvent {
        UserEvent(
            userId: try row.decode(column: "user_id", as: String.self),
            seq: try row.decode(column: "seq", as: Int64.self),
            type: try row.decode(column: "type", as: String.self),
            data: try row.decode(column: "payload", as: String.self),
            createdAt: Timestamp(millis: try row.decode(column: "created_at", as: Int64.self))
        )
    }
}
