import CircleStore
import SQLKit

/// Signaling's part of destroying a conversation (ARCHITECTURE 8): its call records (who called
/// whom, when, for how long) go with it.
package enum CallDestruction {
    /// Deletes the conversation's calls and their participants; returns how many calls.
    package static func deleteCalls(ofConversation conversationId: String, in db: any SQLDatabase) async throws -> Int {
        try await db.raw("""
            DELETE FROM call_participants WHERE call_id IN (SELECT id FROM video_calls WHERE conversation_id = \(bind: conversationId))
            """).run()
        return try await db.raw("DELETE FROM video_calls WHERE conversation_id = \(bind: conversationId) RETURNING id").all().count
    }
}
