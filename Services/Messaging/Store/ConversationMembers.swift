import CircleStore
import SQLKit

/// Read-only view of conversation membership for other services (ARCHITECTURE 11: messaging owns
/// these tables; the vault asks who may read a conversation's files, presence who may see whom,
/// the gateway who may hear a member type, signaling who may call).
public enum ConversationMembers {
    /// Whether `userId` is a member of the conversation at its current head.
    public static func isMember(_ userId: String, of conversationId: String, in db: any SQLDatabase) async throws -> Bool {
        try await db.raw("""
            SELECT 1 AS one FROM conversation_members WHERE conversation_id = \(bind: conversationId) AND user_id = \(bind: userId)
            """).first() != nil
    }

    /// Everyone who shares at least one conversation with `userId` (not `userId` itself).
    public static func contacts(of userId: String, in db: any SQLDatabase) async throws -> Set<String> {
        Set(try await db.raw("""
            SELECT DISTINCT other.user_id FROM conversation_members mine
            JOIN conversation_members other ON other.conversation_id = mine.conversation_id
            WHERE mine.user_id = \(bind: userId) AND other.user_id <> \(bind: userId)
            """).all().map { try $0.decode(column: "user_id", as: String.self) })
    }

    /// Which of `others` share at least one conversation with `userId`.
    public static func contacts(of userId: String, among others: [String], in db: any SQLDatabase) async throws -> Set<String> {
        guard !others.isEmpty else { return [] }
        var query = SQLQueryString("""
            SELECT DISTINCT other.user_id FROM conversation_members mine
            JOIN conversation_members other ON other.conversation_id = mine.conversation_id
            WHERE mine.user_id = \(bind: userId) AND other.user_id IN (
            """)
        query.appendBinds(others)
        query += ")"
        return Set(try await db.raw(query).all().map { try $0.decode(column: "user_id", as: String.self) })
    }

    /// The conversations `userId` is a member of.
    public static func conversations(of userId: String, in db: any SQLDatabase) async throws -> [String] {
        try await db.raw("SELECT conversation_id FROM conversation_members WHERE user_id = \(bind: userId)").all()
            .map { try $0.decode(column: "conversation_id", as: String.self) }
    }

    /// The members of a conversation (empty for an unknown one).
    public static func members(of conversationId: String, in db: any SQLDatabase) async throws -> [String] {
        try await db.raw("SELECT user_id FROM conversation_members WHERE conversation_id = \(bind: conversationId)").all()
            .map { try $0.decode(column: "user_id", as: String.self) }
    }
}
