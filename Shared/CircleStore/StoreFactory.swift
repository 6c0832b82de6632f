import CircleConfig
import Logging
import ServiceLifecycle

/// How a process treats the schema when it opens the database.
public enum SchemaPolicy: Sendable {
    /// Apply pending steps (`circle migrate` and the embedded `circle serve`).
    case migrate
    /// Require exactly this build's version (the service executables).
    case requireExact
}

/// Opens the configured database, checks or migrates its schema, and returns it with the
/// `Service` that keeps it open. Fails fast, before anything listens, when it cannot.
public enum StoreFactory {
    public static func open(
        _ settings: DatabaseSettings, policy: SchemaPolicy, logger: Logger
    ) async throws -> (store: any DatabaseStore, service: any Service) {
        switch settings {
        case .sqlite(let path):
            let store = try await openSQLite(path, logger: logger)
            do {
                try await apply(policy, to: store, logger: logger)
            } catch {
                try? await store.close()
                throw error
            }
            return (store, store)
        case .postgres(let postgres):
            // One direct connection first: a clear error now beats a pool retrying forever.
            try await PostgresStore.withSingleConnection(postgres, logger: logger) { store in
                try await apply(policy, to: store, logger: logger)
            }
            let store = try PostgresStore(settings: postgres, logger: logger)
            return (store, store)
        }
    }

    /// Applies pending migrations and closes the database again (`circle migrate`);
    /// returns the schema version reached.
    public static func migrate(_ settings: DatabaseSettings, logger: Logger) async throws -> Int {
        try await withStore(settings, policy: .migrate, logger: logger) { store in
            try await Migrator(logger: logger).currentVersion(of: store)
        }
    }

    /// Runs `body` on the database and closes it (admin commands that write directly). The
    /// embedded SQLite file is migrated first; PostgreSQL must already be at this build's version.
    public static func withMigratedStore<R: Sendable>(_ settings: DatabaseSettings, logger: Logger, _ body: @Sendable (any DatabaseStore) async throws -> R) async throws -> R {
        let policy: SchemaPolicy
        switch settings {
        case .sqlite: policy = .migrate
        case .postgres: policy = .requireExact
        }
        return try await withStore(settings, policy: policy, logger: logger, body)
    }

    /// Opens one connection, applies `policy`, runs `body`, and closes the connection.
    static func withStore<R: Sendable>(_ settings: DatabaseSettings, policy: SchemaPolicy, logger: Logger, _ body: @Sendable (any DatabaseStore) async throws -> R) async throws -> R {
        switch settings {
        case .sqlite(let path):
            let store = try await openSQLite(path, logger: logger)
            do {
                try await apply(policy, to: store, logger: logger)
                let result = try await body(store)
                try await store.close()
                return result
            } catch {
                try? await store.close()
                throw error
            }
        case .postgres(let postgres):
            return try await PostgresStore.withSingleConnection(postgres, logger: logger) { store in
                try await apply(policy, to: store, logger: logger)
                return try await body(store)
            }
        }
    }

    static func apply(_ policy: SchemaPolicy, to store: any DatabaseStore, logger: Logger) async throws {
        let migrator = Migrator(logger: logger)
        switch policy {
        case .migrate: try await migrator.migrate(store)
        case .requireExact: try await migrator.checkExact(store)
        }
    }

    static func openSQLite(_ path: String, logger: Logger) async throws -> SQLiteStore {
        do {
            return try await SQLiteStore.open(path: path, logger: logger)
        } catch {
            throw ConfigError(.sqlitePath, "cannot open SQLite database at \(path): \(error)")
        }
    }
}
