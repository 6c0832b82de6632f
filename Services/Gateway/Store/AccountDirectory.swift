import Foundation
import SQLKit

/// A member's public keys, as the directory publishes them.
public struct DirectoryKeys: Sendable, Equatable {
    public let userId: String
    public let identityKey: [UInt8]
    public let x25519Key: [UInt8]
    public let kxCert: [UInt8]
}

/// Read-only access to the gateway's `users` table for the other services (ARCHITECTURE 2: each
/// table has one writer, the gateway here; others only read through its repository).
public enum AccountDirectory {
    /// The public keys of these users; unknown ids are simply absent.
    public static func keys(for userIds: some Collection<String>, in db: any SQLDatabase) async throws -> [String: DirectoryKeys] {
        guard !userIds.isEmpty else { return [:] }
        var query = SQLQueryString("SELECT id, identity_key, x25519_key, kx_cert FROM users WHERE id IN (")
        for (index, id) in Set(userIds).sorted().enumerated() {
            if index > 0 { query += ", " }
            query += "\(bind: id)"
        }
        query += ")"
        var found: [String: DirectoryKeys] = [:]
        for row in try await db.raw(query).all() {
            let keys = DirectoryKeys(
                userId: try row.decode(column: "id", as: String.self),
                identityKey: Array(try row.decode(column: "identity_key", as: Data.self)),
                x25519Key: Array(try row.decode(column: "x25519_key", as: Data.self)),
                kxCert: Array(try row.decode(column: "kx_cert", as: Data.self))
            )
            found[keys.userId] = keys
        }
        return found
    }
}
