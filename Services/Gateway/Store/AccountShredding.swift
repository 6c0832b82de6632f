import CircleCore
import CircleStore
import Foundation
import SQLKit

/// The gateway's part of destroying an account (ARCHITECTURE 8), run in the destruction job's
/// first transaction: after it commits, nothing the server keeps lets anyone sign in as the
/// member or unwrap their keys, with or without the password.
package enum AccountShredding {
    /// Ends every session, deletes both key bundles (main and recovery copy) and the pins, and
    /// replaces the login verifier and salt with nothing; the row stays as the tombstone that
    /// other members' clients show as "left the Circle" (its public keys still verify what the
    /// member signed). Returns the revoked session ids.
    package static func shred(userId: String, at now: Timestamp, in db: any SQLDatabase) async throws -> [String] {
        let revoked = try await AccountRepository.revokeSessions(userId: userId, at: now, in: db)
        try await db.raw("DELETE FROM key_bundles WHERE user_id = \(bind: userId)").run()
        try await db.raw("DELETE FROM pins WHERE user_id = \(bind: userId)").run()
        try await db.raw("""
            UPDATE users SET auth_verifier = \(bind: Data()), salt = \(bind: Data()), destroyed_at = \(bind: now.millis), updated_at = \(bind: now.millis)
            WHERE id = \(bind: userId)
            """).run()
        return revoked
    }

    /// Deletes the member's sessions (revoked since the first step), at most `limit`; returns how many.
    package static func deleteSessions(userId: String, limit: Int, in db: any SQLDatabase) async throws -> Int {
        try await db.raw("""
            DELETE FROM sessions WHERE id IN (SELECT id FROM sessions WHERE user_id = \(bind: userId) LIMIT \(bind: limit)) RETURNING id
            """).all().count
    }
}

/// Sessions that ended (ARCHITECTURE 8): revoked, idle past the timeout or past the maximum age.
package enum EndedSessions {
    /// Deletes at most `limit` sessions that were revoked, or whose last use is before
    /// `idleBefore`, or whose creation is before `createdBefore`; returns how many.
    package static func delete(idleBefore: Timestamp, createdBefore: Timestamp, limit: Int, in db: any SQLDatabase) async throws -> Int {
        try await db.raw("""
            DELETE FROM sessions WHERE id IN (
                SELECT id FROM sessions WHERE revoked_at IS NOT NULL OR last_seen_at < \(bind: idleBefore.millis) OR created_at < \(bind: createdBefore.millis)
                LIMIT \(bind: limit)
            ) RETURNING id
            """).all().count
    }
}

/// Re-authentication (ARCHITECTURE 8): proving the password again opens a short window in which
/// the session may ask for what cannot be undone.
package enum Reauthentication {
    /// How long a re-authentication lasts.
    package static let window: Int64 = 5 * 60_000

    package static func record(sessionId: String, at now: Timestamp, in db: any SQLDatabase) async throws {
        try await db.raw("UPDATE sessions SET reauthenticated_at = \(bind: now.millis) WHERE id = \(bind: sessionId) AND revoked_at IS NULL").run()
    }

    /// Whether the session proved its password within the window before `now`.
    package static func isFresh(sessionId: String, at now: Timestamp, in db: any SQLDatabase) async throws -> Bool {
        guard let row = try await db.raw("""
            SELECT reauthenticated_at FROM sessions WHERE id = \(bind: sessionId) AND revoked_at IS NULL
            """).first() else { return false }
        let at = try row.decode(column: "reauthenticated_at", as: Int64.self)
        return at > 0 && at <= now.millis && now.millis - at <= window
    }
}
