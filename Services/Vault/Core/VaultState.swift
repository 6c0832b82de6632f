import CircleActivity
import CircleBus
import CircleConfig
import CircleCore
import CircleEvents
import CircleHTTP
import CircleProtocol
import CircleStore
import Crypto
import Foundation
import Hummingbird
import Logging
import MessagingStore
import SQLKit
import VaultStore

/// What the vault's controllers share.
package struct VaultState: Sendable {
    package let store: any DatabaseStore
    package let events: EventPublisher
    package let blobs: any BlobStore
    package let settings: VaultSettings
    package let clock: any WallClock
    package let logger: Logger
    package let hashers: UploadHashers
    package let locks: UploadLocks
    /// Records security activity (links created, opened, refused, revoked; files deleted).
    package let security: ActivityRecorder
    /// Waits for addresses and links that keep failing to open share links.
    package let linkThrottle: FailureThrottle
    /// The named rate limits (uploads started, links created).
    package let rateLimiter: RateLimiter

    package init(store: any DatabaseStore, events: EventPublisher, blobs: any BlobStore, settings: VaultSettings, clock: any WallClock, logger: Logger,
                 hashers: UploadHashers, locks: UploadLocks, security: ActivityRecorder, linkThrottle: FailureThrottle, rateLimiter: RateLimiter) {
        self.security = security
        self.rateLimiter = rateLimiter
        self.linkThrottle = linkThrottle
        self.store = store
        self.events = events
        self.blobs = blobs
        self.settings = settings
        self.clock = clock
        self.logger = logger
        self.hashers = hashers
        self.locks = locks
    }

    /// The limits one attempt to open a share link counts against: failures from the address on
    /// any link (20 an hour free, then waits up to 15 minutes), and failures on the link from
    /// anywhere (a password guessed from many addresses: 100 an hour free, and the link's
    /// genuine holders then wait at most a minute).
    package static func linkOpenLimits(link: String, address: String) -> [AttemptLimit] {
        [AttemptLimit(key: "link:addr:" + address, free: 20, window: .seconds(3600), maximumWait: .seconds(900)),
         AttemptLimit(key: "link:open:" + link, free: 100, window: .seconds(3600), maximumWait: .seconds(60))]
    }

    /// The largest expiry a client may set: a year ahead.
    package static let maximumLifetimeMillis: Int64 = 366 * 86_400_000

    /// A file the caller may read: its own, or a conversation file of a conversation the caller is
    /// a member of. Anyone else gets the same 404 as for a file that does not exist.
    package func readableFile(_ id: String, by userId: String, now: Timestamp, in db: any SQLDatabase) async throws -> VaultFileRecord {
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
    package func ownFile(_ id: String, by userId: String, now: Timestamp, in db: any SQLDatabase) async throws -> VaultFileRecord {
        try VaultWire.fileId(id)
        guard let file = try await VaultRepository.file(id, in: db), file.ownerId == userId, !file.isExpired(at: now) else { throw Self.noSuchFile }
        return file
    }

    package static let noSuchFile = Problem.notFound("No such file.")

    /// Records security activity inside the caller's transaction.
    package func record(_ items: [ActivityItem], at now: Timestamp, in db: any SQLDatabase) async throws -> RecordedActivity {
        try await security.record(items, at: now, engine: store.engine, in: db)
    }

    /// After the commit: alerts and live activity.
    package func publish(_ recorded: RecordedActivity) async {
        await security.publish(recorded, with: events)
    }

    /// The client's user agent, as much of it as the activity log keeps.
    package static func userAgent(_ request: Request) -> String {
        String((request.headers[.userAgent] ?? "").prefix(512))
    }

    /// Checks an expiry chosen by a client: 0 (never) or in the future, within a year.
    package func checkExpiry(_ expiresAt: Int64, field: String, now: Timestamp) throws {
        guard expiresAt == 0 || (expiresAt > now.millis && expiresAt <= now.millis + Self.maximumLifetimeMillis) else {
            throw Problem.invalidField(field, "must be 0 (never) or a time in milliseconds within the next year")
        }
    }
}


/// The incremental SHA-256 of uploads this process has seen from their first byte, so finishing
/// an upload does not read it back. After a restart, or when another replica took part, the hash
/// is computed from storage instead.
package actor UploadHashers {
    private var running: [String: (offset: Int64, hasher: SHA256)] = [:]

    package init() {}

    package func start(_ id: String) { running[id] = (0, SHA256()) }

    /// The hasher to continue from `offset`, if this process holds one that is there.
    package func take(_ id: String, at offset: Int64) -> SHA256? {
        guard let entry = running.removeValue(forKey: id), entry.offset == offset else { return nil }
        return entry.hasher
    }

    package func put(_ id: String, _ hasher: SHA256, at offset: Int64) { running[id] = (offset, hasher) }

    package func forget(_ id: String) { running[id] = nil }
}

/// One request at a time per upload in this process (a second concurrent PATCH gets 409).
package actor UploadLocks {
    private var held: Set<String> = []

    package init() {}

    package func acquire(_ id: String) -> Bool { held.insert(id).inserted }

    package func release(_ id: String) { held.remove(id) }

    /// Runs `body` holding the upload's lock, released before this returns (so a client's next
    /// request, sent as soon as it has the answer, finds it free); `busy` when it is held.
    package nonisolated func holding<T: Sendable>(_ id: String, busy: @autoclosure () -> any Error, _ body: () async throws -> T) async throws -> T {
        guard await acquire(id) else { throw busy() }
        do {
            let result = try await body()
            await release(id)
            return result
        } catch {
            await release(id)
            throw error
        }
    }
}
