import CircleCore
import CircleStore
import Foundation
import SQLKit

/// Emergency destruction of the whole server (`circle destroy --everything`, or a `server`
/// destruction job from an admin's browser; ARCHITECTURE 8). Keys first, in one transaction:
/// every key bundle, recovery copy, pin, envelope, file wrap, share-link wrap, login verifier
/// and invite goes and every session ends, so from that commit on no stored ciphertext opens
/// for anyone and nobody can sign in or register; then the server's own secrets (the key
/// files); then every row of every table (the schema stays, so the server starts again empty)
/// and every blob.
package enum ServerDestruction {
    /// Tables kept (emptied of nothing): the schema's own record and the server's identity.
    static let kept: Set<String> = ["schema_migrations", "server_settings"]

    /// The keys step; returns how many key bundles went.
    package static func shredKeys(store: any DatabaseStore, at now: Timestamp) async throws -> Int {
        try await store.write { db in try await shredKeys(at: now, in: db).bundles }
    }

    /// What the keys step destroyed.
    package struct Shredded: Sendable {
        package var bundles = 0
        /// The sessions it ended (to announce after the commit).
        package var sessions: [String] = []
        /// Every file's id and every unfinished upload's id: their blobs go next.
        package var fileIds: [String] = []
        package var uploadIds: [String] = []
        package var links = 0
    }

    /// The keys step in the caller's transaction.
    package static func shredKeys(at now: Timestamp, in db: any SQLDatabase) async throws -> Shredded {
        var out = Shredded()
        out.bundles = try await db.raw("DELETE FROM key_bundles RETURNING user_id").all().count
        for statement in ["DELETE FROM pins", "DELETE FROM key_envelopes", "DELETE FROM vault_link_tickets", "DELETE FROM invites"] {
            try await db.raw(SQLQueryString(stringLiteral: statement)).run()
        }
        out.links = try await db.raw("""
            UPDATE vault_links SET wrap = NULL, verifier = NULL, revoked_at = COALESCE(revoked_at, \(bind: now.millis)) RETURNING id
            """).all().count
        let files = try await db.raw("UPDATE vault_files SET wrap = \(bind: Data()), meta = \(bind: Data()) RETURNING id").all()
        let uploads = try await db.raw("UPDATE vault_uploads SET wrap = \(bind: Data()), meta = \(bind: Data()) RETURNING id").all()
        out.fileIds = try files.map { try $0.decode(column: "id", as: String.self) }
        out.uploadIds = try uploads.map { try $0.decode(column: "id", as: String.self) }
        try await db.raw("UPDATE users SET auth_verifier = \(bind: Data()), salt = \(bind: Data()), destroyed_at = \(bind: now.millis)").run()
        out.sessions = try await db.raw("UPDATE sessions SET revoked_at = \(bind: now.millis) WHERE revoked_at IS NULL RETURNING id").all()
            .map { try $0.decode(column: "id", as: String.self) }
        return out
    }

    /// The server's admins whose accounts are not destroyed, by username.
    package static func admins(in db: any SQLDatabase) async throws -> [(id: String, username: String, createdAt: Int64)] {
        try await db.raw("SELECT id, username, created_at FROM users WHERE is_admin <> 0 AND destroyed_at = 0 ORDER BY username").all().map {
            (try $0.decode(column: "id", as: String.self), try $0.decode(column: "username", as: String.self),
             try $0.decode(column: "created_at", as: Int64.self))
        }
    }

    /// Whether the user is an admin whose account is not destroyed.
    package static func isAdmin(_ userId: String, in db: any SQLDatabase) async throws -> Bool {
        try await admins(in: db).contains { $0.id == userId }
    }

    /// Every table of the schema but the kept ones, in the caller's connection.
    package static func tables(engine: DatabaseEngine, in db: any SQLDatabase) async throws -> [String] {
        let query: SQLQueryString = engine == .postgres
            ? "SELECT tablename AS name FROM pg_tables WHERE schemaname = current_schema() ORDER BY tablename"
            : "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name"
        return try await db.raw(query).all().map { try $0.decode(column: "name", as: String.self) }.filter { !kept.contains($0) }
    }

    /// Every table of the schema but the kept ones.
    package static func tables(store: any DatabaseStore) async throws -> [String] {
        try await store.read { db in try await tables(engine: store.engine, in: db) }
    }

    /// Deletes every row of every table but the kept ones (one transaction); returns the tables.
    @discardableResult
    package static func deleteRows(store: any DatabaseStore) async throws -> [String] {
        let tables = try await tables(store: store)
        try await store.write { db in try await deleteRows(of: tables, engine: store.engine, in: db) }
        try await store.compact()
        return tables
    }

    /// Deletes every row of `tables` in the caller's transaction, except the destruction job
    /// `keepingJob` (a browser's destruction is followed to its end by its watch tokens).
    package static func deleteRows(of tables: [String], keepingJob job: String? = nil, engine: DatabaseEngine, in db: any SQLDatabase) async throws {
        let keep: Set<String> = job == nil ? [] : ["destruction_jobs", "destruction_blobs"]
        let emptied = tables.filter { !keep.contains($0) }
        if engine == .postgres {
            try await db.raw(SQLQueryString(stringLiteral: "TRUNCATE " + emptied.map { "\"\($0)\"" }.joined(separator: ", ") + " CASCADE")).run()
        } else {
            // Every foreign key cascades, so the order does not matter.
            for table in emptied { try await db.raw(SQLQueryString(stringLiteral: "DELETE FROM \"\(table)\"")).run() }
        }
        if let job {
            try await db.raw("DELETE FROM destruction_jobs WHERE id <> \(bind: job)").run()
        }
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
