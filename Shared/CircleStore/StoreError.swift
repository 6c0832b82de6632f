/// Errors from the storage layer that a person running the server must act on.
public struct StoreError: Error, CustomStringConvertible, Sendable, Equatable {
    private enum Kind: Equatable {
        case schemaNewer(found: Int, known: Int)
        case schemaOlder(found: Int, expected: Int)
        case schemaMismatch(version: Int, found: String, expected: String)
        case corrupt(String)
        case busy(String)
    }
    private let kind: Kind

    /// The database was migrated by a newer build.
    public static func schemaNewer(found: Int, known: Int) -> StoreError { .init(kind: .schemaNewer(found: found, known: known)) }
    /// The database needs `circle migrate`.
    public static func schemaOlder(found: Int, expected: Int) -> StoreError { .init(kind: .schemaOlder(found: found, expected: expected)) }
    /// A recorded step has another name than this build's step of that version.
    public static func schemaMismatch(version: Int, found: String, expected: String) -> StoreError {
        .init(kind: .schemaMismatch(version: version, found: found, expected: expected))
    }
    /// Stored data breaks an invariant.
    public static func corrupt(_ what: String) -> StoreError { .init(kind: .corrupt(what)) }
    /// Another connection kept the database from doing what was asked; try again.
    public static func busy(_ what: String) -> StoreError { .init(kind: .busy(what)) }

    public var description: String {
        switch kind {
        case .schemaNewer(let found, let known):
            "database schema is at version \(found), newer than this build knows (\(known)): run a newer Circle"
        case .schemaOlder(let found, let expected):
            "database schema is at version \(found) but this build needs version \(expected): run `circle migrate` first"
        case .schemaMismatch(let version, let found, let expected):
            "database schema step \(version) is \"\(found)\" but this build's step \(version) is \"\(expected)\": the database belongs to another build"
        case .corrupt(let what):
            "database is inconsistent: \(what)"
        case .busy(let what):
            "database busy: \(what)"
        }
    }
}
