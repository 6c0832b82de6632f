import CircleCore
import CircleStore
import Foundation
import SQLKit

/// Emergency destruction of the whole server (`circle destroy --everything`, ARCHITECTURE 8).
/// Keys first, in one transaction: every key bundle, recovery copy, pin, envelope, file wrap,
/// share-link wrap and login verifier goes and every session ends, so from that commit on no
/// stored ciphertext opens for anyone; then the server's own secrets (the caller removes the
/// key files); then every row of every table (the schema stays, so the server starts again
/// empty) and every blob.
package enum ServerDestruction {
    /// Tables kept (emptied of nothing): the schema's own record and the server's identity.
    static let kept: Set<String> = ["schema_migrations", "server_settings"]

    /// The keys step; returns how many key bundles went.
    package static func shredKeys(store: any DatabaseStore, at now: Timestamp) async throws -> Int {
        try await store.write { db in
            let bundles = try await db.raw("DELETE FROM key_bundles RETURNING user_id").all().count
            for statement in [
                "DELETE FROM pins",
                "DELETE FROM key_envelopes",
                "DELETE FROM vault_link_tickets",
                "UPDATE vault_links SET wrap = NULL, verifier = NULL, revoked_at = COALESCE(revoked_at, \(now.millis))",
            ] {
                try await db.raw(SQLQueryString(stringLiteral: statement)).run()
            }
            try await db.raw("UPDATE vault_files SET wrap = \(bind: Data()), meta = \(bind: Data())").run()
            try await db.raw("UPDATE vault_uploads SET wrap = \(bind: Data()), meta = \(bind: Data())").run()
            try await db.raw("UPDATE users SET auth_verifier = \(bind: Data()), salt = \(bind: Data()), destroyed_at = \(bind: now.millis)").run()
            try await db.raw("UPDATE sessions SET revoked_at = \(bind: now.millis) WHERE revoked_at IS NULL").run()
            return bundles
        }
    }

    /// Every table of the schema but the kept ones.
    package static func tables(store: any DatabaseStore) async throws -> [String] {
        try await store.read { db in
            let query: SQLQueryString = store.engine == .postgres
                ? "SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename"
                : "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
            return try await db.raw(query).all().map { try $0.decode(column: "name", as: String.self) }.filter { !kept.contains($0) }
        }
    }

    /// Deletes every row of every table but the kept ones (one transaction); returns the tables.
    @discardableResult
    package static func deleteRows(store: any DatabaseStore) async throws -> [String] {
        let tables = try await tables(store: store)
        try await store.write { db in
            if store.engine == .postgres {
                try await db.raw(SQLQueryString(stringLiteral: "TRUNCATE " + tables.map { "\"\($0)\"" }.joined(separator: ", ") + " CASCADE")).run()
            } else {
                // Every foreign key cascades, so the order does not matter.
                for table in tables { try await db.raw(SQLQueryString(stringLiteral: "DELETE FROM \"\(table)\"")).run() }
            }
        }
        return tables
    }

    /// Overwrites a key file with random bytes, syncs it, then removes it; false when it was not there.
    package static func destroyKeyFile(_ path: String) throws -> Bool {
        guard FileManager.default.fileExists(atPath: path) else { return false }
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 32
        let fd = open(path, O_WRONLY)
        if fd >= 0 {
            let noise = SecureRandom.bytes(max(size, 32))
            _ = noise.withUnsafeBytes { write(fd, $0.baseAddress, noise.count) }
            fsync(fd)
            close(fd)
        }
        try FileManager.default.removeItem(atPath: path)
        return true
    }

    /// Removes everything inside the vault folder (the folder stays); returns how many entries went.
    package static func removeBlobs(in folder: String) throws -> Int {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: folder) else { return 0 }
        for entry in entries { try FileManager.default.removeItem(atPath: (folder as NSString).appendingPathComponent(entry)) }
        return entries.count
    }
}
