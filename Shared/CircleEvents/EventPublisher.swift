import CircleBus
import CircleCore
import CircleStore
import Logging
import NIOCore

/// Publishes on the bus what users must see: committed events of their logs (on `user.{id}`),
/// and frames that are never stored (messages, presence, typing: on `user.{id}`, or once for
/// several members on `fanout`).
///
/// Called only after the transaction that wrote the change has committed, so nobody hears of a
/// change that could still roll back. A failed publish is not an error for the caller: a stored
/// event's outbox entry stays, and `EventRelay` sends it again.
public struct EventPublisher: Sendable {
    let store: any DatabaseStore
    let bus: any MessageBus
    let logger: Logger
    /// Deletes the outbox entries of published events; a service of the process that publishes.
    public let removals: OutboxRemovals

    public init(store: any DatabaseStore, bus: any MessageBus, logger: Logger) {
        self.store = store
        self.bus = bus
        self.logger = logger
        self.removals = OutboxRemovals(store: store, table: .events, logger: logger)
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
        var messages: [(payload: ByteBuffer, channel: String)] = []
        messages.reserveCapacity(ordered.count)
        var done = Set(ordered.compactMap(\.outbox))
        for event in ordered {
            do {
                messages.append((try EventFrame(published: event).encoded(), Self.channel(forUser: event.userId)))
            } catch {
                logger.error("a stored event cannot be framed", metadata: ["user": "\(event.userId)", "seq": "\(event.seq)", "type": "\(event.type)"])
                if let outbox = event.outbox { done.remove(outbox) }
            }
        }
        let accepted = await bus.publish(messages)
        for (event, ok) in zip(ordered, accepted) where !ok {
            logger.warning("event publish failed; the relay will resend it", metadata: ["user": "\(event.userId)", "seq": "\(event.seq)"])
            if let outbox = event.outbox { done.remove(outbox) }
        }
        await removals.add(Array(done))
    }

    /// Publishes frames that are not stored, each to its users, in order; true when the bus took
    /// every one. Messages are read again from their conversation after a gap; presence and
    /// typing are ephemeral. A frame for several members is published once, with its list of
    /// members, on the channel every gateway reads (`FanOutFrame`).
    @discardableResult
    public func publish(live deliveries: [(frame: EventFrame, userIds: [String])]) async -> Bool {
        var messages: [(payload: ByteBuffer, channel: String)] = []
        for (frame, userIds) in deliveries {
            if userIds.count >= FanOutFrame.minimumRecipients, frame.routing.device == nil, userIds.allSatisfy(FanOutFrame.listable) {
                messages.append((FanOutFrame.encode(frame, to: userIds), FanOutFrame.channel))
                continue
            }
            let payload = frame.encoded()
            for userId in userIds { messages.append((payload, Self.channel(forUser: userId))) }
        }
        guard !messages.isEmpty else { return true }
        let accepted = await bus.publish(messages)
        let all = accepted.allSatisfy { $0 }
        if !all { logger.debug("a live frame was not published", metadata: ["frames": "\(deliveries.count)"]) }
        return all
    }

    /// Deletes the outbox entries still pending deletion (tests and shutdown).
    public func flushOutbox() async { await removals.flush() }
}
