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

    public init(store: any DatabaseStore, bus: any MessageBus, clock: any WallClock, logger: Logger) {
        self.store = store
        self.bus = bus
        self.clock = clock
        self.logger = logger
    }

    /// The bus channel of a user's events.
    public static func channel(forUser userId: String) -> String { "user.\(userId)" }

    /// Publishes committed events and marks them published.
    public func publish(_ events: [UserEvent]) async {
        guard !events.isEmpty else { return }
        var sent: [UserEvent] = []
        for event in events {
            do {
                try await bus.publish(ByteBuffer(string: event.frameJSON), to: Self.channel(forUser: event.userId))
                sent.append(event)
            } catch {
                logger.warning("event publish failed; the relay will resend it", metadata: ["user": "\(event.userId)", "seq": "\(event.seq)", "error": "\(error)"])
            }
        }
        let published = sent
        guard !published.isEmpty else { return }
        do {
            try await store.write { db in try await UserEventLog.markPublished(published, at: clock.now(), in: db) }
        } catch {
            logger.warning("marking events published failed; the relay may resend them", metadata: ["error": "\(error)"])
        }
    }

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
