import CircleConfig
import CircleCore
import CircleStore
import GatewayStore
import Logging
import ServiceLifecycle

/// Removes sessions that ended: revoked, unused longer than `sessions.idleTimeout`, or older than
/// `sessions.maxAge` (every service already refuses them), in bounded batches (ARCHITECTURE 8).
package struct SessionSweeper: Service {
    package let store: any DatabaseStore
    package let clock: any WallClock
    package let logger: Logger
    package let lifetime: SessionLifetime
    package let interval: Duration
    package let batch: Int

    package init(store: any DatabaseStore, clock: any WallClock, logger: Logger, lifetime: SessionLifetime, interval: Duration = .seconds(600), batch: Int = 1000) {
        self.store = store
        self.clock = clock
        self.logger = logger
        self.lifetime = lifetime
        self.interval = interval
        self.batch = batch
    }

    package func run() async throws {
        await Sweeping.every(interval, logger: logger, what: "session") { try await sweep() }
    }

    /// Removes every ended session; returns how many went.
    @discardableResult
    package func sweep() async throws -> Int {
        let now = clock.now()
        let idleBefore = now.adding(milliseconds: -lifetime.idleTimeout.milliseconds)
        let createdBefore = now.adding(milliseconds: -lifetime.maxAge.milliseconds)
        let batch = self.batch
        let total = try await Sweeping.drain(limit: batch) {
            try await store.write { db in try await EndedSessions.delete(idleBefore: idleBefore, createdBefore: createdBefore, limit: batch, in: db) }
        }
        if total > 0 { logger.info("removed ended sessions", metadata: ["count": "\(total)"]) }
        return total
    }
}
