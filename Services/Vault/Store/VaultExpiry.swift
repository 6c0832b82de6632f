import CircleConfig
import CircleCore
import CircleObjectStore
import CircleStore
import Foundation
import SQLKit

/// What the cleanup service removes from the vault (ARCHITECTURE 8), in bounded batches that several
/// replicas can run at once: rows are claimed with `FOR UPDATE SKIP LOCKED` on PostgreSQL
/// (SQLite writes are serial), deleted with their quota share in one transaction, and the blobs
/// removed after the commit. A blob a crash leaves behind (stored, then no row; or a row deleted
/// before its blob) is never served, since no row names it; `deleteOrphanBlobs` removes it later.
package enum VaultExpiry {
    /// Expires, as of `now`, the conversation's attachments (conversation-level files) received
    /// before `cutoff`, its retention (PROTOCOL 5), whatever expiry their senders gave them: the
    /// messages that carried their keys go at the same age, so they are not served from now on
    /// and the expiry sweep removes them with their blobs. Batches of `limit`, each found by a
    /// read first (a conversation with nothing to expire costs no write). Returns how many.
    package static func expireAttachments(of conversationId: String, receivedBefore cutoff: Int64, now: Timestamp, limit: Int,
                                          store: any DatabaseStore) async throws -> Int {
        let due: SQLQueryString = """
            SELECT id FROM vault_files WHERE conversation_id = \(bind: conversationId) AND level = 'conversation'
               AND created_at < \(bind: cutoff) AND (expires_at = 0 OR expires_at > \(bind: now.millis)) LIMIT \(bind: limit)
            """
        var total = 0
        while try await store.read({ db in try await db.raw(due).first() }) != nil {
            let expired = try await store.statement { db in
                try await db.raw("UPDATE vault_files SET expires_at = \(bind: now.millis) WHERE id IN (\(due)) RETURNING id").all().count
            }
            total += expired
            if expired < limit { break }
        }
        return total
    }

    /// Deletes up to `limit` expired files; returns how many.
    package static func deleteExpiredFiles(store: any DatabaseStore, blobs: any BlobStore, now: Timestamp, limit: Int) async throws -> Int {
        let skipLocked = store.engine == .postgres ? " FOR UPDATE SKIP LOCKED" : ""
        let files = try await store.write { db in
            let rows = try await db.raw(SQLQueryString("""
                SELECT * FROM vault_files WHERE expires_at > 0 AND expires_at <= \(unsafeRaw: String(now.millis)) ORDER BY expires_at LIMIT \(unsafeRaw: String(limit))\(unsafeRaw: skipLocked)
                """)).all()
            let files = try rows.map(VaultRepository.decodeFile)
            for file in files { try await VaultRepository.deleteFile(file, at: now, in: db) }
            return files
        }
        for file in files { try? await blobs.deleteFile(file.blobName) }
        return files.count
    }

    /// Deletes up to `limit` files nobody downloaded since `before` (`vault.idleFileRetention`);
    /// returns how many.
    package static func deleteIdleFiles(store: any DatabaseStore, blobs: any BlobStore, before: Timestamp, now: Timestamp, limit: Int) async throws -> Int {
        let skipLocked = store.engine == .postgres ? " FOR UPDATE SKIP LOCKED" : ""
        let files = try await store.write { db in
            let rows = try await db.raw(SQLQueryString("""
                SELECT * FROM vault_files WHERE accessed_at < \(unsafeRaw: String(before.millis)) AND created_at < \(unsafeRaw: String(before.millis)) ORDER BY accessed_at LIMIT \(unsafeRaw: String(limit))\(unsafeRaw: skipLocked)
                """)).all()
            let files = try rows.map(VaultRepository.decodeFile)
            for file in files { try await VaultRepository.deleteFile(file, at: now, in: db) }
            return files
        }
        for file in files { try? await blobs.deleteFile(file.blobName) }
        return files.count
    }

    /// Deletes up to `limit` uploads left unfinished past their expiry; returns how many.
    package static func deleteStaleUploads(store: any DatabaseStore, blobs: any BlobStore, now: Timestamp, limit: Int) async throws -> Int {
        let skipLocked = store.engine == .postgres ? " FOR UPDATE SKIP LOCKED" : ""
        let uploads = try await store.write { db in
            let rows = try await db.raw(SQLQueryString("""
                SELECT * FROM vault_uploads WHERE expires_at <= \(unsafeRaw: String(now.millis)) ORDER BY expires_at LIMIT \(unsafeRaw: String(limit))\(unsafeRaw: skipLocked)
                """)).all()
            let uploads = try rows.map(VaultRepository.decodeUpload)
            for upload in uploads {
                try await db.raw("DELETE FROM vault_uploads WHERE id = \(bind: upload.id)").run()
                try await VaultRepository.release(upload.length, for: upload.ownerId, in: db)
            }
            return uploads
        }
        for upload in uploads { try? await blobs.deleteUpload(upload.id) }
        return uploads.count
    }

    /// Revokes up to `limit` links that expired, or ran out of downloads and have no live ticket
    /// left to finish one (their wraps go; the history stays for the owner); returns how many.
    package static func revokeSpentLinks(store: any DatabaseStore, now: Timestamp, limit: Int) async throws -> Int {
        let skipLocked = store.engine == .postgres ? " FOR UPDATE SKIP LOCKED" : ""
        return try await store.write { db in
            let ids = try await db.raw(SQLQueryString("""
                SELECT id FROM vault_links WHERE revoked_at IS NULL
                AND ((expires_at > 0 AND expires_at <= \(unsafeRaw: String(now.millis))) OR (max_downloads > 0 AND downloads >= max_downloads
                     AND NOT EXISTS (SELECT 1 FROM vault_link_tickets WHERE link_id = vault_links.id AND expires_at > \(unsafeRaw: String(now.millis)))))
                LIMIT \(unsafeRaw: String(limit))\(unsafeRaw: skipLocked)
                """)).all().map { try $0.decode(column: "id", as: String.self) }
            for id in ids {
                try await db.raw("UPDATE vault_links SET wrap = NULL, verifier = NULL, revoked_at = \(bind: now.millis) WHERE id = \(bind: id)").run()
            }
            return ids.count
        }
    }
}

extension VaultExpiry {
    /// Deletes up to `limit` expired download tickets; returns how many.
    package static func deleteExpiredTickets(store: any DatabaseStore, now: Timestamp, limit: Int) async throws -> Int {
        try await store.write { db in
            let ids = try await db.raw(SQLQueryString("""
                SELECT id FROM vault_link_tickets WHERE expires_at <= \(unsafeRaw: String(now.millis)) LIMIT \(unsafeRaw: String(limit))
                """)).all().map { try $0.decode(column: "id", as: String.self) }
            for id in ids { try await db.raw("DELETE FROM vault_link_tickets WHERE id = \(bind: id)").run() }
            return ids.count
        }
    }
}

extension VaultExpiry {
    /// Deletes blobs no row names that have not changed for `grace` (a file being finished is
    /// stored before its row commits, and its upload's row still names it meanwhile); returns
    /// how many files and uploads went. Storage is listed whole: run it rarely.
    package static func deleteOrphanBlobs(store: any DatabaseStore, blobs: any BlobStore, now: Date, grace: TimeInterval) async throws -> (files: Int, uploads: Int) {
        let old = try await blobs.listBlobs().filter { now.timeIntervalSince($0.modified) >= grace }
        var orphanFiles: [String] = [], orphanUploads: [String] = []
        for chunk in stride(from: 0, to: old.count, by: 200).map({ Array(old[$0..<min($0 + 200, old.count)]) }) {
            let fileIds = chunk.filter { $0.kind == .file }.compactMap { blob in Hex.decode(blob.name).map { (Base64URL.encode($0), blob.name) } }
            let uploadIds = chunk.filter { $0.kind == .upload }.map(\.name)
            let (knownFiles, knownUploads) = try await store.read { db -> (Set<String>, Set<String>) in
                var files = Set<String>(), uploads = Set<String>()
                if !fileIds.isEmpty {
                    let ids: [any Encodable & Sendable] = fileIds.map(\.0)
                    for row in try await db.raw("SELECT id FROM vault_files WHERE id IN (\(binds: ids))").all() {
                        files.insert(try row.decode(column: "id", as: String.self))
                    }
                    for row in try await db.raw("SELECT file_id FROM vault_uploads WHERE file_id IN (\(binds: ids))").all() {
                        files.insert(try row.decode(column: "file_id", as: String.self))
                    }
                }
                if !uploadIds.isEmpty {
                    let ids: [any Encodable & Sendable] = uploadIds
                    for row in try await db.raw("SELECT id FROM vault_uploads WHERE id IN (\(binds: ids))").all() {
                        uploads.insert(try row.decode(column: "id", as: String.self))
                    }
                }
                return (files, uploads)
            }
            orphanFiles += fileIds.filter { !knownFiles.contains($0.0) }.map(\.1)
            orphanUploads += uploadIds.filter { !knownUploads.contains($0) }
        }
        // Names that are not ours at all (not hex) are left alone.
        for name in orphanFiles { try await blobs.deleteFile(name) }
        for id in orphanUploads where id.count == 32 && id.allSatisfy(\.isHexDigit) { try await blobs.deleteUpload(id) }
        return (orphanFiles.count, orphanUploads.count)
    }
}

/// The vault's blob storage as configured (an S3-compatible bucket, or the local folder), for the
/// vault and cleanup services; each runs it among its services.
package enum VaultBlobs {
    /// Opens the configured store; a bucket that does not exist, or that the credentials may not
    /// use, stops the service at start with the store's answer rather than at the first upload.
    package static func open(_ settings: VaultSettings) async throws -> any BlobStore {
        guard let s3 = settings.s3 else { return try FileBlobStore(root: settings.path) }
        let store = try S3BlobStore(location: S3Location(endpoint: s3.endpoint, bucket: s3.bucket, region: s3.region,
                                                         accessKey: s3.accessKey, secretKey: s3.secretKey))
        do {
            guard try await store.client.bucketExists() else {
                throw S3Error(status: 404, code: "NoSuchBucket", message: "bucket \(s3.bucket) does not exist at \(s3.endpoint): create it first",
                              operation: "HeadBucket")
            }
        } catch {
            try? await store.client.shutdown()
            throw error
        }
        return store
    }

    package static func open(path: String) throws -> any BlobStore {
        try FileBlobStore(root: path)
    }
}
