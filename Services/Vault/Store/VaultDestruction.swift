import CircleCore
import CircleStore
import SQLKit

/// The vault's part of the destruction protocol (ARCHITECTURE 8), for the cleanup service's
/// jobs. The rows go in the job's first transaction (so no file is served or unwrapped from
/// then on, and every share link is dead); the blobs they named are returned for the job to
/// remove in bounded batches after the commit.
package enum VaultDestruction {
    /// A blob to remove: a finished file's or an unfinished upload's.
    package struct Blob: Sendable, Hashable {
        package enum Kind: String, Sendable { case file, upload }
        package let name: String
        package let kind: Kind

        package init(name: String, kind: Kind) {
            self.name = name
            self.kind = kind
        }
    }

    /// Deletes every file, upload, share link (with its history) and quota row of the owner;
    /// returns the blobs to remove, the files' ids and how many links went.
    package static func shredFiles(ofOwner ownerId: String, in db: any SQLDatabase) async throws -> (blobs: [Blob], fileIds: [String], links: Int) {
        let fileIds = try await db.raw("SELECT id FROM vault_files WHERE owner_id = \(bind: ownerId)").all()
            .map { try $0.decode(column: "id", as: String.self) }
        let files = fileIds.map(VaultFileRecord.blobName(ofId:))
        let uploads = try await db.raw("SELECT id FROM vault_uploads WHERE owner_id = \(bind: ownerId)").all()
            .map { try $0.decode(column: "id", as: String.self) }
        let links = try await deleteLinks(ofOwner: ownerId, in: db)
        try await db.raw("DELETE FROM vault_files WHERE owner_id = \(bind: ownerId)").run()
        try await db.raw("DELETE FROM vault_uploads WHERE owner_id = \(bind: ownerId)").run()
        try await db.raw("DELETE FROM vault_usage WHERE owner_id = \(bind: ownerId)").run()
        return (files.map { Blob(name: $0, kind: .file) } + uploads.map { Blob(name: $0, kind: .upload) }, fileIds, links)
    }

    /// Deletes the files shared at conversation level in the conversation (whoever owns them),
    /// their links and their quota shares; returns the blobs to remove and the files' owners.
    package static func shredFiles(ofConversation conversationId: String, in db: any SQLDatabase) async throws -> (blobs: [Blob], owners: [String: [String]]) {
        let rows = try await db.raw("SELECT * FROM vault_files WHERE conversation_id = \(bind: conversationId)").all()
        let files = try rows.map(VaultRepository.decodeFile)
        var owners: [String: [String]] = [:]
        for file in files {
            // The links go with their history (deleteFile would only revoke them).
            try await db.raw("DELETE FROM vault_links WHERE file_id = \(bind: file.id)").run()
            try await db.raw("DELETE FROM vault_files WHERE id = \(bind: file.id)").run()
            try await VaultRepository.release(file.size, for: file.ownerId, in: db)
            owners[file.ownerId, default: []].append(file.id)
        }
        let uploads = try await db.raw("SELECT id, owner_id, length FROM vault_uploads WHERE conversation_id = \(bind: conversationId)").all()
        for upload in uploads {
            try await db.raw("DELETE FROM vault_uploads WHERE id = \(bind: try upload.decode(column: "id", as: String.self))").run()
            try await VaultRepository.release(try upload.decode(column: "length", as: Int64.self), for: try upload.decode(column: "owner_id", as: String.self), in: db)
        }
        return (files.map { Blob(name: $0.blobName, kind: .file) } + (try uploads.map { Blob(name: try $0.decode(column: "id", as: String.self), kind: .upload) }), owners)
    }

    /// Revokes every live share link of the owner at once (the wraps and verifiers go; the
    /// history stays); returns how many.
    package static func revokeLinks(ofOwner ownerId: String, at now: Timestamp, in db: any SQLDatabase) async throws -> Int {
        try await db.raw("""
            UPDATE vault_links SET wrap = NULL, verifier = NULL, revoked_at = \(bind: now.millis)
            WHERE owner_id = \(bind: ownerId) AND revoked_at IS NULL RETURNING id
            """).all().count
    }

    /// Deletes the owner's links with their tickets and history; returns how many.
    static func deleteLinks(ofOwner ownerId: String, in db: any SQLDatabase) async throws -> Int {
        try await db.raw("DELETE FROM vault_links WHERE owner_id = \(bind: ownerId) RETURNING id").all().count
    }

    /// Removes blobs (a missing one is already gone: removal is repeated after a crash).
    package static func remove(_ blobs: [Blob], from store: any BlobStore) async throws {
        for blob in blobs {
            switch blob.kind {
            case .file: try await store.deleteFile(blob.name)
            case .upload: try await store.deleteUpload(blob.name)
            }
        }
    }
}
