import CircleCore
import CircleStore
import SQLKit

/// Messaging's part of the destruction protocol (ARCHITECTURE 8). Messaging owns these tables
/// and exports these operations for the cleanup service, which runs them in its jobs'
/// transactions: the key material first (in the job's first transaction), then the ciphertext
/// in bounded batches that resume after a crash (each call takes what is left).
public enum MessageDestruction {
    /// Deletes every key envelope addressed to the member or sent by them (the epoch and chain
    /// keys that open their messages); returns how many.
    public static func shredEnvelopes(ofUser userId: String, in db: any SQLDatabase) async throws -> Int {
        try await db.raw("""
            DELETE FROM key_envelopes WHERE recipient_id = \(bind: userId) OR sender_id = \(bind: userId) RETURNING recipient_id
            """).all().count
    }

    /// Which messages a destruction takes: a member's (everywhere), or a conversation's (everyone's).
    public enum Messages: Sendable {
        case sentBy(String)
        case inConversation(String)

        var column: String {
            switch self {
            case .sentBy: "sender_id"
            case .inConversation: "conversation_id"
            }
        }

        var value: String {
            switch self {
            case .sentBy(let id), .inConversation(let id): id
            }
        }
    }

    /// How many of these messages are still stored.
    public static func count(_ messages: Messages, in db: any SQLDatabase) async throws -> Int64 {
        try await db.raw("SELECT COUNT(*) AS n FROM messages WHERE \(unsafeRaw: messages.column) = \(bind: messages.value)").first()?
            .decode(column: "n", as: Int64.self) ?? 0
    }

    /// Deletes at most `limit` of these messages; returns how many. Concurrent callers on
    /// PostgreSQL take disjoint rows.
    public static func delete(_ messages: Messages, limit: Int, engine: DatabaseEngine, in db: any SQLDatabase) async throws -> Int {
        let lock = engine == .postgres ? " FOR UPDATE SKIP LOCKED" : ""
        return try await db.raw("""
            DELETE FROM messages WHERE (conversation_id, id) IN (
                SELECT conversation_id, id FROM messages WHERE \(unsafeRaw: messages.column) = \(bind: messages.value) LIMIT \(bind: limit)\(unsafeRaw: lock)
            ) RETURNING id
            """).all().count
    }

    /// Deletes the member's read markers; returns how many.
    public static func deleteReadMarkers(ofUser userId: String, in db: any SQLDatabase) async throws -> Int {
        try await db.raw("DELETE FROM message_reads WHERE user_id = \(bind: userId) RETURNING seq").all().count
    }

    /// The first step for a conversation: its envelopes go and its members are removed, so every
    /// endpoint answers as for an unknown conversation from then on. Returns the former members.
    public static func shredConversation(_ conversationId: String, in db: any SQLDatabase) async throws -> (members: [String], envelopes: Int) {
        let members = try await ConversationMembers.members(of: conversationId, in: db)
        let envelopes = try await db.raw("""
            DELETE FROM key_envelopes WHERE conversation_id = \(bind: conversationId) RETURNING recipient_id
            """).all().count
        try await db.raw("DELETE FROM conversation_members WHERE conversation_id = \(bind: conversationId)").run()
        return (members, envelopes)
    }

    /// The last step for a conversation: its membership ops, read markers and the row itself.
    public static func deleteConversation(_ conversationId: String, in db: any SQLDatabase) async throws {
        for table in ["membership_ops", "message_reads", "messages", "key_envelopes", "conversation_members"] {
            try await db.raw("DELETE FROM \(unsafeRaw: table) WHERE conversation_id = \(bind: conversationId)").run()
        }
        try await db.raw("DELETE FROM conversations WHERE id = \(bind: conversationId)").run()
    }

    /// Whether `userId` is an admin of the conversation at its current head.
    public static func isAdmin(_ userId: String, of conversationId: String, in db: any SQLDatabase) async throws -> Bool? {
        guard let row = try await db.raw("""
            SELECT role FROM conversation_members WHERE conversation_id = \(bind: conversationId) AND user_id = \(bind: userId)
            """).first() else { return nil }
        return try row.decode(column: "role", as: Int64.self) >= 2
    }
}
