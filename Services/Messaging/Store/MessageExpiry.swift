import CircleCore
import CircleStore

/// Deleting disappearing messages after their expiry (PROTOCOL 6, 8). Messaging owns the
/// `messages` table and exports this one operation for the cleanup service to run.
public enum MessageExpiry {
    /// Deletes at most `limit` messages expired at `now` in one transaction; returns how many.
    /// Concurrent callers on PostgreSQL take disjoint rows (`FOR UPDATE SKIP LOCKED`).
    public static func deleteBatch(store: any DatabaseStore, now: Timestamp, limit: Int) async throws -> Int {
        try await store.write { db in
            try await MessageRepository.deleteExpired(before: now, limit: limit, engine: store.engine, in: db)
        }
    }
}
