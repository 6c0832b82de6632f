import CircleCore
import CircleStore
import Logging
import ServiceLifecycle

/// Deletes user events older than the retention, in bounded batches (ARCHITECTURE 8 and 11).
/// Clients that come back later than that get `resync-required` and reload through the API.
public struct EventLogSweeper: Service {
    package let store: any DatabaseStore
    package let clock: any WallClock
    package let logger: Logger
    package let retention: Duration
    package let interval: Duration
    package let batch: Int

    public init(store: any DatabaseStore, clock: any WallClock, logger: Logger, retention: Duration, interval: Duration = .seconds(60), batch: Int = 1000) {
        self.store = store
        self.clock = clock
        self.logger = logger
        self.retention = retention
        self.interval = interval
        self.batch = batch
    }

    public func run() async throws {
        await Sweeping.every(interval, logger: logger, what: "event log") { try await sweep() }
    }

    /// Deletes everything past the retention, one batch per transaction; returns how many went.
    @discardableResult
    public func sweep() async throws -> Int {
        let seconds = retention.components.seconds
        let cutoff = clock.now().adding(seconds: -seconds)
        let total = try await Sweeping.drain(limit: batch) {
            try await store.write { db in try await UserEventLog.prune(before: cutoff, limit: batch, in: db) }
        }
        if total > 0 { logger.info("pruned old events", metadata: ["count": "\(total)"]) }
        return total
    }
}
