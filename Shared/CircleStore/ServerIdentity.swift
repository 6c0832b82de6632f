import CircleCore
import SQLKit

/// The server's stable identity, created by the migration that made `server_settings`.
///
/// Clients mix the server id into their salts (PROTOCOL 2), so it never changes after creation.
public enum ServerIdentity {
    /// A fresh random id: 128 bits as 32 lowercase hex digits.
    public static func newServerID() -> String {
        Hex.encode(SecureRandom.bytes(16))
    }

    /// Reads the server id.
    public static func load(from store: any DatabaseStore) async throws -> String {
        try await store.read { db in
            guard let row = try await db.raw("SELECT value FROM server_settings WHERE key = 'server_id'").first() else {
                throw StoreError.corrupt("server_settings has no server_id")
            }
            return try row.decode(column: "value", as: String.self)
        }
    }
}
