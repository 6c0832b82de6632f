import CircleCore
import Logging
import SQLKit

/// A step recorded in `schema_migrations`.
public struct AppliedStep: Sendable, Equatable {
    public let version: Int
    public let name: String
}

/// Applies and checks the ordered schema steps, recorded in `schema_migrations`.
public struct Migrator: Sendable {
    public let migrations: [Migration]
    let logger: Logger

    public init(migrations: [Migration] = Migrations.all, logger: Logger) {
        precondition(migrations.enumerated().allSatisfy { $0.offset + 1 == $0.element.version }, "migration versions must be 1...n")
        self.migrations = migrations
        self.logger = logger
    }

    public var latestVersion: Int { migrations.last?.version ?? 0 }

    /// The applied steps, in order: (version, name).
    public func applied(on db: any SQLDatabase) async throws -> [AppliedStep] {
        guard try await hasMigrationTable(db) else { return [] }
        return try await db.raw("SELECT version, name FROM schema_migrations ORDER BY version").all().map {
            AppliedStep(version: try $0.decode(column: "version", as: Int.self), name: try $0.decode(column: "name", as: String.self))
        }
    }

    /// The current schema version (0 for an empty database).
    public func currentVersion(of store: any DatabaseStore) async throws -> Int {
        try await store.read { db in try await applied(on: db).last?.version ?? 0 }
    }

    /// Applies every pending step, each in its own transaction; returns the versions applied.
    ///
    /// Safe to run from two processes at once: on PostgreSQL each step takes an advisory lock
    /// and re-reads the version; on SQLite `BEGIN IMMEDIATE` serialises writers.
    @discardableResult
    public func migrate(_ store: any DatabaseStore) async throws -> [Int] {
        try await store.write { db in
            try await db.raw("""
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version INTEGER PRIMARY KEY,
                    name TEXT NOT NULL,
                    applied_at BIGINT NOT NULL
                )
                """).run()
        }
        var done: [Int] = []
        for migration in migrations {
            let ran = try await store.write { db -> Bool in
                if store.engine == .postgres {
                    try await db.raw("SELECT pg_advisory_xact_lock(7243510431)").run()
                }
                let steps = try await self.applied(on: db)
                try check(applied: steps)
                if steps.contains(where: { $0.version == migration.version }) { return false }
                try await migration.apply(db, store.engine)
                try await db.raw("""
                    INSERT INTO schema_migrations (version, name, applied_at)
                    VALUES (\(bind: migration.version), \(bind: migration.name), \(bind: Timestamp.now().millis))
                    """).run()
                return true
            }
            if ran {
                logger.info("applied migration", metadata: ["version": "\(migration.version)", "name": "\(migration.name)"])
                done.append(migration.version)
            }
        }
        return done
    }

    /// Refuses a schema newer than this build, or one whose recorded steps differ from ours.
    public func checkNotNewer(_ store: any DatabaseStore) async throws {
        let steps = try await store.read { db in try await self.applied(on: db) }
        try check(applied: steps)
    }

    /// For the service executables: the schema must be exactly this build's latest version.
    public func checkExact(_ store: any DatabaseStore) async throws {
        let steps = try await store.read { db in try await self.applied(on: db) }
        try check(applied: steps)
        let found = steps.last?.version ?? 0
        if found < latestVersion { throw StoreError.schemaOlder(found: found, expected: latestVersion) }
    }

    func check(applied: [AppliedStep]) throws {
        if let last = applied.last, last.version > latestVersion {
            throw StoreError.schemaNewer(found: last.version, known: latestVersion)
        }
        for step in applied {
            let ours = migrations[step.version - 1]
            if ours.name != step.name {
                throw StoreError.schemaMismatch(version: step.version, found: step.name, expected: ours.name)
            }
        }
    }

    func hasMigrationTable(_ db: any SQLDatabase) async throws -> Bool {
        switch db.dialect.name {
        case "postgresql":
            let row = try await db.raw("SELECT to_regclass('schema_migrations') IS NOT NULL AS present").first()
            return try row?.decode(column: "present", as: Bool.self) ?? false
        default:
            let row = try await db.raw("SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'").first()
            return try (row?.decode(column: "n", as: Int.self) ?? 0) > 0
        }
    }
}
