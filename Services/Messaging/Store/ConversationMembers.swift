import CircleStore
import SQLKit

/// Read-only view of conversation membership for other services (ARCHITECTURE 11: messaging owns
/// these tables; the vault only asks who may read a conversation's files).
public enum ConversationMembers {
    /// Whether `userId` is a member of the conversation at its current head.
    public static func isMember(_ userId: String, of conversationId: String, in db: any SQLDatabase) async throws -> Bool {
        try await db.raw("""
            SELECT 1 AS one FROM conversation_members WHERE conversation_id = \(bind: conversationId) AND user_id = \(bind: userId)
            """).first() != nil
    }
}
