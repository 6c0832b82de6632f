import AsyncAlgorithms
import CircleBus
import CircleCore
import CircleStore
import Logging
import NIOCore
import ServiceLifecycle

/// Republishes events that were committed but never published (the writer crashed between
/// commit and publish, or the bus was down), so no live client is stranded (DESIGN 11).
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

    /// Publishes one batch of stranded events; returns how many it handled.
    @discardableResult
    public func relayBatch(limit: Int = 200) async throws -> Int {
        let cutoff = Timestamp(millis: clock.now().millis - grace.milliseconds)
        return try await store.write { db in
            let events = try await UserEventLog.unpublished(before: cutoff, limit: limit, lock: store.engine == .postgres, in: db)
            guard !events.isEmpty else { return 0 }
            var sent: [UserEvent] = []
            for event in events {
                do {
                    try await bus.publish(ByteBuffer(string: event.frameJSON), to: EventPublisher.channel(forUser: event.userId))
                    sent.append(event)
                } catch {
                    break
                }
            }
            try await UserEventLog.markPublished(sent, at: clock.now(), in: db)
            if !sent.isEmpty {
                logger.info("relayed unpublished events", metadata: ["count": "\(sent.count)"])
            }
            return sent.count
        }
    }
}

