import CircleConfig
import CircleCore
import CircleEvents
import CircleHTTP
import CircleKit
import CircleStore
import Crypto
import Foundation
import Hummingbird
import Logging
import Messaging
import SQLKit

/// What the vault's controllers share.
struct VaultState: Sendable {
    let store: any DatabaseStore
    let events: EventPublisher
    let blobs: any BlobStore
    let settings: VaultSettings
    let clock: any WallClock
    let logger: Logger
    let hashers: UploadHashers
    let locks: UploadLocks

    /// The largest expiry a client may set: a year ahead.
    static let maximumLifetimeMillis: Int64 = 366 * 86_400_000

    /// A file the caller may read: its own, or a conversation file of a conversation the caller is
    /// a member of. Anyone else gets the same 404 as for a file that does not exist.
    func readableFile(_ id: String, by userId: String, now: Timestamp, in db: any SQLDatabase) async throws -> VaultFileRecord {
        try VaultWire.fileId(id)
        guard let file = try await VaultRepository.file(id, in: db), !file.isExpired(at: now) else { throw Self.noSuchFile }
        if file.ownerId == userId { return file }
        if file.level == .conversation, let conversation = file.conversationId,
           try await ConversationMembers.isMember(userId, of: conversation, in: db) {
            return file
        }
        throw Self.noSuchFile
    }

    /// One of the caller's own files, or 404.
    func ownFile(_ id: String, by userId: String, now: Timestamp, in db: any SQLDatabase) async throws -> VaultFileRecord {
        try VaultWire.fileId(id)
        guard let file = try await VaultRepository.file(id, in: db), file.ownerId == userId, !file.isExpired(at: now) else { throw Self.noSuchFile }
        return file
    }

    static let noSuchFile = Problem.notFound("No such file.")

    /// Checks an expiry chosen by a client: 0 (never) or in the future, within a year.
    func checkExpiry(_ expiresAt: Int64, field: String, now: Timestamp) throws {
        guard expiresAt == 0 || (expiresAt > now.millis && expiresAt <= now.millis + Self.maximumLifetimeMillis) else {
            throw Problem.invalidField(field, "must be 0 (never) or a time in milliseconds within the next year")
        }
    }
}

/// Access levels of a vault file (ARCHITECTURE 5).
enum VaultLevel: String, Sendable, Codable, CaseIterable {
    case `private`, conversation, `public`
}

/// The incremental SHA-256 of uploads this process has seen from their first byte, so finishing
/// an upload does not read it back. After a restart, or when another replica took part, the hash
/// is computed from storage instead.
actor UploadHashers {
    private var running: [String: (offset: Int64, hasher: SHA256)] = [:]

    func start(_ id: String) { running[id] = (0, SHA256()) }

    /// The hasher to continue from `offset`, if this process holds one that is there.
    func take(_ id: String, at offset: Int64) -> SHA256? {
        guard let entry = running.removeValue(forKey: id), entry.offset == offset else { return nil }
        return entry.hasher
    }

    func put(_ id: String, _ hasher: SHA256, at offset: Int64) { running[id] = (offset, hasher) }

    func forget(_ id: String) { running[id] = nil }
}

/// One request at a time per upload in this process (a second concurrent PATCH gets 409).
actor UploadLocks {
    private var held: Set<String> = []

    func acquire(_ id: String) -> Bool { held.insert(id).inserted }

    func release(_ id: String) { held.remove(id) }
}
