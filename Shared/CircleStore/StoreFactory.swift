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
        let migrator = Migrator(logger: logger)
        switch settings {
        case .sqlite(let path):
            let store: SQLiteStore
            do {
                store = try await SQLiteStore.open(path: path, logger: logger)
            } catch {
                throw ConfigError(.sqlitePath, "cannot open SQLite database at \(path): \(error)")
            }
            do {
                switch policy {
                case .migrate: try await migrator.migrate(store)
                case .requireExact: try await migrator.checkExact(store)
                }
            } catch {
                try? await store.close()
                throw error
            }
            return (store, store)
        case .postgres(let postgres):
            // One direct connection first: a clear error now beats a pool retrying forever.
            try await PostgresStore.withSingleConnection(postgres, logger: logger) { store in
                switch policy {
                case .migrate: try await migrator.migrate(store)
                case .requireExact: try await migrator.checkExact(store)
                }
            }
            let store = try PostgresStore(settings: postgres, logger: logger)
            return (store, store)
        }
    }

    /// Applies pending migrations and closes the database again (`circle migrate`);
    /// returns the schema version reached.
    public static func migrate(_ settings: DatabaseSettings, logger: Logger) async throws -> Int {
        let migrator = Migrator(logger: logger)
        switch settings {
        case .sqlite(let path):
            let store: SQLiteStore
            do {
                store = try await SQLiteStore.open(path: path, logger: logger)
            } catch {
                throw ConfigError(.sqlitePath, "cannot open SQLite database at \(path): \(error)")
            }
            do {
                try await migrator.migrate(store)
                let version = try await migrator.currentVersion(of: store)
                try await store.close()
                return version
            } catch {
                try? await store.close()
                throw error
            }
        case .postgres(let postgres):
            return try await PostgresStore.withSingleConnection(postgres, logger: logger) { store in
                try await migrator.migrate(store)
                return try await migrator.currentVersion(of: store)
            }
        }
    }

    /// Runs `body` with the database migrated to this build's version, then closes it
    /// (admin commands that write directly).
    public static func withMigratedStore<R: Sendable>(_ settings: DatabaseSettings, logger: Logger, _ body: @Sendable (any DatabaseStore) async throws -> R) async throws -> R {
        let migrator = Migrator(logger: logger)
        switch settings {
        case .sqlite(let path):
            let store = try await SQLiteStore.open(path: path, logger: logger)
            do {
                try await migrator.migrate(store)
                let result = try await body(store)
                try await store.close()
                return result
            } catch {
                try? await store.close()
                throw error
            }
        case .postgres(let postgres):
            return try await PostgresStore.withSingleConnection(postgres, logger: logger) { store in
                try await migrator.checkExact(store)
                return try await body(store)
            }
        }
    }
}
