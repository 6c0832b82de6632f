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

    /// Records the address `circle serve` serves this database at, so `circle invite create` run
    /// later on the same data prints links that open (unless told another address).
    public static func recordServedAddress(_ url: String, in store: any DatabaseStore) async throws {
        try await store.write { db in
            try await db.raw("DELETE FROM server_settings WHERE key = 'served_at'").run()
            try await db.raw("INSERT INTO server_settings (key, value) VALUES ('served_at', \(bind: url))").run()
        }
    }

    /// The address `circle serve` last served this database at, if it ever did.
    public static func servedAddress(from store: any DatabaseStore) async throws -> String? {
        try await store.read { db in
            try await db.raw("SELECT value FROM server_settings WHERE key = 'served_at'").first()?.decode(column: "value", as: String.self)
        }
    }
}
