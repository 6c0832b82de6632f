import AsyncAlgorithms
import CircleBus
import CircleCore
import CircleStore
import Logging
import NIOCore
import ServiceLifecycle

/// Republishes events that were committed but never published (the writer crashed between
/// commit and publish, or the bus was down), so no live client is stranded (ARCHITECTURE 11).
///
/// Several replicas may run it: on PostgreSQL each batch is claimed with `FOR UPDATE SKIP
/// LOCKED`. A duplicate delivery is harmless: sockets drop sequence numbers they already sent.
public struct EventRelay: Service {
    let store: any DatabaseStore
    let bus: any MessageBus
    let clock: any WallClock
    let logger: Logger
    /// How old an unpublished event must be before the relay takes it.
    let grace: Duration
    let interval: Duration

    public init(store: any DatabaseStore, bus: any MessageBus, clock: any WallClock, logger: Logger,
                grace: Duration = .seconds(2), interval: Duration = .milliseconds(500)) {
        self.store = store
        self.bus = bus
        self.clock = clock
        self.logger = logger
        self.grace = grace
        self.interval = interval
    }

    public func run() async throws {
        for await _ in AsyncTimerSequence(interval: interval, clock: .continuous).cancelOnGracefulShutdown() {
            do {
                while try await relayBatch() == 200 {}
            } catch {
                logger.warning("event relay pass failed", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Publishes the events of one batch of outbox entries older than the grace (stranded);
    /// returns how many entries it handled. An entry is deleted once all its events went out
    /// (or when the log no longer holds them); each user's events are sent in order.
    @discardableResult
    public func relayBatch(limit: Int = 200) async throws -> Int {
        let cutoff = Timestamp(millis: clock.now().millis - grace.milliseconds)
        return try await store.yieldingWrite { db in
            let entries = try await UserEventLog.outbox(before: cutoff, limit: limit, lock: store.engine == .postgres, in: db)
            guard !entries.isEmpty else { return 0 }
            var done: [String] = []
            var sent = 0
            for entry in entries {
                let events = try await UserEventLog.events(listedIn: entry, in: db)
                let accepted = await bus.publish(try events.map { (try EventFrame(stored: $0).encoded(), EventPublisher.channel(forUser: $0.userId)) })
                guard accepted.allSatisfy({ $0 }) else { break }
                done.append(entry.id)
                sent += events.count
            }
            try await UserEventLog.removeFromOutbox(done, in: db)
            if sent > 0 {
                logger.info("relayed unpublished events", metadata: ["entries": "\(done.count)", "events": "\(sent)"])
            }
            return done.count
        }
    }
}
