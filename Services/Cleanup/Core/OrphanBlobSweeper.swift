import CircleCore
import CircleStore
import Foundation
import Logging
import ServiceLifecycle
import VaultStore

/// Removes vault blobs that no row names (ARCHITECTURE 8): a crash between storing a blob and the
/// database commit, or between deleting a row and its blob, leaves one behind. Such a blob is
/// never served; this makes sure it does not stay. Storage is listed whole, so it runs every few
/// hours, and only blobs unchanged for `grace` go (a file being finished is stored a moment
/// before its row, and its upload's row names it meanwhile).
package struct OrphanBlobSweeper: Service {
    package let store: any DatabaseStore
    package let blobs: any BlobStore
    package let clock: any WallClock
    package let logger: Logger
    package let interval: Duration
    package let grace: Duration

    package init(store: any DatabaseStore, blobs: any BlobStore, clock: any WallClock, logger: Logger,
                 interval: Duration = .seconds(6 * 3600), grace: Duration = .seconds(86_400)) {
        self.store = store
        self.blobs = blobs
        self.clock = clock
        self.logger = logger
        self.interval = interval
        self.grace = grace
    }

    package func run() async throws {
        await Sweeping.every(interval, logger: logger, what: "orphan blob") { try await sweep() }
    }

    /// One sweep; returns how many files and uploads went.
    @discardableResult
    package func sweep() async throws -> (files: Int, uploads: Int) {
        let now = Date(timeIntervalSince1970: Double(clock.now().millis) / 1000)
        let gone = try await VaultExpiry.deleteOrphanBlobs(store: store, blobs: blobs, now: now, grace: Double(grace.components.seconds))
        if gone.files + gone.uploads > 0 {
            logger.notice("orphan blobs removed", metadata: ["files": "\(gone.files)", "uploads": "\(gone.uploads)"])
        }
        return gone
    }
}
