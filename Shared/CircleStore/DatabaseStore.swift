import SQLKit

/// The two storage engines Circle runs on.
public enum DatabaseEngine: String, Sendable, CaseIterable {
    case postgres, sqlite
}

/// One way to reach the database, whichever engine is behind it.
///
/// Repositories speak SQLKit through the connection they are handed, always with bound
/// parameters. `write` runs its body in a transaction: everything it does commits together or not
/// at all, which is how the event log rides in the same transaction as the change it reports.
public protocol DatabaseStore: Sendable {
    /// Which engine this is, for the few statements whose spelling differs.
    var engine: DatabaseEngine { get }

    /// Runs `body` on a connection outside any explicit transaction.
    func read<R: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> R) async throws -> R

    /// Runs `body` inside one transaction, committed if it returns and rolled back if it throws.
    func write<R: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> R) async throws -> R

    /// Runs `body`, a write of one statement, without an explicit transaction: the statement is
    /// its own transaction, committed before this returns (two round trips fewer than `write` on
    /// PostgreSQL). Engines without the saving run it as `write`.
    func statement<R: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> R) async throws -> R

    /// `write` for background work (a destruction's batches, the relays' polls): where callers
    /// queue for one writer (SQLite), it waits behind the other callers (up to a bound), so a
    /// member's request does not queue behind it, and it does not count as use (`sinceLastUse`).
    func yieldingWrite<R: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> R) async throws -> R

    /// `read` for background work, in the same way.
    func yieldingRead<R: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> R) async throws -> R

    /// How long ago a caller other than background work last used the database, where that is
    /// known and matters (SQLite's one connection, which background work shares with the members'
    /// requests); nil elsewhere.
    func sinceLastUse() async -> Duration?

    /// Answers when the database does (readiness).
    func ping() async throws

    /// Rewrites the database so that deleted rows leave no trace in its files (after the whole
    /// server's destruction). Engines whose deleted rows already went with their files (a
    /// PostgreSQL TRUNCATE) do nothing.
    func compact() async throws

    /// Copies the engine's own log of page images into the database: `emptying`, all of it,
    /// waiting for readers, then empties the log, so deleted rows leave no copy there (after each
    /// destruction); otherwise as much as it can without waiting (between a bulk job's batches,
    /// so the members' own writes do not pay for the copy). Engines without such a log do nothing.
    func flushLog(emptying: Bool) async throws
}

extension DatabaseStore {
    public func statement<R: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await write(body)
    }

    public func yieldingWrite<R: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await write(body)
    }

    public func yieldingRead<R: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await read(body)
    }

    public func sinceLastUse() async -> Duration? { nil }

    public func ping() async throws {
        try await read { db in try await db.raw("SELECT 1").run() }
    }

    public func compact() async throws {}

    public func flushLog(emptying: Bool) async throws {}
}
