import CircleCore
import SQLKit

/// An event to append to a user's log.
public struct NewUserEvent: Sendable, Equatable {
    public let userId: String
    public let type: String
    /// The event's `data` member as stored, JSON text: a reference to its subject (a conversation
    /// and sequence number, a file id), never a copy of ciphertext, so deleting the subject removes
    /// it from every path.
    public let data: String
    /// What live sockets receive instead of `data`, when that says more (the whole envelope a
    /// reference names). Published, never stored.
    public let live: String?

    public init(userId: String, type: EventType, data: String, live: String? = nil) {
        self.userId = userId
        self.type = type.rawValue
        self.data = data
        self.live = live
    }
}

/// An event in a user's log: what a client receives as `{"seq", "type", "data"}`.
public struct UserEvent: Sendable, Equatable {
    public let userId: String
    public let seq: Int64
    public let type: String
    public let data: String
    public let createdAt: Timestamp
    /// The outbox entry that lists this event until it is published (set by an append; nil for
    /// an event read back from the log). Bookkeeping, not part of the event: `==` ignores it.
    public let outbox: String?
    /// The live form (see `NewUserEvent.live`), for publishing right after the append.
    public let live: String?

    public init(userId: String, seq: Int64, type: String, data: String, createdAt: Timestamp, outbox: String? = nil, live: String? = nil) {
        self.userId = userId
        self.seq = seq
        self.type = type
        self.data = data
        self.createdAt = createdAt
        self.outbox = outbox
        self.live = live
    }

    public static func == (a: UserEvent, b: UserEvent) -> Bool {
        a.userId == b.userId && a.seq == b.seq && a.type == b.type && a.data == b.data && a.createdAt == b.createdAt
    }
}

/// The answer to "what happened since N".
public enum UserEventPage: Sendable, Equatable {
    /// Events after N, in order; `more` says a further page exists.
    case events([UserEvent], more: Bool)
    /// N is older than the retention (or unknown): the client must resync through the REST API.
    case resyncRequired
}

/// The per-user event log (ARCHITECTURE 11): the one table every service writes.
///
/// Appends happen inside the writer's own transaction, so an event exists exactly when the change
/// it reports does. Counters are locked in user-id order, so concurrent writers cannot deadlock.
///
/// Messages are not in it: a conversation's messages are their own log (`messages`, numbered per
/// conversation), which each member reads from its own cursor, so a group message is stored
/// once whatever the member count, and a deleted or expired message is gone from every path with
/// its row. Events here are small and name their subject instead of copying it.
///
/// Each append also writes one row to `event_outbox` listing its events (per user, the range of
/// sequence numbers); the publisher deletes the row once every event in it went out on the bus,
/// and the relay republishes what rows older than a few seconds list (a crash between commit and
/// publish must not strand a live client). One small row per append instead of a mark on every
/// event, which would rewrite each event's row.
public enum UserEventLog {
    /// Appends events inside the caller's transaction and returns them with their sequence numbers.
    public static func append(_ events: [NewUserEvent], at now: Timestamp, in db: any SQLDatabase) async throws -> [UserEvent] {
        guard !events.isEmpty else { return [] }
        try checkUserIds(events)
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
        let outbox = newOutboxId()
        let stored = try numbered(events, lastSeqs: try await db.raw(upsert).all(), at: now, outbox: outbox)
        // In chunks, to stay below the engines' limits on bound parameters.
        for start in stride(from: 0, to: stored.count, by: 1000) {
            var insert = SQLQueryString("INSERT INTO user_events (user_id, seq, type, payload, created_at) VALUES ")
            for (index, event) in stored[start..<min(start + 1000, stored.count)].enumerated() {
                if index > 0 { insert += ", " }
                insert += "(\(bind: event.userId), \(bind: event.seq), \(bind: event.type), \(bind: event.data), \(bind: now.millis))"
            }
            try await db.raw(insert).run()
        }
        try await db.raw("""
            INSERT INTO event_outbox (id, created_at, events) VALUES (\(bind: outbox), \(bind: now.millis), \(bind: OutboxEntry.ranges(of: stored)))
            """).run()
        return stored
    }

    /// A new outbox entry id (128 random bits).
    public static func newOutboxId() -> String { Base64URL.encode(SecureRandom.bytes(16)) }

    /// User ids are written into outbox entries between commas (ids are base64url or names).
    public static func checkUserIds(_ events: [NewUserEvent]) throws {
        guard !events.contains(where: { $0.userId.isEmpty || $0.userId.utf8.contains(UInt8(ascii: ",")) }) else {
            throw StoreError.corrupt("an event's user id is empty or holds a comma")
        }
    }

    /// The events with their sequence numbers, from the counters' new values (rows of `user_id`,
    /// `last_seq`): each user's events take the numbers up to the new value, in order.
    public static func numbered(_ events: [NewUserEvent], lastSeqs rows: [any SQLRow], at now: Timestamp, outbox: String?) throws -> [UserEvent] {
        try numbered(events, lastSeqs: rows.map { (try $0.decode(column: "user_id", as: String.self), try $0.decode(column: "last_seq", as: Int64.self)) },
                     at: now, outbox: outbox)
    }

    /// `numbered` from (user id, new last sequence number) pairs; `outbox` is the entry listing them.
    public static func numbered(_ events: [NewUserEvent], lastSeqs: [(userId: String, lastSeq: Int64)], at now: Timestamp, outbox: String?) throws -> [UserEvent] {
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
            stored.append(UserEvent(userId: event.userId, seq: seq, type: event.type, data: event.data, createdAt: now, outbox: outbox, live: event.live))
        }
        return stored
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
        let events = try rows.map { try decode($0) }
        // The first event after `since` must still be there, or some were pruned away.
        guard let first = events.first, first.seq == since + 1 else { return .resyncRequired }
        return .events(Array(events.prefix(limit)), more: events.count > limit)
    }

    /// The user's latest sequence number (0 when nothing has happened yet).
    public static func lastSeq(for userId: String, in db: any SQLDatabase) async throws -> Int64 {
        let row = try await db.raw("SELECT last_seq FROM user_event_counters WHERE user_id = \(bind: userId)").first()
        return try row?.decode(column: "last_seq", as: Int64.self) ?? 0
    }

    /// Outbox entries written before `before`, oldest first, at most `limit` (for the relay).
    /// With `lock` (PostgreSQL, inside a transaction) the rows are claimed with
    /// `FOR UPDATE SKIP LOCKED`, so concurrent relays take different entries.
    public static func outbox(before: Timestamp, limit: Int, lock: Bool = false, in db: any SQLDatabase) async throws -> [OutboxEntry] {
        try await db.raw("""
            SELECT id, events FROM event_outbox WHERE created_at < \(bind: before.millis)
            ORDER BY created_at, id LIMIT \(bind: limit)\(unsafeRaw: lock ? " FOR UPDATE SKIP LOCKED" : "")
            """).all().map { row in
            let id = try row.decode(column: "id", as: String.self)
            guard let entry = OutboxEntry(id: id, ranges: try row.decode(column: "events", as: String.self)) else {
                throw StoreError.corrupt("outbox entry \(id) cannot be read")
            }
            return entry
        }
    }

    /// The events an outbox entry lists that are still in the log, each user's in order.
    public static func events(listedIn entry: OutboxEntry, in db: any SQLDatabase) async throws -> [UserEvent] {
        var events: [UserEvent] = []
        for range in entry.ranges {
            events += try await db.raw("""
                SELECT user_id, seq, type, payload, created_at FROM user_events
                WHERE user_id = \(bind: range.userId) AND seq >= \(bind: range.first) AND seq <= \(bind: range.last) ORDER BY seq
                """).all().map { try decode($0, outbox: entry.id) }
        }
        return events
    }

    /// Deletes outbox entries whose events were all published.
    public static func removeFromOutbox(_ ids: [String], in db: any SQLDatabase) async throws {
        try await Outbox.remove(ids, from: "event_outbox", in: db)
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

    /// Deletes at most `limit` of one user's events and, once none is left, their counter (a
    /// destroyed account); returns how many went.
    public static func deleteAll(of userId: String, limit: Int, in db: any SQLDatabase) async throws -> Int {
        let removed = try await db.raw("""
            DELETE FROM user_events WHERE user_id = \(bind: userId) AND seq IN (
                SELECT seq FROM user_events WHERE user_id = \(bind: userId) ORDER BY seq LIMIT \(bind: limit)
            ) RETURNING seq
            """).all().count
        if removed < limit { try await db.raw("DELETE FROM user_event_counters WHERE user_id = \(bind: userId)").run() }
        return removed
    }

    static func decode(_ row: any SQLRow, outbox: String? = nil) throws -> UserEvent {
        UserEvent(
            userId: try row.decode(column: "user_id", as: String.self),
            seq: try row.decode(column: "seq", as: Int64.self),
            type: try row.decode(column: "type", as: String.self),
            data: try row.decode(column: "payload", as: String.self),
            createdAt: Timestamp(millis: try row.decode(column: "created_at", as: Int64.self)),
            outbox: outbox
        )
    }
}

/// A row of `event_outbox`: the events of one append, as each user's range of sequence numbers,
/// stored as `user:first:last` joined by commas (in user-id order).
public struct OutboxEntry: Sendable, Equatable {
    public struct Range: Sendable, Equatable {
        public let userId: String
        public let first: Int64
        public let last: Int64

        public init(userId: String, first: Int64, last: Int64) {
            self.userId = userId
            self.first = first
            self.last = last
        }
    }
    public let id: String
    public let ranges: [Range]

    /// Reads the stored text; nil when it is malformed.
    public init?(id: String, ranges text: String) {
        var ranges: [Range] = []
        for item in text.split(separator: ",") {
            // From the right: the two numbers, then the user id.
            let parts = item.split(separator: ":")
            guard parts.count >= 3, let first = Int64(parts[parts.count - 2]), let last = Int64(parts[parts.count - 1]), first >= 1, first <= last else {
                return nil
            }
            ranges.append(Range(userId: parts.dropLast(2).joined(separator: ":"), first: first, last: last))
        }
        guard !ranges.isEmpty else { return nil }
        self.id = id
        self.ranges = ranges
    }

    /// The stored text for these events (one append's: each user's are consecutive).
    static func ranges(of events: [UserEvent]) -> String {
        var bounds: [String: (first: Int64, last: Int64)] = [:]
        for event in events {
            let known = bounds[event.userId]
            bounds[event.userId] = (min(known?.first ?? event.seq, event.seq), max(known?.last ?? event.seq, event.seq))
        }
        return bounds.keys.sorted().map { "\($0):\(bounds[$0]!.first):\(bounds[$0]!.last)" }.joined(separator: ",")
    }
}
