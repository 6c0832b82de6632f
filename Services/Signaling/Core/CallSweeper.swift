import AsyncAlgorithms
import CircleCore
import CircleStore
import Logging
import ServiceLifecycle
import SignalingStore

/// Every two seconds: calls that rang too long are missed, devices silent for 30 s drop out,
/// members removed from a conversation leave its call, and calls with nobody left end. Several
/// replicas may run it; each call is changed under its row lock, so twice is harmless.
package struct CallSweeper: Service {
    let store: any DatabaseStore
    let calls: CallService
    let clock: any WallClock
    let logger: Logger
    let interval: Duration

    package init(store: any DatabaseStore, calls: CallService, clock: any WallClock, logger: Logger, interval: Duration = .seconds(2)) {
        self.store = store
        self.calls = calls
        self.clock = clock
        self.logger = logger
        self.interval = interval
    }

    package func run() async throws {
        var pass = 0
        for await _ in AsyncTimerSequence(interval: interval, clock: .continuous).cancelOnGracefulShutdown() {
            pass += 1
            do {
                // Every fifth pass also looks at every live call for members who left its conversation.
                try await sweep(everyLiveCall: pass % 5 == 0)
            } catch {
                logger.warning("call sweep failed", metadata: ["error": "\(error)"])
            }
        }
    }

    /// One pass; returns the calls it looked at.
    @discardableResult
    package func sweep(everyLiveCall: Bool = true) async throws -> [String] {
        let now = clock.now().millis
        let ids = try await store.read { db in
            var ids = try await CallRepository.due(now: now, stale: now - CallLimits.silentDevice, limit: 500, in: db)
            if everyLiveCall { ids = Array(Set(ids + (try await CallRepository.liveIds(limit: 5000, in: db)))).sorted() }
            return ids
        }
        for id in ids {
            do {
                try await calls.sweep(id)
            } catch {
                logger.warning("a call could not be swept", metadata: ["call": "\(id)", "error": "\(error)"])
            }
        }
        return ids
    }
}
