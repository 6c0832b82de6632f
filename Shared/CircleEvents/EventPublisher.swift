import CircleBus
import CircleCore
import CircleStore
import Logging
import NIOCore

/// Publishes committed user events on the bus (`user.{id}`) and records that it did.
///
/// Called only after the transaction that wrote the events has committed, so nobody hears of a
/// change that could still roll back. A failed publish is not an error for the caller: the
/// events stay unpublished in the log and `EventRelay` sends them again.
public struct EventPublisher: Sendable {
    let store: any DatabaseStore
    let bus: any MessageBus
    let clock: any WallClock
    let logger: Logger
    let marks: PublishedMarks

    public init(store: any DatabaseStore, bus: any MessageBus, clock: any WallClock, logger: Logger) {
        self.store = store
        self.bus = bus
        self.clock = clock
        self.logger = logger
        self.marks = PublishedMarks(store: store, clock: clock, logger: logger)
    }

    /// The bus channel of a user's events.
    public static func channel(forUser userId: String) -> String { "user.\(userId)" }

    /// Publishes committed events; they are marked published shortly after, in batches (one
    /// write for many requests: marks only keep the relay from sending them again).
    public func publish(_ events: [UserEvent]) async {
        guard !events.isEmpty else { return }
        // All at once, each user's events in order (one pipelined batch on the bus).
        let ordered = events.count == 1 ? events : events.sorted { ($0.userId, $0.seq) < ($1.userId, $1.seq) }
        let accepted = await bus.publish(ordered.map { (ByteBuffer(string: $0.frameJSON), Self.channel(forUser: $0.userId)) })
        var sent: [UserEvent] = []
        sent.reserveCapacity(ordered.count)
        for (event, ok) in zip(ordered, accepted) {
            if ok {
                sent.append(event)
            } else {
                logger.warning("event publish failed; the relay will resend it", metadata: ["user": "\(event.userId)", "seq": "\(event.seq)"])
            }
        }
        await marks.add(sent)
    }

    /// Writes the marks still pending (tests and shutdown).
    public func flushMarks() async { await marks.flush() }

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

/// Marks of published events, written together: the first mark starts a short timer, and
/// everything marked until it fires goes out in one statement per 500 events. A mark lost
/// (crash, database error) costs only a repeated delivery by the relay, which sockets drop by seq.
/// The timer (200 ms, well inside the relay's 2 s grace) keeps the marks' commits, each a disk
/// flush, from queueing with the messages' own at every send.
actor PublishedMarks {
    let store: any DatabaseStore
    let clock: any WallClock
    let logger: Logger
    let delay: Duration
    private var pending: [UserEvent] = []
    private var scheduled = false

    init(store: any DatabaseStore, clock: any WallClock, logger: Logger, delay: Duration = .milliseconds(200)) {
        self.store = store
        self.clock = clock
        self.logger = logger
        self.delay = delay
    }

    func add(_ events: [UserEvent]) {
        guard !events.isEmpty else { return }
        pending += events
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
                try await store.statement { db in try await UserEventLog.markPublished(batch, at: clock.now(), in: db) }
            } catch {
                logger.warning("marking events published failed; the relay may resend them", metadata: ["error": "\(error)"])
            }
        }
    }
}
