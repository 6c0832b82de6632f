import CircleCore
import DequeModule
import NIOCore

/// The in-process bus of the embedded mode (and of unit tests): same semantics as `RedisBus`.
public actor LocalBus: MessageBus {
    private var channels: [String: [UInt64: BusSink]] = [:]
    private var nextSubscriberID: UInt64 = 0
    private var streams: [String: LocalStream] = [:]
    private var waiters: [String: [UInt64: CheckedContinuation<Void, Never>]] = [:]
    private var nextWaiterID: UInt64 = 0
    private let clock = ContinuousClock()
    var counters: [String: (value: Int, until: ContinuousClock.Instant)] = [:]
    var buckets: [String: TokenBucket] = [:]

    public init() {}

    public func publish(_ payload: ByteBuffer, to channel: String) {
        guard let subscribers = channels[channel] else { return }
        for sink in subscribers.values { sink.deliver(.message(payload)) }
    }

    public func publish(_ messages: [(payload: ByteBuffer, channel: String)]) -> [Bool] {
        for (payload, channel) in messages { publish(payload, to: channel) }
        return Array(repeating: true, count: messages.count)
    }

    public func subscribe(to channel: String) -> BusSubscription {
        let (stream, sink) = BusSink.makeStream()
        return subscribe(channel, sink: sink, events: stream)
    }

    public func subscribe(to channel: String, handler: @escaping @Sendable (BusEvent) -> Void) -> BusSubscription {
        subscribe(channel, sink: .handler(handler), events: BusSink.noEvents)
    }

    private func subscribe(_ channel: String, sink: BusSink, events: AsyncStream<BusEvent>) -> BusSubscription {
        nextSubscriberID += 1
        let id = nextSubscriberID
        channels[channel, default: [:]][id] = sink
        return BusSubscription(channel: channel, events: events) { [weak self] in
            await self?.unsubscribe(channel: channel, id: id)
        }
    }

    private func unsubscribe(channel: String, id: UInt64) {
        guard let sink = channels[channel]?.removeValue(forKey: id) else { return }
        sink.finish()
        if channels[channel]?.isEmpty == true { channels[channel] = nil }
    }

    public func createGroup(stream: String, group: String) {
        streams[stream, default: LocalStream()].createGroup(group)
    }

    public func add(to stream: String, fields: [String: String], maxLength: Int?) -> String {
        // Milliseconds since 1970, as Redis's ids (presence reads when an entry was added from them).
        let now = Timestamp.now().millis
        let id = streams[stream, default: LocalStream()].append(fields: fields, nowMillis: now)
        if let maxLength { streams[stream]?.trim(to: maxLength) }
        if let waiting = waiters.removeValue(forKey: stream) {
            for continuation in waiting.values { continuation.resume() }
        }
        return id
    }

    public func readGroup(stream: String, group: String, consumer: String, count: Int, block: Duration?) async throws -> [StreamEntry] {
        let deadline = block.map { clock.now + $0 }
        while true {
            guard streams[stream]?.hasGroup(group) == true else { throw RedisBusError.server("NOGROUP no such consumer group \(group) for stream \(stream)") }
            let entries = streams[stream]!.deliverNew(group: group, consumer: consumer, count: count, now: clock.now)
            if !entries.isEmpty { return entries }
            guard let deadline, clock.now < deadline else { return [] }
            try Task.checkCancellation()
            await waitForAdd(stream: stream, until: deadline)
        }
    }

    /// Suspends until something is added to `stream` or the deadline passes.
    private func waitForAdd(stream: String, until deadline: ContinuousClock.Instant) async {
        nextWaiterID += 1
        let id = nextWaiterID
        let timer = Task { [weak self] in
            try? await Task.sleep(until: deadline, clock: ContinuousClock())
            await self?.wake(stream: stream, id: id)
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                waiters[stream, default: [:]][id] = continuation
            }
        } onCancel: {
            Task { await self.wake(stream: stream, id: id) }
        }
        timer.cancel()
    }

    private func wake(stream: String, id: UInt64) {
        waiters[stream]?.removeValue(forKey: id)?.resume()
    }

    public func ack(stream: String, group: String, ids: [String]) {
        streams[stream]?.ack(group: group, ids: ids)
    }

    public func claimIdle(stream: String, group: String, consumer: String, minIdle: Duration, count: Int) throws -> [StreamEntry] {
        guard streams[stream]?.hasGroup(group) == true else { throw RedisBusError.server("NOGROUP no such consumer group \(group) for stream \(stream)") }
        return streams[stream]!.claim(group: group, consumer: consumer, minIdle: minIdle, count: count, now: clock.now)
    }

    public func ping() {}

}

/// One stream's entries and groups, with Redis's semantics.
struct LocalStream {
    struct Pending {
        var consumer: String
        var deliveredAt: ContinuousClock.Instant
    }
    struct Group {
        var nextIndex = 0
        var pending: [String: Pending] = [:]
    }

    /// The entries kept, oldest first; `base` is the position (since the stream began) of the first.
    private(set) var entries: [StreamEntry] = []
    private var base = 0
    /// Each kept entry's position since the stream began.
    private var index: [String: Int] = [:]
    private var groups: [String: Group] = [:]
    private var lastMillis: Int64 = 0
    private var lastSequence: Int64 = 0

    func hasGroup(_ name: String) -> Bool { groups[name] != nil }

    mutating func createGroup(_ name: String) {
        if groups[name] == nil { groups[name] = Group(nextIndex: base) }
    }

    mutating func append(fields: [String: String], nowMillis: Int64) -> String {
        if nowMillis > lastMillis {
            lastMillis = nowMillis
            lastSequence = 0
        } else {
            lastSequence += 1
        }
        let id = "\(lastMillis)-\(lastSequence)"
        index[id] = base + entries.count
        entries.append(StreamEntry(id: id, fields: fields))
        return id
    }

    /// Drops the oldest entries beyond `maxLength`, delivered or not (as Redis's MAXLEN): a group
    /// that had not read them skips them, and pending ones can no longer be claimed.
    mutating func trim(to maxLength: Int) {
        let excess = entries.count - maxLength
        guard excess > 0 else { return }
        for entry in entries.prefix(excess) { index.removeValue(forKey: entry.id) }
        entries.removeFirst(excess)
        base += excess
        for name in groups.keys {
            groups[name]!.nextIndex = max(groups[name]!.nextIndex, base)
            groups[name]!.pending = groups[name]!.pending.filter { index[$0.key] != nil }
        }
    }

    mutating func deliverNew(group name: String, consumer: String, count: Int, now: ContinuousClock.Instant) -> [StreamEntry] {
        guard var group = groups[name] else { return [] }
        let end = min(base + entries.count, group.nextIndex + count)
        let delivered = Array(entries[(group.nextIndex - base)..<(end - base)])
        for entry in delivered { group.pending[entry.id] = Pending(consumer: consumer, deliveredAt: now) }
        group.nextIndex = end
        groups[name] = group
        return delivered
    }

    mutating func ack(group name: String, ids: [String]) {
        for id in ids { groups[name]?.pending.removeValue(forKey: id) }
    }

    mutating func claim(group name: String, consumer: String, minIdle: Duration, count: Int, now: ContinuousClock.Instant) -> [StreamEntry] {
        guard var group = groups[name] else { return [] }
        let idle = group.pending
            .filter { now - $0.value.deliveredAt >= minIdle }
            .keys
            .sorted { index[$0]! < index[$1]! }
            .prefix(count)
        var claimed: [StreamEntry] = []
        for id in idle {
            group.pending[id] = Pending(consumer: consumer, deliveredAt: now)
            claimed.append(entries[index[id]! - base])
        }
        groups[name] = group
        return claimed
    }
}
