import CircleCore
import NIOCore

/// What a subscription yields.
public enum BusEvent: Sendable, Equatable {
    /// A message published on the channel.
    case message(ByteBuffer)
    /// Messages may have been missed (the bus reconnected, or the subscriber fell too far
    /// behind): catch up from the database. Pub/sub is never the source of truth.
    case gap
}

/// An entry of a stream, as a consumer group member reads it.
public struct StreamEntry: Sendable, Equatable {
    public let id: String
    public let fields: [String: String]

    public init(id: String, fields: [String: String]) {
        self.id = id
        self.fields = fields
    }
}

/// The coordination bus (ARCHITECTURE 2): per-user pub/sub channels for fan-out, and streams
/// with consumer groups for work exactly one replica must do.
///
/// Channel and stream names are logical (`user.42`); implementations add their key prefix.
public protocol MessageBus: Sendable {
    /// Sends `payload` to every current subscriber of `channel`, on every replica. Fire and forget.
    func publish(_ payload: ByteBuffer, to channel: String) async throws

    /// Publishes each (payload, channel) in the given order, all at once (on Redis: pipelined on
    /// one connection, so a channel's subscribers get them in this order); answers, in the same
    /// order, whether each was accepted.
    func publish(_ messages: [(payload: ByteBuffer, channel: String)]) async -> [Bool]

    /// Subscribes to `channel`. When this returns, later publishes reach the subscription,
    /// until it is cancelled. Other subscriptions are not disturbed by either.
    func subscribe(to channel: String) async throws -> BusSubscription

    /// The same, delivering each event to `handler` as it arrives (in order, on the bus's own
    /// context: the handler must only hand the event on). No task waits per subscription, which
    /// matters for the thousands of idle sockets of a gateway. `events` stays empty.
    func subscribe(to channel: String, handler: @escaping @Sendable (BusEvent) -> Void) async throws -> BusSubscription

    /// Creates the consumer group if it does not exist; a new group starts at the stream's start.
    func createGroup(stream: String, group: String) async throws

    /// Appends an entry; returns its id. With `maxLength`, the oldest entries beyond about that
    /// many are dropped (delivered or not: a stream is a queue of recent work, not a record).
    @discardableResult
    func add(to stream: String, fields: [String: String], maxLength: Int?) async throws -> String

    /// Reads up to `count` entries never delivered to the group, waiting up to `block` for one.
    func readGroup(stream: String, group: String, consumer: String, count: Int, block: Duration?) async throws -> [StreamEntry]

    /// Marks entries done for the group.
    func ack(stream: String, group: String, ids: [String]) async throws

    /// Takes over up to `count` entries delivered to any consumer at least `minIdle` ago and not
    /// acknowledged (the consumer presumably died), and returns them for `consumer` to handle.
    func claimIdle(stream: String, group: String, consumer: String, minIdle: Duration, count: Int) async throws -> [StreamEntry]

    /// Answers when the bus does (readiness).
    func ping() async throws
}

/// A live subscription to one channel. Cancel it when done; the stream then finishes.
public final class BusSubscription: Sendable {
    public let channel: String
    public let events: AsyncStream<BusEvent>
    private let onCancel: @Sendable () async -> Void

    public init(channel: String, events: AsyncStream<BusEvent>, onCancel: @escaping @Sendable () async -> Void) {
        self.channel = channel
        self.events = events
        self.onCancel = onCancel
    }

    /// Unsubscribes; idempotent.
    public func cancel() async {
        await onCancel()
    }
}

/// How many undelivered events a subscription holds before it reports a gap and drops the rest.
let subscriptionBufferLimit = 4096

/// Where a subscription's events go.
struct BusSink: Sendable {
    let deliver: @Sendable (BusEvent) -> Void
    let finish: @Sendable () -> Void

    /// Into a bounded stream; a subscriber that lets it overflow is ended, and must resubscribe
    /// and catch up from the database.
    static func stream(_ continuation: AsyncStream<BusEvent>.Continuation) -> BusSink {
        BusSink(
            deliver: { event in
                if case .dropped = continuation.yield(event) { continuation.finish() }
            },
            finish: { continuation.finish() }
        )
    }

    static func handler(_ handler: @escaping @Sendable (BusEvent) -> Void) -> BusSink {
        BusSink(deliver: handler, finish: {})
    }

    static func makeStream() -> (AsyncStream<BusEvent>, BusSink) {
        let (stream, continuation) = AsyncStream.makeStream(of: BusEvent.self, bufferingPolicy: .bufferingOldest(subscriptionBufferLimit))
        return (stream, .stream(continuation))
    }

    static let noEvents = AsyncStream<BusEvent> { $0.finish() }
}


extension MessageBus {
    /// Appends an entry to a stream kept whole.
    @discardableResult
    public func add(to stream: String, fields: [String: String]) async throws -> String {
        try await add(to: stream, fields: fields, maxLength: nil)
    }

    /// One publish after another (buses without pipelining).
    public func publish(_ messages: [(payload: ByteBuffer, channel: String)]) async -> [Bool] {
        var accepted: [Bool] = []
        accepted.reserveCapacity(messages.count)
        for (payload, channel) in messages {
            do {
                try await publish(payload, to: channel)
                accepted.append(true)
            } catch {
                accepted.append(false)
            }
        }
        return accepted
    }
}
