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
    package let leases: UploadLeases
    /// Records security activity (links created, opened, refused, revoked; files deleted).
    package let security: ActivityRecorder
    /// Waits for addresses and links that keep failing to open share links.
    package let linkThrottle: FailureThrottle
    /// The named rate limits (uploads started, links created).
    package let rateLimiter: RateLimiter

    package init(store: any DatabaseStore, events: EventPublisher, blobs: any BlobStore, settings: VaultSettings, clock: any WallClock, logger: Logger,
                 hashers: UploadHashers, leases: UploadLeases, security: ActivityRecorder, linkThrottle: FailureThrottle, rateLimiter: RateLimiter) {
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
        self.leases = leases
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

    /// A file the caller may read: its own, or a file in a conversation the caller is a member of
    /// (a `conversation` file, or a `public` one shared by link from its conversation). Anyone
    /// else gets the same 404 as for a file that does not exist.
    package func readableFile(_ id: String, by userId: String, now: Timestamp, in db: any SQLDatabase) async throws -> VaultFileRecord {
        try VaultWire.fileId(id)
        guard let file = try await VaultRepository.file(id, in: db), !file.isExpired(at: now) else { throw Self.noSuchFile }
        if file.ownerId == userId { return file }
        if file.level != .private, let conversation = file.conversationId,
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


