import CircleStore
import SQLKit

/// Presence's part of destroying an account (ARCHITECTURE 8): the member's chosen state, custom
/// status and closed sockets. Open sockets close with their sessions, and presence records the
/// close; the row is removed once that has happened (the job's last step).
package enum PresenceDestruction {
    package static func delete(userId: String, in db: any SQLDatabase) async throws {
        try await db.raw("DELETE FROM user_presence WHERE user_id = \(bind: userId)").run()
        try await db.raw("DELETE FROM presence_sockets WHERE user_id = \(bind: userId) AND closed_at > 0").run()
    }
}
