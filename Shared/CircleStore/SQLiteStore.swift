import Foundation
import Logging
import NIOCore
import NIOPosix
import SQLKit
import SQLiteKit
import SQLiteNIO
import ServiceLifecycle

/// The SQLite engine of the embedded mode: one connection to a file, used by one caller at a time,
/// and a second one that only runs the checkpoints bulk jobs ask for between batches.
///
/// SQLite allows a single writer, and a transaction must not interleave with other statements
/// on its connection, so every use of the first goes through an `AsyncGate`. WAL with `synchronous=FULL`:
/// a committed change survives a crash of the process or of the machine.
public final class SQLiteStore: DatabaseStore, Service {
    public let engine = DatabaseEngine.sqlite
    let connection: SQLiteConnection
    let gate = AsyncGate()
    let logger: Logger
    /// SQLite's blocking calls (and its busy waits) run on a thread of this store's own, so one
    /// database waiting on a lock never starves another, or NIO's shared pool.
    let threadPool: NIOThreadPool
    /// A second connection, on its own thread, for the checkpoints a bulk job asks for between
    /// its batches: WAL lets a checkpoint copy pages into the file while the writer goes on, so
    /// its copying and its disk flush do not hold the gate the members' writes wait at. Nil for
    /// an in-memory database.
    let checkpointer: (connection: SQLiteConnection, threadPool: NIOThreadPool)?

    private init(connection: SQLiteConnection, threadPool: NIOThreadPool, checkpointer: (SQLiteConnection, NIOThreadPool)?, logger: Logger) {
        self.connection = connection
        self.threadPool = threadPool
        self.checkpointer = checkpointer
        self.logger = logger
    }

    /// Opens (creating if needed) the database file and its folder.
    public static func open(path: String, logger: Logger) async throws -> SQLiteStore {
        let storage: SQLiteConnection.Storage
        if path == ":memory:" {
            storage = .memory
        } else {
            let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
            storage = .file(path: path)
        }
        let (connection, threadPool) = try await connect(storage, logger: logger)
        var checkpointer: (SQLiteConnection, NIOThreadPool)?
        do {
            // secure_delete: a deleted row's bytes are overwritten with zeros, not left in free
            // pages (destruction and expiry promise that nothing of it stays in the file).
            for pragma in ["PRAGMA busy_timeout = 5000", "PRAGMA journal_mode = WAL", "PRAGMA synchronous = FULL", "PRAGMA foreign_keys = ON",
                           "PRAGMA secure_delete = ON"] {
                try await connection.sql(queryLogLevel: nil).raw(SQLQueryString(pragma)).run()
            }
            if case .file = storage {
                let second = try await connect(storage, logger: logger)
                checkpointer = second
                try await second.0.sql(queryLogLevel: nil).raw("PRAGMA busy_timeout = 5000").run()
            }
        } catch {
            // A connection left open would trip SQLiteNIO's check that every handle is closed.
            for (opened, pool) in [checkpointer, (connection, threadPool)].compactMap({ $0 }) {
                try? await disconnect(opened, pool)
            }
            throw error
        }
        return SQLiteStore(connection: connection, threadPool: threadPool, checkpointer: checkpointer, logger: logger)
    }

    /// A connection on a thread of its own.
    private static func connect(_ storage: SQLiteConnection.Storage, logger: Logger) async throws -> (SQLiteConnection, NIOThreadPool) {
        let threadPool = NIOThreadPool(numberOfThreads: 1)
        threadPool.start()
        do {
            return (try await SQLiteConnection.open(storage: storage, threadPool: threadPool, logger: logger, on: MultiThreadedEventLoopGroup.singleton.any()), threadPool)
        } catch {
            try? await threadPool.shutdownGracefully()
            throw error
        }
    }

    /// Closes a connection from `connect` and stops its thread (even when closing failed).
    private static func disconnect(_ connection: SQLiteConnection, _ threadPool: NIOThreadPool) async throws {
        let closing: EventLoopFuture<Void> = connection.close()
        var failure: (any Error)?
        do { try await closing.get() } catch { failure = error }
        try? await threadPool.shutdownGracefully()
        if let failure { throw failure }
    }

    public func run() async throws {
        try? await gracefulShutdown()
        try await close()
    }

    /// Closes the connection once nobody is using it (even when the caller is being cancelled:
    /// an unclosed connection would lose the WAL checkpoint).
    public func close() async throws {
        _ = try await gate.withGate {
            if !connection.isClosed {
                if let checkpointer { try? await Self.disconnect(checkpointer.connection, checkpointer.threadPool) }
                try await Self.disconnect(connection, threadPool)
            }
        }
    }

    public func read<R: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await read(yielding: false, body)
    }

    public func yieldingRead<R: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await read(yielding: true, body)
    }

    private func read<R: Sendable>(yielding: Bool, _ body: @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await gate.withGate(yielding: yielding) {
            try await body(connection.sql(queryLogLevel: nil))
        }
    }

    public func write<R: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await transaction(yielding: false, body)
    }

    public func yieldingWrite<R: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await transaction(yielding: true, body)
    }

    public func sinceLastUse() async -> Duration? {
        await gate.lastUse.map { ContinuousClock.now - $0 }
    }

    private func transaction<R: Sendable>(yielding: Bool, _ body: @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await gate.withGate(yielding: yielding) {
            let db = connection.sql(queryLogLevel: nil)
            // BEGIN, COMMIT and ROLLBACK go through the future-based API, which a cancelled task
            // cannot interrupt: a transaction is always finished one way or the other.
            try await statement("BEGIN IMMEDIATE")
            do {
                let result = try await body(db)
                try await statement("COMMIT")
                return result
            } catch {
                do {
                    try await statement("ROLLBACK")
                } catch {
                    logger.error("rollback failed", metadata: ["error": "\(String(reflecting: error))"])
                }
                throw error
            }
        }
    }

    /// Copies the write-ahead log into the file and empties it, rebuilds the file without free
    /// pages, and empties the log again: old page images stay in neither.
    public func compact() async throws {
        try await gate.withGate {
            try await checkpoint()
            try await statement("VACUUM")
            try await checkpoint()
        }
    }

    /// Copies the write-ahead log into the file (deleted rows are zeroed there: `secure_delete`)
    /// and, `emptying`, empties it, holding the gate; otherwise a PASSIVE checkpoint on the
    /// checkpoint connection, which neither waits nor holds up the writer (an in-memory
    /// database has no log).
    public func flushLog(emptying: Bool) async throws {
        guard emptying else {
            if let checkpointer {
                let future: EventLoopFuture<[SQLiteRow]> = checkpointer.connection.query("PRAGMA wal_checkpoint(PASSIVE)", [])
                _ = try await future.get()
            }
            return
        }
        try await gate.withGate { try await checkpoint() }
    }

    /// A TRUNCATE checkpoint, repeated while another connection's reader keeps it from finishing
    /// (SQLite answers busy instead of failing), for up to 5 s.
    private func checkpoint() async throws {
        for _ in 0..<50 {
            let future: EventLoopFuture<[SQLiteRow]> = connection.query("PRAGMA wal_checkpoint(TRUNCATE)", [])
            if try await future.get().first?.column("busy")?.integer ?? 0 == 0 { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw StoreError.busy("the write-ahead log could not be emptied: another connection kept reading it for 5 s")
    }

    private func statement(_ sql: String) async throws {
        let future: EventLoopFuture<[SQLiteRow]> = connection.query(sql, [])
        _ = try await future.get()
    }
}
