import CircleCore
import CircleStore
import Logging
import ServiceLifecycle
import VaultStore

/// Removes expired vault files, files nobody downloaded for `idleRetention` (when set),
/// unfinished uploads past their expiry, and revokes share links that expired or ran out of
/// downloads (ARCHITECTURE 8), in bounded batches.
package struct VaultSweeper: Service {
    package let store: any DatabaseStore
    package let clock: any WallClock
    package let logger: Logger
    package let blobs: any BlobStore
    package let interval: Duration
    package let batch: Int
    package let idleRetention: Duration?

    package init(store: any DatabaseStore, blobs: any BlobStore, clock: any WallClock, logger: Logger, interval: Duration = .seconds(30), batch: Int = 200,
                 idleRetention: Duration? = nil) {
        self.idleRetention = idleRetention
        self.store = store
        self.clock = clock
        self.logger = logger
        self.blobs = blobs
        self.interval = interval
        self.batch = batch
    }

    package func run() async throws {
        await Sweeping.every(interval, logger: logger, what: "vault") { try await sweep() }
    }

    /// One full sweep; returns how many files, uploads and links went.
    @discardableResult
    package func sweep() async throws -> (files: Int, uploads: Int, links: Int) {
        let now = clock.now()
        var files = try await Sweeping.drain(limit: batch) {
            try await VaultExpiry.deleteExpiredFiles(store: store, blobs: blobs, now: now, limit: batch)
        }
        if let idleRetention {
            let before = now.adding(milliseconds: -Int64(idleRetention.components.seconds) * 1000)
            files += try await Sweeping.drain(limit: batch) {
                try await VaultExpiry.deleteIdleFiles(store: store, blobs: blobs, before: before, now: now, limit: batch)
            }
        }
        let uploads = try await Sweeping.drain(limit: batch) {
            try await VaultExpiry.deleteStaleUploads(store: store, blobs: blobs, now: now, limit: batch)
        }
        let links = try await Sweeping.drain(limit: batch) {
            try await VaultExpiry.revokeSpentLinks(store: store, now: now, limit: batch)
        }
        _ = try await Sweeping.drain(limit: batch) {
            try await VaultExpiry.deleteExpiredTickets(store: store, now: now, limit: batch)
        }
        if files + uploads + links > 0 {
            logger.info("vault sweep", metadata: ["files": "\(files)", "uploads": "\(uploads)", "links": "\(links)"])
        }
        return (files, uploads, links)
    }
}
