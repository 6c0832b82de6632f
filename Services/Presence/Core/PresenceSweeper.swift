import AsyncAlgorithms
import CircleCore
import CircleStore
import Logging
import PresenceStore
import ServiceLifecycle

/// Every few seconds: takes gateways whose lease lapsed, judged at the time up to which this
/// replica has read their reports, for gone (their members go offline unless connected
/// elsewhere), clears custom statuses that expired, and forgets old tombstones of closed sockets. Several replicas may run it; each step is idempotent.
package struct PresenceSweeper: Service {
    let store: any DatabaseStore
    let presence: PresenceService
    let clock: any WallClock
    let logger: Logger
    let interval: Duration
    /// How far this replica has read the connection reports (leases are judged up to there).
    let backlog: ReportBacklog

    package init(store: any DatabaseStore, presence: PresenceService, clock: any WallClock, logger: Logger, backlog: ReportBacklog = ReportBacklog(),
                 interval: Duration = .seconds(5)) {
        self.store = store
        self.presence = presence
        self.clock = clock
        self.logger = logger
        self.backlog = backlog
        self.interval = interval
    }

    package func run() async throws {
        for await _ in AsyncTimerSequence(interval: interval, clock: .continuous).cancelOnGracefulShutdown() {
            do {
                try await sweep()
            } catch {
                logger.warning("presence sweep failed", metadata: ["error": "\(error)"])
            }
        }
    }

    /// One pass; returns the members it changed.
    @discardableResult
    package func sweep() async throws -> Set<String> {
        let now = clock.now()
        let judged = backlog.judged(at: now)
        let affected = try await store.write { db -> Set<String> in
            var affected = Set<String>()
            // A gateway never heard of (its lease report lost) is given 90 s from its first socket.
            for gateway in try await PresenceRepository.lapsedGateways(now: judged, stale: judged.adding(seconds: -90), in: db) {
                affected.formUnion(try await PresenceRepository.drop(gateway: gateway, in: db))
            }
            try await PresenceRepository.forgetClosed(before: now.adding(seconds: -600), in: db)
            return affected
        }
        for user in affected.sorted() { try await presence.refresh(user) }
        let expired = try await store.read { db in try await PresenceRepository.expiredStatuses(now: now, limit: 500, in: db) }
        for user in expired { try await presence.clearExpiredStatus(user) }
        if !affected.isEmpty { logger.info("presence: gateways gone", metadata: ["members": "\(affected.count)"]) }
        return affected.union(expired)
    }
}
