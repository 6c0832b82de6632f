import SQLKit

/// One step of the database schema: applied once, in order, inside a transaction.
public struct Migration: Sendable {
    /// Position in the one ordered list; versions are 1, 2, 3, ... without gaps.
    public let version: Int
    /// Short name recorded with the version, so a database migrated by another build is noticed.
    public let name: String
    /// The service that owns (is the only writer of) the tables this step creates.
    public let owner: String
    /// Applies the step.
    public let apply: @Sendable (any SQLDatabase, DatabaseEngine) async throws -> Void

    public init(version: Int, name: String, owner: String, apply: @escaping @Sendable (any SQLDatabase, DatabaseEngine) async throws -> Void) {
        self.version = version
        self.name = name
        self.owner = owner
        self.apply = apply
    }

    /// A step made of plain DDL statements, written once with engine-specific type names.
    public init(version: Int, name: String, owner: String, statements: @escaping @Sendable (SQLTypes) -> [String]) {
        self.init(version: version, name: name, owner: owner) { db, engine in
            for statement in statements(SQLTypes(engine: engine)) {
                try await db.raw(SQLQueryString(statement)).run()
            }
        }
    }
}

/// Column type names that differ between the engines.
public struct SQLTypes: Sendable {
    public let engine: DatabaseEngine
    /// 64-bit integer.
    public var bigint: String { engine == .postgres ? "BIGINT" : "INTEGER" }
    /// Raw bytes.
    public var bytes: String { engine == .postgres ? "BYTEA" : "BLOB" }
    /// true/false.
    public var bool: String { engine == .postgres ? "BOOLEAN" : "INTEGER" }
}
