import CircleActivity
import CircleCore
import CircleStore
import Logging
import ServiceLifecycle

/// Removes security activity older than its retention (`activity.retention`), in bounded
/// batches, keeping every chain verifiable: the last removed entry's hash becomes the chain's
/// anchor (ARCHITECTURE 7 and 8).
package struct ActivitySweeper: Service {
    package let store: any DatabaseStore
    package let clock: any WallClock
    package let logger: Logger
    package let retention: Duration
    package let interval: Duration
    package let batch: Int

    package init(store: any DatabaseStore, clock: any WallClock, logger: Logger, retention: Duration, interval: Duration = .seconds(300), batch: Int = 1000) {
        self.store = store
        self.clock = clock
        self.logger = logger
        self.retention = retention
        self.interval = interval
        self.batch = batch
    }

    package func run() async throws {
        await Sweeping.every(interval, logger: logger, what: "activity") { try await sweep() }
    }

    /// Removes everything past the retention; returns how many entries went.
    @discardableResult
    package func sweep() async throws -> Int {
        let cutoff = clock.now().adding(seconds: -retention.components.seconds)
        let engine = store.engine
        let batch = self.batch
        let total = try await Sweeping.drain(limit: batch) {
            try await store.write { db in try await ActivityLog.prune(before: cutoff, limit: batch, engine: engine, in: db) }
        }
        if total > 0 { logger.info("removed old security activity", metadata: ["count": "\(total)"]) }
        return total
    }
}
