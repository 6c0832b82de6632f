import CircleCore
import SQLKit

/// Whether the whole server is being destroyed (ARCHITECTURE 8): from a `server` destruction
/// job's approval until the process that saw it stops. Its rows are being emptied and its keys
/// are gone, so whatever anyone registers, signs in with or opens meanwhile would either vanish
/// with the next table or outlive the destruction on keys that no longer exist.
public enum ServerLockdown {
    /// True while a server's destruction past its approval runs, or once one finished after
    /// `startedAt` (the caller still runs on the secrets it destroyed; started again, it has new
    /// ones and the finished job no longer counts).
    public static func isDestroying(since startedAt: Timestamp, in db: any SQLDatabase) async throws -> Bool {
        try await db.raw("""
            SELECT 1 AS one FROM destruction_jobs WHERE kind = 'server' AND step NOT IN ('approval', 'cancelled')
               AND (state <> 'done' OR finished_at >= \(bind: startedAt.millis)) LIMIT 1
            """).first() != nil
    }
}
