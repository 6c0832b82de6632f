import CircleBus
import CircleCore
import CircleStore
import Logging
import NIOCore

/// Publishes committed user events on the bus (`user.{id}`) and records that it did.
///
/// Called only after the transaction that wrote the events has committed, so nobody hears of a
/// change that could still roll back. A failed publish is not an error for the caller: the
/// events' outbox entry stays, and `EventRelay` sends them again.
public struct EventPublisher: Sendable {
    let store: any DatabaseStore
    let bus: any MessageBus
    let clock: any WallClock
    let logger: Logger
    let removals: OutboxRemovals

    public init(store: any DatabaseStore, bus: any MessageBus, clock: any WallClock, logger: Logger) {
        self.store = store
        self.bus = bus
        self.clock = clock
        self.logger = logger
        self.removals = OutboxRemovals(store: store, logger: logger)
    }

    /// The bus channel of a user's events.
    public static func channel(forUser userId: String) -> String { "user.\(userId)" }

    /// Publishes committed events (each with the outbox entry its append wrote); an entry whose
    /// events all went out is deleted shortly after, together with others (one write for many
    /// requests: the entries only keep the relay from sending the events again).
    public func publish(_ events: [UserEvent]) async {
        guard !events.isEmpty else { return }
        // All at once, each user's events in order (one pipelined batch on the bus).
        let ordered = events.count == 1 ? events : events.sorted { ($0.userId, $0.seq) < ($1.userId, $1.seq) }
        let accepted = await bus.publish(ordered.map { (ByteBuffer(string: $0.frameJSON), Self.channel(forUser: $0.userId)) })
        var done = Set(ordered.compactMap(\.outbox))
        for (event, ok) in zip(ordered, accepted) where !ok {
            logger.warning("event publish failed; the relay will resend it", metadata: ["user": "\(event.userId)", "seq": "\(event.seq)"])
            if let outbox = event.outbox { done.remove(outbox) }
        }
        await removals.add(Array(done))
    }

    /// Deletes the outbox entries still pending deletion (tests and shutdown).
    public func flushOutbox() async { await removals.flush() }

    /// Sends an event that is not stored (typing, presence): live only, no sequence number.
    public func publishEphemeral(type: String, data: String, to userIds: [String]) async {
        let frame = ByteBuffer(string: "{\"type\":\(JSONText.quote(type)),\"data\":\(data)}")
        for userId in userIds {
            do {
                try await bus.publish(frame, to: Self.channel(forUser: userId))
            } catch {
                logger.debug("ephemeral publish failed", metadata: ["error": "\(error)"])
            }
        }
    }
}

/// Outbox entries of published events, deleted together: the first starts a short timer, and
/// every entry added until it fires goes in one statement per 500. An entry left behind (crash,
/// database error) costs only a repeated delivery by the relay, which sockets drop by seq. The
/// timer (200 ms, well inside the relay's 2 s grace) keeps these commits, each a disk flush,
/// from queueing with the messages' own at every send.
actor OutboxRemovals {
    let store: any DatabaseStore
    let logger: Logger
    let delay: Duration
    private var pending: [String] = []
    private var scheduled = false

    init(store: any DatabaseStore, logger: Logger, delay: Duration = .milliseconds(200)) {
        self.store = store
        self.logger = logger
        self.delay = delay
    }

    func add(_ ids: [String]) {
        guard !ids.isEmpty else { return }
        pending += ids
        guard !scheduled else { return }
        scheduled = true
        Task {
            try? await Task.sleep(for: delay)
            await flush()
        }
    }

    func flush() async {
        scheduled = false
        while !pending.isEmpty {
            let batch = Array(pending.prefix(500))
            pending.removeFirst(batch.count)
            do {
                try await store.statement { db in try await UserEventLog.removeFromOutbox(batch, in: db) }
            } catch {
                logger.warning("deleting published outbox entries failed; the relay may resend their events", metadata: ["error": "\(error)"])
            }
        }
    }
}
