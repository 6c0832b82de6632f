import CircleCore
import CircleStore

/// Deleting disappearing messages after their expiry and messages past their conversation's
/// retention (PROTOCOL 5, 6, 8). Messaging owns the `messages` table and exports these
/// operations for the cleanup service to run.
public enum MessageExpiry {
    /// Deletes at most `limit` messages expired at `now` in one transaction; returns how many.
    /// Concurrent callers on PostgreSQL take disjoint rows (`FOR UPDATE SKIP LOCKED`).
    public static func deleteBatch(store: any DatabaseStore, now: Timestamp, limit: Int) async throws -> Int {
        try await store.write { db in
            try await MessageRepository.deleteExpired(before: now, limit: limit, engine: store.engine, in: db)
        }
    }

    /// The conversations with a retention and the oldest receipt time each keeps at `now`.
    public static func retentions(store: any DatabaseStore, now: Timestamp) async throws -> [(conversationId: String, keepsFrom: Int64)] {
        try await store.read { db in try await MessageRepository.retentions(at: now, in: db) }
    }

    /// Deletes a batch (at most `limit`) of the conversation's messages past its retention in
    /// one transaction; nil when none is left (found by a read: an idle conversation costs no
    /// write). Each batch deletes at least the oldest, so repeating until nil ends.
    public static func deleteUnretainedBatch(store: any DatabaseStore, conversationId: String, keepsFrom: Int64, limit: Int) async throws -> Int? {
        guard let from = try await store.read({ db in try await MessageRepository.oldestUnretained(conversationId, before: keepsFrom, in: db) }) else {
            return nil
        }
        return try await store.write { db in
            try await MessageRepository.deleteUnretained(conversationId, from: from, before: keepsFrom, limit: limit, engine: store.engine, in: db)
        }
    }
}
