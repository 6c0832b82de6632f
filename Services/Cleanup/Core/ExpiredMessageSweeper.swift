import CircleCore
import CircleStore
import Logging
import MessagingStore
import ServiceLifecycle

/// Deletes disappearing messages once they expire, in bounded batches that several cleanup
/// replicas can run at once without double work (ARCHITECTURE 8). Until the sweep runs the messaging
/// service already refuses to serve them.
public struct ExpiredMessageSweeper: Service {
    package let store: any DatabaseStore
    package let clock: any WallClock
    package let logger: Logger
    package let interval: Duration
    package let batch: Int

    public init(store: any DatabaseStore, clock: any WallClock, logger: Logger, interval: Duration = .seconds(5), batch: Int = 500) {
        self.store = store
        self.clock = clock
        self.logger = logger
        self.interval = interval
        self.batch = batch
    }

    public func run() async throws {
        await Sweeping.every(interval, logger: logger, what: "expired message") { try await sweep() }
    }

    /// Deletes everything expired by now, one batch per transaction; returns how many went.
    @discardableResult
    public func sweep() async throws -> Int {
        let now = clock.now()
        let total = try await Sweeping.drain(limit: batch) {
            try await MessageExpiry.deleteBatch(store: store, now: now, limit: batch)
        }
        if total > 0 { logger.info("deleted expired messages", metadata: ["count": "\(total)"]) }
        return total
    }
}
