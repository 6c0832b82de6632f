import CircleCore
import CircleStore
import Logging
import MessagingStore
import ServiceLifecycle
import VaultStore

/// Deletes messages past their conversation's retention (a signed settings op every member
/// sees, PROTOCOL 5), conversation by conversation in bounded batches (ARCHITECTURE 8). Until
/// the sweep runs the messaging service already refuses to serve them. Attachments past it
/// expire (`VaultExpiry`), whenever they were sent and whatever expiry their sender gave them,
/// and go with the vault's expiry sweep.
public struct RetentionSweeper: Service {
    package let store: any DatabaseStore
    package let clock: any WallClock
    package let logger: Logger
    package let interval: Duration
    package let batch: Int

    public init(store: any DatabaseStore, clock: any WallClock, logger: Logger, interval: Duration = .seconds(60), batch: Int = 500) {
        self.store = store
        self.clock = clock
        self.logger = logger
        self.interval = interval
        self.batch = batch
    }

    public func run() async throws {
        await Sweeping.every(interval, logger: logger, what: "retention") { try await sweep() }
    }

    /// Deletes every message past its conversation's retention by now; returns how many went.
    @discardableResult
    public func sweep() async throws -> Int {
        let now = clock.now()
        var total = 0
        var files = 0
        for (conversationId, keepsFrom) in try await MessageExpiry.retentions(store: store, now: now) {
            files += try await VaultExpiry.expireAttachments(of: conversationId, receivedBefore: keepsFrom, now: now, limit: batch, store: store)
            while let deleted = try await MessageExpiry.deleteUnretainedBatch(store: store, conversationId: conversationId, keepsFrom: keepsFrom, limit: batch) {
                total += deleted
                // Another replica took this batch's rows: leave the rest to it.
                if deleted == 0 { break }
            }
        }
        if total > 0 { logger.info("deleted messages past their retention", metadata: ["count": "\(total)"]) }
        if files > 0 { logger.info("expired attachments past their conversation's retention", metadata: ["count": "\(files)"]) }
        return total
    }
}
