import CircleCore
import CircleProtocol
import CircleStore
import Foundation
import SQLKit

/// Checks of the vault's binary fields (unpadded base64url, exact sizes).
package enum VaultWire {
    /// A file id: 16 bytes. Returns the hex name its blob is stored under.
    @discardableResult
    package static func fileId(_ text: String, field: String = "fileId") throws -> String {
        guard let bytes = Base64URL.decode(text).map(Array.init), bytes.count == VaultFormat.fileIdSize else {
            throw Problem.invalidField(field, "must be \(VaultFormat.fileIdSize) bytes of unpadded base64url")
        }
        return Hex.encode(bytes)
    }

    package static func linkId(_ text: String, field: String = "linkId") throws -> [UInt8] {
        guard let bytes = Base64URL.decode(text).map(Array.init), bytes.count == VaultFormat.linkIdSize else {
            throw Problem.invalidField(field, "must be \(VaultFormat.linkIdSize) bytes of unpadded base64url")
        }
        return bytes
    }

    /// Sealed metadata: nonce, a multiple of 256 bytes of at most 1,280, tag.
    package static func meta(_ text: String) throws -> [UInt8] {
        guard let bytes = Base64URL.decode(text).map(Array.init), bytes.count >= 12 + 256 + 16, bytes.count <= 12 + 1280 + 16, (bytes.count - 28) % 256 == 0 else {
            throw Problem.invalidField("meta", "must be sealed metadata (PROTOCOL 9.2) in unpadded base64url")
        }
        return bytes
    }

    /// A wrapped file key: nonce, 32 bytes, tag.
    package static func wrap(_ text: String, field: String = "wrap") throws -> [UInt8] {
        guard let bytes = Base64URL.decode(text).map(Array.init), bytes.count == 12 + 32 + 16 else {
            throw Problem.invalidField(field, "must be a wrapped file key (60 bytes) in unpadded base64url")
        }
        return bytes
    }

    package static func bytes(_ text: String, count: Int, field: String) throws -> [UInt8] {
        guard let bytes = Base64URL.decode(text).map(Array.init), bytes.count == count else {
            throw Problem.invalidField(field, "must be \(count) bytes of unpadded base64url")
        }
        return bytes
    }
}

package struct VaultFileRecord: Sendable {
    package let id: String
    package let ownerId: String
    package var level: VaultLevel
    package var conversationId: String?
    package let meta: [UInt8]
    package let wrap: [UInt8]
    package let size: Int64
    package let sha256: [UInt8]
    package let createdAt: Int64
    package var expiresAt: Int64

    /// When it was last downloaded (its creation until then), to the hour (`VaultRepository.touch`).
    package var accessedAt: Int64 = 0

    package init(id: String, ownerId: String, level: VaultLevel, conversationId: String?, meta: [UInt8], wrap: [UInt8], size: Int64, sha256: [UInt8], createdAt: Int64, expiresAt: Int64,
                 accessedAt: Int64 = 0) {
        self.accessedAt = accessedAt
        self.id = id
        self.ownerId = ownerId
        self.level = level
        self.conversationId = conversationId
        self.meta = meta
        self.wrap = wrap
        self.size = size
        self.sha256 = sha256
        self.createdAt = createdAt
        self.expiresAt = expiresAt
    }

    package func isExpired(at now: Timestamp) -> Bool { expiresAt > 0 && expiresAt <= now.millis }

    /// The blob's name: hex of the file id (validated when the upload was created).
    package var blobName: String { Self.blobName(ofId: id) }

    /// The blob a file id names (hex of the id's bytes).
    package static func blobName(ofId id: String) -> String { Hex.encode(Base64URL.decode(id).map(Array.init) ?? []) }
}

package struct VaultUploadRecord: Sendable {
    package let id: String
    package let ownerId: String
    package let fileId: String
    package let length: Int64
    package var offset: Int64
    package let level: VaultLevel
    package let conversationId: String?
    package let meta: [UInt8]
    package let wrap: [UInt8]
    package let fileExpiresAt: Int64
    package let createdAt: Int64
    package let expiresAt: Int64

    package init(id: String, ownerId: String, fileId: String, length: Int64, offset: Int64, level: VaultLevel, conversationId: String?, meta: [UInt8], wrap: [UInt8], fileExpiresAt: Int64, createdAt: Int64, expiresAt: Int64) {
        self.id = id
        self.ownerId = ownerId
        self.fileId = fileId
        self.length = length
        self.offset = offset
        self.level = level
        self.conversationId = conversationId
        self.meta = meta
        self.wrap = wrap
        self.fileExpiresAt = fileExpiresAt
        self.createdAt = createdAt
        self.expiresAt = expiresAt
    }
}

package struct VaultLinkRecord: Sendable {
    package let id: String
    package let fileId: String
    package let ownerId: String
    package let wrap: [UInt8]?
    package let verifier: [UInt8]?
    package let salt: [UInt8]?
    package let iterations: Int64
    package let expiresAt: Int64
    package let maxDownloads: Int64
    package let downloads: Int64
    package let createdAt: Int64
    package let revokedAt: Int64?

    package init(id: String, fileId: String, ownerId: String, wrap: [UInt8]?, verifier: [UInt8]?, salt: [UInt8]?, iterations: Int64, expiresAt: Int64, maxDownloads: Int64, downloads: Int64, createdAt: Int64, revokedAt: Int64?) {
        self.id = id
        self.fileId = fileId
        self.ownerId = ownerId
        self.wrap = wrap
        self.verifier = verifier
        self.salt = salt
        self.iterations = iterations
        self.expiresAt = expiresAt
        self.maxDownloads = maxDownloads
        self.downloads = downloads
        self.createdAt = createdAt
        self.revokedAt = revokedAt
    }

    /// Whether the link still opens: not revoked, not expired, downloads left.
    package func isLive(at now: Timestamp) -> Bool {
        revokedAt == nil && wrap != nil && (expiresAt == 0 || expiresAt > now.millis) && (maxDownloads == 0 || downloads < maxDownloads)
    }
}

/// The vault's tables (migration 6); only the vault and its cleanup write them.
package enum VaultRepository {
    package static func file(_ id: String, in db: any SQLDatabase) async throws -> VaultFileRecord? {
        try await db.raw("SELECT * FROM vault_files WHERE id = \(bind: id)").first().map(decodeFile)
    }

    package static func decodeFile(_ row: any SQLRow) throws -> VaultFileRecord {
        VaultFileRecord(
            id: try row.decode(column: "id", as: String.self),
            ownerId: try row.decode(column: "owner_id", as: String.self),
            level: VaultLevel(rawValue: try row.decode(column: "level", as: String.self)) ?? .private,
            conversationId: try row.decode(column: "conversation_id", as: String?.self),
            meta: Array(try row.decode(column: "meta", as: Data.self)),
            wrap: Array(try row.decode(column: "wrap", as: Data.self)),
            size: try row.decode(column: "size", as: Int64.self),
            sha256: Array(try row.decode(column: "sha256", as: Data.self)),
            createdAt: try row.decode(column: "created_at", as: Int64.self),
            expiresAt: try row.decode(column: "expires_at", as: Int64.self),
            accessedAt: try row.decode(column: "accessed_at", as: Int64.self)
        )
    }

    /// A download's time is kept to the hour: enough for `vault.idleFileRetention` (days), and one
    /// write an hour at most however many ranges a download asks for.
    package static let accessResolution: Int64 = 3_600_000

    /// Records a download of the file now, unless one was recorded within the hour.
    package static func touch(_ fileId: String, at now: Timestamp, in db: any SQLDatabase) async throws {
        try await db.raw("""
            UPDATE vault_files SET accessed_at = \(bind: now.millis) WHERE id = \(bind: fileId) AND accessed_at < \(bind: now.millis - accessResolution)
            """).run()
    }

    package static func upload(_ id: String, in db: any SQLDatabase) async throws -> VaultUploadRecord? {
        try await db.raw("SELECT * FROM vault_uploads WHERE id = \(bind: id)").first().map(decodeUpload)
    }

    /// Takes the lease on an upload of `owner` if nobody holds a live one; false when the upload
    /// is gone, someone else's, or leased.
    package static func lease(upload id: String, owner: String, token: String, until: Int64, now: Int64, in db: any SQLDatabase) async throws -> Bool {
        try await db.raw("""
            UPDATE vault_uploads SET lease_token = \(bind: token), lease_until = \(bind: until)
            WHERE id = \(bind: id) AND owner_id = \(bind: owner) AND (lease_until IS NULL OR lease_until < \(bind: now)) RETURNING id
            """).first() != nil
    }

    /// Extends a lease this holder still has; false when it was lost.
    package static func renew(upload id: String, token: String, until: Int64, in db: any SQLDatabase) async throws -> Bool {
        try await db.raw("""
            UPDATE vault_uploads SET lease_until = \(bind: until) WHERE id = \(bind: id) AND lease_token = \(bind: token) RETURNING id
            """).first() != nil
    }

    package static func releaseLease(upload id: String, token: String, in db: any SQLDatabase) async throws {
        try await db.raw("UPDATE vault_uploads SET lease_token = NULL, lease_until = NULL WHERE id = \(bind: id) AND lease_token = \(bind: token)").run()
    }

    /// Moves the offset of an upload the caller holds the lease on; false when the lease was lost
    /// or the offset moved.
    package static func advance(upload id: String, from offset: Int64, to newOffset: Int64, token: String, in db: any SQLDatabase) async throws -> Bool {
        try await db.raw("""
            UPDATE vault_uploads SET upload_offset = \(bind: newOffset)
            WHERE id = \(bind: id) AND upload_offset = \(bind: offset) AND lease_token = \(bind: token) RETURNING id
            """).first() != nil
    }

    /// Removes an upload the caller holds the lease on; false when the lease was lost.
    package static func removeUpload(_ id: String, token: String, in db: any SQLDatabase) async throws -> Bool {
        try await db.raw("DELETE FROM vault_uploads WHERE id = \(bind: id) AND lease_token = \(bind: token) RETURNING id").first() != nil
    }

    /// How many unfinished uploads `owner` has that have not expired, and when the first expires.
    package static func unfinished(of owner: String, now: Int64, in db: any SQLDatabase) async throws -> (count: Int, firstExpiry: Int64?) {
        let row = try await db.raw("""
            SELECT COUNT(*) AS n, MIN(expires_at) AS first FROM vault_uploads WHERE owner_id = \(bind: owner) AND expires_at > \(bind: now)
            """).first()
        return (try row?.decode(column: "n", as: Int.self) ?? 0, try row?.decode(column: "first", as: Int64?.self))
    }

    package static func decodeUpload(_ row: any SQLRow) throws -> VaultUploadRecord {
        VaultUploadRecord(
            id: try row.decode(column: "id", as: String.self),
            ownerId: try row.decode(column: "owner_id", as: String.self),
            fileId: try row.decode(column: "file_id", as: String.self),
            length: try row.decode(column: "length", as: Int64.self),
            offset: try row.decode(column: "upload_offset", as: Int64.self),
            level: VaultLevel(rawValue: try row.decode(column: "level", as: String.self)) ?? .private,
            conversationId: try row.decode(column: "conversation_id", as: String?.self),
            meta: Array(try row.decode(column: "meta", as: Data.self)),
            wrap: Array(try row.decode(column: "wrap", as: Data.self)),
            fileExpiresAt: try row.decode(column: "file_expires_at", as: Int64.self),
            createdAt: try row.decode(column: "created_at", as: Int64.self),
            expiresAt: try row.decode(column: "expires_at", as: Int64.self)
        )
    }

    package static func link(_ id: String, in db: any SQLDatabase) async throws -> VaultLinkRecord? {
        try await db.raw("SELECT * FROM vault_links WHERE id = \(bind: id)").first().map(decodeLink)
    }

    package static func decodeLink(_ row: any SQLRow) throws -> VaultLinkRecord {
        VaultLinkRecord(
            id: try row.decode(column: "id", as: String.self),
            fileId: try row.decode(column: "file_id", as: String.self),
            ownerId: try row.decode(column: "owner_id", as: String.self),
            wrap: try row.decode(column: "wrap", as: Data?.self).map(Array.init),
            verifier: try row.decode(column: "verifier", as: Data?.self).map(Array.init),
            salt: try row.decode(column: "salt", as: Data?.self).map(Array.init),
            iterations: try row.decode(column: "iterations", as: Int64.self),
            expiresAt: try row.decode(column: "expires_at", as: Int64.self),
            maxDownloads: try row.decode(column: "max_downloads", as: Int64.self),
            downloads: try row.decode(column: "downloads", as: Int64.self),
            createdAt: try row.decode(column: "created_at", as: Int64.self),
            revokedAt: try row.decode(column: "revoked_at", as: Int64?.self)
        )
    }

    /// Reserves `bytes` of the owner's quota, or returns false when that would exceed it. One
    /// conditional statement, so two uploads racing for the last bytes cannot both pass.
    package static func reserve(_ bytes: Int64, for owner: String, quota: Int64, in db: any SQLDatabase) async throws -> Bool {
        guard bytes <= quota else { return false }
        try await db.raw("INSERT INTO vault_usage (owner_id, used) VALUES (\(bind: owner), 0) ON CONFLICT (owner_id) DO NOTHING").run()
        return try await db.raw("""
            UPDATE vault_usage SET used = used + \(bind: bytes) WHERE owner_id = \(bind: owner) AND used + \(bind: bytes) <= \(bind: quota) RETURNING used
            """).first() != nil
    }

    package static func release(_ bytes: Int64, for owner: String, in db: any SQLDatabase) async throws {
        try await db.raw("UPDATE vault_usage SET used = CASE WHEN used > \(bind: bytes) THEN used - \(bind: bytes) ELSE 0 END WHERE owner_id = \(bind: owner)").run()
    }

    package static func used(by owner: String, in db: any SQLDatabase) async throws -> Int64 {
        try await db.raw("SELECT used FROM vault_usage WHERE owner_id = \(bind: owner)").first()?.decode(column: "used", as: Int64.self) ?? 0
    }

    /// Revokes every live link of a file: the wraps and verifiers go, the history stays.
    package static func revokeLinks(ofFile fileId: String, at now: Timestamp, in db: any SQLDatabase) async throws {
        try await db.raw("""
            UPDATE vault_links SET wrap = NULL, verifier = NULL, revoked_at = \(bind: now.millis) WHERE file_id = \(bind: fileId) AND revoked_at IS NULL
            """).run()
    }

    /// A refused open: one row per (link, address), counted up.
    package static func recordFailure(link: String, ip: String, at now: Timestamp, in db: any SQLDatabase) async throws {
        try await db.raw("""
            INSERT INTO vault_link_failures (link_id, ip, attempts, first_at, last_at) VALUES (\(bind: link), \(bind: ip), 1, \(bind: now.millis), \(bind: now.millis))
            ON CONFLICT (link_id, ip) DO UPDATE SET attempts = vault_link_failures.attempts + 1, last_at = excluded.last_at
            """).run()
    }

    package static func recordUse(link: String, outcome: String, ip: String, at now: Timestamp, in db: any SQLDatabase) async throws {
        try await db.raw("INSERT INTO vault_link_uses (link_id, at, outcome, ip) VALUES (\(bind: link), \(bind: now.millis), \(bind: outcome), \(bind: ip))").run()
    }

    /// Deletes a file's row, its links' secrets and its quota share; the blob goes after the commit.
    package static func deleteFile(_ file: VaultFileRecord, at now: Timestamp, in db: any SQLDatabase) async throws {
        try await revokeLinks(ofFile: file.id, at: now, in: db)
        try await db.raw("DELETE FROM vault_files WHERE id = \(bind: file.id)").run()
        try await release(file.size, for: file.ownerId, in: db)
    }
}
