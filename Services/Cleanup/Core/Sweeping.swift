import AsyncAlgorithms
import Logging
import ServiceLifecycle

/// What the cleanup sweepers share: run every `interval` until graceful shutdown (a failed sweep
/// is logged and tried again next time), and delete in bounded batches until a short one.
package enum Sweeping {
    package static func every(_ interval: Duration, logger: Logger, what: String, _ sweep: @Sendable () async throws -> Void) async {
        for await _ in AsyncTimerSequence(interval: interval, clock: .continuous).cancelOnGracefulShutdown() {
            do {
                try await sweep()
            } catch {
                logger.warning("\(what) sweep failed", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Runs `batch` (one transaction each) until it deletes fewer than `limit`; returns the total.
    package static func drain(limit: Int, _ batch: () async throws -> Int) async throws -> Int {
        var total = 0
        while true {
            let deleted = try await batch()
            total += deleted
            if deleted < limit { return total }
        }
    }
}
