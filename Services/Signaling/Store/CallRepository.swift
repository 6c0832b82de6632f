import CircleCore
import CircleStore
import SQLKit

/// SQL for `video_calls` and `call_participants`. The signaling service is their only writer.
package enum CallRepository {
    static func decodeCall(_ row: any SQLRow) throws -> CallRecord {
        func enumValue<T: RawRepresentable>(_ column: String, _ type: T.Type) throws -> T where T.RawValue == String {
            let text = try row.decode(column: column, as: String.self)
            guard let value = T(rawValue: text) else { throw StoreError.corrupt("video_calls.\(column) is \(text)") }
            return value
        }
        return CallRecord(
            id: try row.decode(column: "id", as: String.self),
            conversationId: try row.decode(column: "conversation_id", as: String.self),
            kind: try enumValue("kind", CallKind.self),
            media: try enumValue("media", CallMedia.self),
            creatorId: try row.decode(column: "creator_id", as: String.self),
            state: try enumValue("state", CallState.self),
            reason: try enumValue("reason", CallEndReason.self),
            createdAt: try row.decode(column: "created_at", as: Int64.self),
            ringUntil: try row.decode(column: "ring_until", as: Int64.self),
            answeredAt: try row.decode(column: "answered_at", as: Int64.self),
            endedAt: try row.decode(column: "ended_at", as: Int64.self)
        )
    }

    static func decodeParticipant(_ row: any SQLRow) throws -> CallParticipant {
        func enumValue<T: RawRepresentable>(_ column: String, _ type: T.Type) throws -> T where T.RawValue == String {
            let text = try row.decode(column: column, as: String.self)
            guard let value = T(rawValue: text) else { throw StoreError.corrupt("call_participants.\(column) is \(text)") }
            return value
        }
        return CallParticipant(
            callId: try row.decode(column: "call_id", as: String.self),
            userId: try row.decode(column: "user_id", as: String.self),
            role: try enumValue("role", CallRole.self),
            state: try enumValue("state", ParticipantState.self),
            media: try enumValue("media", CallMedia.self),
            deviceId: try row.decode(column: "device_id", as: String.self),
            sessionId: try row.decode(column: "session_id", as: String.self),
            invitedAt: try row.decode(column: "invited_at", as: Int64.self),
            joinedAt: try row.decode(column: "joined_at", as: Int64.self),
            leftAt: try row.decode(column: "left_at", as: Int64.self),
            seenAt: try row.decode(column: "seen_at", as: Int64.self),
            connectedMillis: try row.decode(column: "connected_ms", as: Int64.self)
        )
    }

    /// Inserts a call unless its conversation already has one ringing or active; returns the
    /// conversation's live call afterwards (this one, or the one that came first).
    package static func insertUnlessLive(_ call: CallRecord, in db: any SQLDatabase) async throws -> CallRecord? {
        try await db.raw("""
            INSERT INTO video_calls (id, conversation_id, kind, media, creator_id, state, reason, created_at, ring_until, answered_at, ended_at)
            VALUES (\(bind: call.id), \(bind: call.conversationId), \(bind: call.kind.rawValue), \(bind: call.media.rawValue), \(bind: call.creatorId),
                    \(bind: call.state.rawValue), \(bind: call.reason.rawValue), \(bind: call.createdAt), \(bind: call.ringUntil), \(bind: call.answeredAt), \(bind: call.endedAt))
            ON CONFLICT DO NOTHING
            """).run()
        return try await live(in: call.conversationId, in: db)
    }

    /// Inserts a call that ended at once (everyone rung was busy): no live-call rule applies.
    package static func insertEnded(_ call: CallRecord, in db: any SQLDatabase) async throws {
        try await db.raw("""
            INSERT INTO video_calls (id, conversation_id, kind, media, creator_id, state, reason, created_at, ring_until, answered_at, ended_at)
            VALUES (\(bind: call.id), \(bind: call.conversationId), \(bind: call.kind.rawValue), \(bind: call.media.rawValue), \(bind: call.creatorId),
                    'ended', \(bind: call.reason.rawValue), \(bind: call.createdAt), \(bind: call.ringUntil), \(bind: call.answeredAt), \(bind: call.endedAt))
            """).run()
    }

    /// The conversation's ringing or active call.
    package static func live(in conversationId: String, in db: any SQLDatabase) async throws -> CallRecord? {
        try await db.raw("SELECT * FROM video_calls WHERE conversation_id = \(bind: conversationId) AND state <> 'ended'").first().map(decodeCall)
    }

    package static func call(_ id: String, in db: any SQLDatabase) async throws -> CallRecord? {
        try await db.raw("SELECT * FROM video_calls WHERE id = \(bind: id)").first().map(decodeCall)
    }

    /// The call, locked until the transaction ends (PostgreSQL; SQLite writes one at a time).
    package static func lock(_ id: String, engine: DatabaseEngine, in db: any SQLDatabase) async throws -> CallRecord? {
        try await db.raw("SELECT * FROM video_calls WHERE id = \(bind: id)\(unsafeRaw: engine == .postgres ? " FOR UPDATE" : "")").first().map(decodeCall)
    }

    package static func save(_ call: CallRecord, in db: any SQLDatabase) async throws {
        try await db.raw("""
            UPDATE video_calls SET state = \(bind: call.state.rawValue), reason = \(bind: call.reason.rawValue), ring_until = \(bind: call.ringUntil),
              answered_at = \(bind: call.answeredAt), ended_at = \(bind: call.endedAt)
            WHERE id = \(bind: call.id)
            """).run()
    }

    package static func participants(of callId: String, in db: any SQLDatabase) async throws -> [CallParticipant] {
        try await db.raw("SELECT * FROM call_participants WHERE call_id = \(bind: callId) ORDER BY invited_at, user_id").all().map(decodeParticipant)
    }

    /// The participants of several calls, by call.
    package static func participants(of callIds: [String], in db: any SQLDatabase) async throws -> [String: [CallParticipant]] {
        guard !callIds.isEmpty else { return [:] }
        var query = SQLQueryString("SELECT * FROM call_participants WHERE call_id IN (")
        query.appendBinds(callIds)
        query += ") ORDER BY invited_at, user_id"
        return Dictionary(grouping: try await db.raw(query).all().map(decodeParticipant), by: \.callId)
    }

    /// Inserts or replaces participants' rows.
    package static func save(_ participants: [CallParticipant], in db: any SQLDatabase) async throws {
        for p in participants {
            try await db.raw("""
                INSERT INTO call_participants (call_id, user_id, role, state, media, device_id, session_id, invited_at, joined_at, left_at, seen_at, connected_ms)
                VALUES (\(bind: p.callId), \(bind: p.userId), \(bind: p.role.rawValue), \(bind: p.state.rawValue), \(bind: p.media.rawValue), \(bind: p.deviceId),
                        \(bind: p.sessionId), \(bind: p.invitedAt), \(bind: p.joinedAt), \(bind: p.leftAt), \(bind: p.seenAt), \(bind: p.connectedMillis))
                ON CONFLICT (call_id, user_id) DO UPDATE SET role = \(bind: p.role.rawValue), state = \(bind: p.state.rawValue), media = \(bind: p.media.rawValue),
                  device_id = \(bind: p.deviceId), session_id = \(bind: p.sessionId), joined_at = \(bind: p.joinedAt), left_at = \(bind: p.leftAt),
                  seen_at = \(bind: p.seenAt), connected_ms = \(bind: p.connectedMillis)
                """).run()
        }
    }

    /// Marks a joined device as still there; false when the member is not joined with that session.
    package static func touch(callId: String, userId: String, sessionId: String, at now: Int64, in db: any SQLDatabase) async throws -> Bool {
        let row = try await db.raw("""
            SELECT 1 AS one FROM call_participants WHERE call_id = \(bind: callId) AND user_id = \(bind: userId) AND session_id = \(bind: sessionId) AND state = 'joined'
            """).first()
        guard row != nil else { return false }
        try await db.raw("""
            UPDATE call_participants SET seen_at = \(bind: now) WHERE call_id = \(bind: callId) AND user_id = \(bind: userId) AND session_id = \(bind: sessionId)
            """).run()
        return true
    }

    /// Which of `userIds` are joined in a ringing or active call other than `except`.
    /// Calls of `conversationId` itself do not count: a member who is in this conversation's call
    /// is not busy for it (glare: the other side's start committed while this one ran).
    package static func inAnotherCall(_ userIds: [String], except callId: String, conversationId: String, in db: any SQLDatabase) async throws -> Set<String> {
        guard !userIds.isEmpty else { return [] }
        var query = SQLQueryString("""
            SELECT DISTINCT p.user_id FROM call_participants p JOIN video_calls c ON c.id = p.call_id
            WHERE p.state = 'joined' AND c.state <> 'ended' AND c.id <> \(bind: callId) AND c.conversation_id <> \(bind: conversationId) AND p.user_id IN (
            """)
        query.appendBinds(userIds)
        query += ")"
        return Set(try await db.raw(query).all().map { try $0.decode(column: "user_id", as: String.self) })
    }

    /// The conversation's calls, newest first, before `before` (milliseconds; 0: from now).
    package static func history(of conversationId: String, before: Int64, limit: Int, in db: any SQLDatabase) async throws -> [CallRecord] {
        try await db.raw("""
            SELECT * FROM video_calls WHERE conversation_id = \(bind: conversationId)\(unsafeRaw: before > 0 ? " AND created_at < \(before)" : "")
            ORDER BY created_at DESC, id DESC LIMIT \(bind: limit)
            """).all().map(decodeCall)
    }

    /// The ringing or active calls of these conversations.
    package static func live(in conversationIds: [String], in db: any SQLDatabase) async throws -> [CallRecord] {
        guard !conversationIds.isEmpty else { return [] }
        var found: [CallRecord] = []
        for start in stride(from: 0, to: conversationIds.count, by: 500) {
            var query = SQLQueryString("SELECT * FROM video_calls WHERE state <> 'ended' AND conversation_id IN (")
            query.appendBinds(Array(conversationIds[start..<min(start + 500, conversationIds.count)]))
            query += ")"
            found += try await db.raw(query).all().map(decodeCall)
        }
        return found.sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }
    }

    /// Calls that need the sweeper: ringing past their time, or with a joined device not seen
    /// since `stale`.
    package static func due(now: Int64, stale: Int64, limit: Int, in db: any SQLDatabase) async throws -> [String] {
        let overdue = try await db.raw("""
            SELECT id FROM video_calls WHERE state <> 'ended' AND ring_until <= \(bind: now) LIMIT \(bind: limit)
            """).all().map { try $0.decode(column: "id", as: String.self) }
        let silent = try await db.raw("""
            SELECT DISTINCT call_id FROM call_participants WHERE state = 'joined' AND seen_at < \(bind: stale) LIMIT \(bind: limit)
            """).all().map { try $0.decode(column: "call_id", as: String.self) }
        return Array(Set(overdue + silent)).sorted()
    }

    /// Every ringing or active call (few: one per conversation at most).
    package static func liveIds(limit: Int, in db: any SQLDatabase) async throws -> [String] {
        try await db.raw("SELECT id FROM video_calls WHERE state <> 'ended' ORDER BY created_at LIMIT \(bind: limit)").all()
            .map { try $0.decode(column: "id", as: String.self) }
    }
}
