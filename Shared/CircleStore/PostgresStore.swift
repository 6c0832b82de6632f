import CircleConfig
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresKit
import PostgresNIO
import SQLKit
import ServiceLifecycle

/// A PostgreSQL store that also lends a connection itself, for what only PostgreSQL does
/// (prepared statements, array parameters).
public protocol PostgresConnectionStore: DatabaseStore {
    /// Runs `body` with one connection (on its event loop when pooled).
    func withConnection<R: Sendable>(_ body: @Sendable (PostgresConnection) async throws -> R) async throws -> R
}

/// The PostgreSQL engine: a connection pool (PostgresNIO's `PostgresClient`) seen through SQLKit.
///
/// It is a `Service`: the pool runs while the service group runs and closes on shutdown.
public final class PostgresStore: PostgresConnectionStore, Service {
    public let engine = DatabaseEngine.postgres
    let client: PostgresClient
    let logger: Logger

    public init(settings: PostgresSettings, logger: Logger) throws {
        self.client = PostgresClient(configuration: try Self.clientConfiguration(settings), backgroundLogger: logger)
        self.logger = logger
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await self.client.run()
        }
    }

    public func read<R: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await withConnection { connection in try await body(connection.sql(queryLogLevel: nil)) }
    }

    public func withConnection<R: Sendable>(_ body: @Sendable (PostgresConnection) async throws -> R) async throws -> R {
        try await client.withConnection { connection in
            try await withTaskExecutorPreference(EventLoopTaskExecutor(connection.eventLoop)) {
                try await body(connection)
            }
        }
    }

    public func statement<R: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await read(body)
    }

    public func write<R: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await withConnection { connection in try await Self.transaction(on: connection, logger: self.logger, body) }
    }

    /// `body` between BEGIN and COMMIT (ROLLBACK when it throws) on one connection.
    static func transaction<R: Sendable>(on connection: PostgresConnection, logger: Logger, _ body: @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        let db = connection.sql(queryLogLevel: nil)
        try await db.raw("BEGIN").run()
        do {
            let result = try await body(db)
            try await db.raw("COMMIT").run()
            return result
        } catch {
            // The caller's error is what matters; a failed rollback closes the connection.
            do {
                try await db.raw("ROLLBACK").run()
            } catch {
                logger.error("rollback failed", metadata: ["error": "\(PostgresStore.describe(error))"])
                try? await connection.close()
            }
            throw error
        }
    }

    static func clientConfiguration(_ settings: PostgresSettings) throws -> PostgresClient.Configuration {
        var configuration = PostgresClient.Configuration(
            host: settings.host, port: settings.port, username: settings.username,
            password: settings.password, database: settings.database,
            tls: settings.requireTLS ? .require(.makeClientConfiguration()) : .disable
        )
        configuration.options.maximumConnections = settings.poolSize
        configuration.options.connectTimeout = .seconds(5)
        return configuration
    }

    /// Opens one connection, runs `body` with it as a store and closes it; fails fast with a line
    /// naming `postgres.url` when the server cannot be reached (used before anything else starts).
    public static func withSingleConnection<R: Sendable>(
        _ settings: PostgresSettings, logger: Logger,
        _ body: @Sendable (any DatabaseStore) async throws -> R
    ) async throws -> R {
        var configuration = PostgresConnection.Configuration(
            host: settings.host, port: settings.port, username: settings.username,
            password: settings.password, database: settings.database,
            tls: settings.requireTLS ? .require(try NIOSSLContext(configuration: .makeClientConfiguration())) : .disable
        )
        configuration.options.connectTimeout = .seconds(5)
        let connection: PostgresConnection
        do {
            connection = try await PostgresConnection.connect(configuration: configuration, id: 1, logger: logger)
        } catch {
            throw ConfigError(.postgresURL, "cannot connect to \(settings): \(describe(error))")
        }
        do {
            let result = try await body(SingleConnectionStore(connection: connection, logger: logger))
            try? await connection.close()
            return result
        } catch {
            try? await connection.close()
            throw error
        }
    }

    /// A one-line account of a PostgresNIO error without anything secret in it.
    public static func describe(_ error: any Error) -> String {
        if let psql = error as? PSQLError {
            if let message = psql.serverInfo?[.message] { return message }
            if let underlying = psql.underlying { return "\(underlying)" }
            return "\(psql.code)"
        }
        return "\(error)"
    }
}

/// One PostgreSQL connection seen as a store, used by one caller at a time (start-up work).
final class SingleConnectionStore: PostgresConnectionStore {
    let engine = DatabaseEngine.postgres
    let connection: PostgresConnection
    let gate = AsyncGate()
    let logger: Logger

    init(connection: PostgresConnection, logger: Logger) {
        self.connection = connection
        self.logger = logger
    }

    func read<R: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await gate.withGate { try await body(connection.sql(queryLogLevel: nil)) }
    }

    func write<R: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
        try await gate.withGate { try await PostgresStore.transaction(on: connection, logger: logger, body) }
    }

    func withConnection<R: Sendable>(_ body: @Sendable (PostgresConnection) async throws -> R) async throws -> R {
        try await gate.withGate { try await body(connection) }
    }
}
