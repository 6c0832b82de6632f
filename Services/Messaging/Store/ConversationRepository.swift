import CircleCore
import CircleProtocol
import CircleStore
import Foundation
import SQLKit

/// A conversation row.
package struct ConversationRecord: Sendable {
    package let id: String
    package let headN: Int64
    package let epoch: [UInt8]
    package let settings: ConversationSettings
    package var lastSeq: Int64
    package let updatedAt: Int64

    package init(id: String, headN: Int64, epoch: [UInt8], settings: ConversationSettings, lastSeq: Int64, updatedAt: Int64) {
        self.id = id
        self.headN = headN
        self.epoch = epoch
        self.settings = settings
        self.lastSeq = lastSeq
        self.updatedAt = updatedAt
    }
}

/// A member row.
package struct MemberRecord: Sendable {
    package let userId: String
    package let role: MembershipOp.Role
    package let fingerprint: [UInt8]
    package let receipts: Bool

    package init(userId: String, role: MembershipOp.Role, fingerprint: [UInt8], receipts: Bool) {
        self.userId = userId
        self.role = role
        self.fingerprint = fingerprint
        self.receipts = receipts
    }
}

/// SQL for the messaging service's conversation tables (conversations, conversation_members,
/// membership_ops, message_reads). Messaging is their only writer.
package enum ConversationRepository {
    package static func decodeConversation(_ row: any SQLRow) throws -> ConversationRecord {
        guard let kind = ConversationSettings.Kind(rawValue: UInt8(clamping: try row.decode(column: "kind", as: Int64.self))) else {
            throw StoreError.corrupt("unknown conversation kind")
        }
        return ConversationRecord(
            id: try row.decode(column: "id", as: String.self),
            headN: try row.decode(column: "head_n", as: Int64.self),
            epoch: Array(try row.decode(column: "epoch", as: Data.self)),
            settings: ConversationSettings(
                kind: kind,
                disappearSeconds: UInt32(clamping: try row.decode(column: "disappear_seconds", as: Int64.self)),
                readReceipts: try row.decode(column: "read_receipts", as: Int64.self) != 0,
                retentionDays: UInt16(clamping: try row.decode(column: "retention_days", as: Int64.self))),
            lastSeq: try row.decode(column: "last_seq", as: Int64.self),
            updatedAt: try row.decode(column: "updated_at", as: Int64.self)
        )
    }

    package static func decodeMember(_ row: any SQLRow) throws -> MemberRecord {
        MemberRecord(
            userId: try row.decode(column: "user_id", as: String.self),
            role: MembershipOp.Role(rawValue: UInt8(clamping: try row.decode(column: "role", as: Int64.self))) ?? .none,
            fingerprint: Array(try row.decode(column: "fingerprint", as: Data.self)),
            receipts: try row.decode(column: "receipts", as: Int64.self) != 0
        )
    }

    /// The conversation if `userId` is a member of it (nil otherwise: non-members learn nothing).
    package static func conversation(_ id: String, member userId: String, in db: any SQLDatabase) async throws -> (ConversationRecord, MemberRecord)? {
        guard let row = try await db.raw("""
            SELECT c.*, m.user_id, m.role, m.fingerprint, m.receipts FROM conversations c
            JOIN conversation_members m ON m.conversation_id = c.id AND m.user_id = \(bind: userId)
            WHERE c.id = \(bind: id)
            """).first() else { return nil }
        return (try decodeConversation(row), try decodeMember(row))
    }

    /// Locks the conversation row until the transaction ends (PostgreSQL; SQLite writes are serial)
    /// and returns it: ops and messages of one conversation are ordered by this lock.
    package static func lock(_ id: String, at now: Timestamp, in db: any SQLDatabase) async throws -> ConversationRecord? {
        try await db.raw("UPDATE conversations SET updated_at = \(bind: now.millis) WHERE id = \(bind: id) RETURNING *").first().map(decodeConversation)
    }

    /// Takes the conversation's row lock and its next message sequence number; the returned
    /// record's `lastSeq` is that new number.
    package static func nextSeq(_ id: String, at now: Timestamp, in db: any SQLDatabase) async throws -> ConversationRecord? {
        try await db.raw("UPDATE conversations SET last_seq = last_seq + 1, updated_at = \(bind: now.millis) WHERE id = \(bind: id) RETURNING *")
            .first().map(decodeConversation)
    }

    package static func members(of id: String, in db: any SQLDatabase) async throws -> [MemberRecord] {
        try await db.raw("SELECT user_id, role, fingerprint, receipts FROM conversation_members WHERE conversation_id = \(bind: id) ORDER BY user_id")
            .all().map(decodeMember)
    }

    package static func memberIds(of id: String, in db: any SQLDatabase) async throws -> [String] {
        try await db.raw("SELECT user_id FROM conversation_members WHERE conversation_id = \(bind: id)")
            .all().map { try $0.decode(column: "user_id", as: String.self) }
    }

    package static func op(_ id: String, n: Int64, in db: any SQLDatabase) async throws -> SignedOp? {
        try await db.raw("SELECT op, signature FROM membership_ops WHERE conversation_id = \(bind: id) AND n = \(bind: n)").first().map {
            SignedOp(bytes: Array(try $0.decode(column: "op", as: Data.self)), signature: Array(try $0.decode(column: "signature", as: Data.self)))
        }
    }

    package static func ops(_ id: String, after: Int64, limit: Int, in db: any SQLDatabase) async throws -> [(n: Int64, op: SignedOp)] {
        try await db.raw("""
            SELECT n, op, signature FROM membership_ops WHERE conversation_id = \(bind: id) AND n > \(bind: after) ORDER BY n LIMIT \(bind: limit)
            """).all().map {
            (try $0.decode(column: "n", as: Int64.self),
             SignedOp(bytes: Array(try $0.decode(column: "op", as: Data.self)), signature: Array(try $0.decode(column: "signature", as: Data.self))))
        }
    }

    /// The chain state at head as stored (verified when each op was accepted).
    package static func chain(_ record: ConversationRecord, in db: any SQLDatabase) async throws -> MembershipChain {
        guard let head = try await op(record.id, n: record.headN, in: db),
              let convId = Base64URL.decode(record.id) else { throw StoreError.corrupt("conversation \(record.id) has no head op") }
        var members: [String: MembershipChain.Member] = [:]
        for member in try await self.members(of: record.id, in: db) {
            members[member.userId] = MembershipChain.Member(role: member.role, fingerprint: member.fingerprint)
        }
        return try MembershipChain(restoring: Array(convId), settings: record.settings, members: members, head: head)
    }

    package static func insertConversation(_ chain: MembershipChain, at now: Timestamp, in db: any SQLDatabase) async throws -> String {
        let id = Base64URL.encode(chain.convId)
        try await db.raw("""
            INSERT INTO conversations (id, kind, head_n, epoch, disappear_seconds, read_receipts, retention_days, last_seq, created_at, updated_at)
            VALUES (\(bind: id), \(bind: Int64(chain.kind.rawValue)), \(bind: Int64(chain.head)), \(bind: Data(chain.epoch)),
                    \(bind: Int64(chain.settings.disappearSeconds)), \(bind: chain.settings.readReceipts ? 1 : 0),
                    \(bind: Int64(chain.settings.retentionDays)), 0, \(bind: now.millis), \(bind: now.millis))
            """).run()
        return id
    }

    /// Stores ops `firstN...` of `chain` and brings the conversation and member rows to its head.
    package static func store(_ chain: MembershipChain, newOpsFrom firstN: UInt32, previous: [String: MembershipChain.Member], at now: Timestamp, in db: any SQLDatabase) async throws {
        let id = Base64URL.encode(chain.convId)
        for n in firstN...chain.head {
            let signed = chain.ops[Int(n - chain.firstKnown)]
            let op = try MembershipOp(bytes: signed.bytes)
            try await db.raw("""
                INSERT INTO membership_ops (conversation_id, n, actor, op, signature, created_at)
                VALUES (\(bind: id), \(bind: Int64(n)), \(bind: op.actor), \(bind: Data(signed.bytes)), \(bind: Data(signed.signature)), \(bind: now.millis))
                """).run()
        }
        try await db.raw("""
            UPDATE conversations SET head_n = \(bind: Int64(chain.head)), epoch = \(bind: Data(chain.epoch)),
                disappear_seconds = \(bind: Int64(chain.settings.disappearSeconds)), read_receipts = \(bind: chain.settings.readReceipts ? 1 : 0),
                retention_days = \(bind: Int64(chain.settings.retentionDays)), updated_at = \(bind: now.millis)
            WHERE id = \(bind: id)
            """).run()
        for (userId, _) in previous where chain.members[userId] == nil {
            try await db.raw("DELETE FROM conversation_members WHERE conversation_id = \(bind: id) AND user_id = \(bind: userId)").run()
            try await db.raw("DELETE FROM message_reads WHERE conversation_id = \(bind: id) AND user_id = \(bind: userId)").run()
        }
        for (userId, member) in chain.members.sorted(by: { $0.key < $1.key }) {
            if let before = previous[userId] {
                guard before != member else { continue }
                try await db.raw("""
                    UPDATE conversation_members SET role = \(bind: Int64(member.role.rawValue)), fingerprint = \(bind: Data(member.fingerprint))
                    WHERE conversation_id = \(bind: id) AND user_id = \(bind: userId)
                    """).run()
            } else {
                try await db.raw("""
                    INSERT INTO conversation_members (conversation_id, user_id, role, fingerprint, joined_n, receipts)
                    VALUES (\(bind: id), \(bind: userId), \(bind: Int64(member.role.rawValue)), \(bind: Data(member.fingerprint)), \(bind: Int64(chain.head)), 1)
                    """).run()
            }
        }
    }

    /// The caller's conversations with unread counts (messages of others after the read marker).
    package static func list(for userId: String, at now: Timestamp, in db: any SQLDatabase) async throws -> [ConversationSummary] {
        try await db.raw("""
            SELECT c.id, c.kind, c.head_n, c.epoch, c.last_seq, c.updated_at, m.role,
                   COALESCE(r.seq, 0) AS read_seq,
                   (SELECT COUNT(*) FROM messages x WHERE x.conversation_id = c.id AND x.seq > COALESCE(r.seq, 0)
                        AND x.sender_id <> \(bind: userId) AND x.kind = 0 AND x.deleted_at IS NULL
                        AND (x.expires_at = 0 OR x.expires_at > \(bind: now.millis))
                        AND (c.retention_days = 0 OR x.created_at >= \(bind: now.millis) - c.retention_days * \(bind: Int64(86_400_000)))) AS unread
            FROM conversation_members m
            JOIN conversations c ON c.id = m.conversation_id
            LEFT JOIN message_reads r ON r.conversation_id = c.id AND r.user_id = m.user_id
            WHERE m.user_id = \(bind: userId)
            ORDER BY c.updated_at DESC, c.id
            """).all().map {
            ConversationSummary(
                id: try $0.decode(column: "id", as: String.self),
                kind: try $0.decode(column: "kind", as: Int64.self) == 0 ? "direct" : "group",
                head: try $0.decode(column: "head_n", as: Int64.self),
                epoch: WireBytes.encode(Array(try $0.decode(column: "epoch", as: Data.self))),
                lastSeq: try $0.decode(column: "last_seq", as: Int64.self),
                readSeq: try $0.decode(column: "read_seq", as: Int64.self),
                unread: try $0.decode(column: "unread", as: Int64.self),
                role: (MembershipOp.Role(rawValue: UInt8(clamping: try $0.decode(column: "role", as: Int64.self))) ?? .none).name,
                updatedAt: try $0.decode(column: "updated_at", as: Int64.self)
            )
        }
    }

    // MARK: Read markers

    package static func readSeq(_ id: String, userId: String, in db: any SQLDatabase) async throws -> Int64 {
        try await db.raw("SELECT seq FROM message_reads WHERE conversation_id = \(bind: id) AND user_id = \(bind: userId)")
            .first()?.decode(column: "seq", as: Int64.self) ?? 0
    }

    /// Moves the marker forward only; returns whether it moved.
    package static func markRead(_ id: String, userId: String, seq: Int64, at now: Timestamp, in db: any SQLDatabase) async throws -> Bool {
        let row = try await db.raw("""
            INSERT INTO message_reads (conversation_id, user_id, seq, read_at) VALUES (\(bind: id), \(bind: userId), \(bind: seq), \(bind: now.millis))
            ON CONFLICT (conversation_id, user_id) DO UPDATE SET seq = excluded.seq, read_at = excluded.read_at
            WHERE message_reads.seq < excluded.seq
            RETURNING seq
            """).first()
        return row != nil
    }

    package static func reads(_ id: String, in db: any SQLDatabase) async throws -> [ReadMarker] {
        try await db.raw("SELECT user_id, seq, read_at FROM message_reads WHERE conversation_id = \(bind: id) ORDER BY user_id").all().map {
            ReadMarker(conversationId: id, userId: try $0.decode(column: "user_id", as: String.self),
                       seq: try $0.decode(column: "seq", as: Int64.self), readAt: try $0.decode(column: "read_at", as: Int64.self))
        }
    }

    package static func setReceipts(_ id: String, userId: String, enabled: Bool, in db: any SQLDatabase) async throws {
        try await db.raw("UPDATE conversation_members SET receipts = \(bind: enabled ? 1 : 0) WHERE conversation_id = \(bind: id) AND user_id = \(bind: userId)").run()
    }
}
