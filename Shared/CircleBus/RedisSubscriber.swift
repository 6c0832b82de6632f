import CircleConfig
import DequeModule
import Logging
import NIOCore

/// The pub/sub side of `RedisBus`: one connection in subscriber mode, kept alive by `run()`.
///
/// Local subscribers share Redis subscriptions: the first subscriber of a channel sends
/// SUBSCRIBE, the last one leaving sends UNSUBSCRIBE, and nobody else is disturbed. After a
/// reconnect every channel is subscribed again and its subscribers get `.gap`, so they catch up.
actor RedisSubscriber {
    private let settings: RedisSettings
    private let logger: Logger
    private var connection: RedisConnection?
    private var subscribers: [String: [UInt64: BusSink]] = [:]
    private var nextID: UInt64 = 0
    /// Callers waiting for a subscription to be confirmed, by waiter id.
    private var waiters: [UInt64: CheckedContinuation<Void, Never>] = [:]
    /// Waiters with a time limit whose wait is under way, and those of them resumed before their
    /// continuation was stored.
    private var timedWaiters: Set<UInt64> = []
    private var resumedEarly: Set<UInt64> = []
    private var nextWaiterID: UInt64 = 0
    /// Per channel, the waiters of each SUBSCRIBE sent, oldest first.
    private var confirmations: [String: Deque<[UInt64]>] = [:]
    /// Waiters who subscribed while disconnected, per channel, until the next connection.
    private var awaitingConnection: [String: [UInt64]] = [:]
    /// Channels whose latest command sent was SUBSCRIBE (so a newcomer joins its confirmation).
    private var subscribing: Set<String> = []
    /// Channels resubscribed after a reconnect, whose subscribers get `.gap` once confirmed.
    private var owedGap: Set<String> = []
    /// How long a subscriber waits for a connection before going on without one.
    private let connectWait: Duration = .seconds(3)
    private var lastPong = ContinuousClock.now
    private var connectedOnce = false

    init(settings: RedisSettings, logger: Logger) {
        self.settings = settings
        self.logger = logger
    }

    /// Subscribes to the full (prefixed) channel name; returns once Redis confirmed. While
    /// disconnected it waits a little for the connection, then returns anyway: the reconnect
    /// subscribes it and sends `.gap`.
    func subscribe(channel: String, logicalName: String, sink: BusSink, events: AsyncStream<BusEvent>) async -> BusSubscription {
        nextID += 1
        let id = nextID
        let isFirst = subscribers[channel]?.isEmpty ?? true
        subscribers[channel, default: [:]][id] = sink
        let subscription = BusSubscription(channel: logicalName, events: events) { [weak self] in
            await self?.unsubscribe(channel: channel, id: id)
        }
        guard let connection else {
            let waiter = newWaiter()
            awaitingConnection[channel, default: []].append(waiter)
            await wait(waiter, atMost: connectWait)
            return subscription
        }
        if isFirst {
            connection.sendPushing(["SUBSCRIBE", channel])
            subscribing.insert(channel)
            let waiter = newWaiter()
            confirmations[channel, default: []].append([waiter])
            await wait(waiter, atMost: nil)
        } else if subscribing.contains(channel), var queue = confirmations[channel], !queue.isEmpty {
            // A SUBSCRIBE for this channel is still unconfirmed: wait for it too.
            let waiter = newWaiter()
            queue[queue.count - 1].append(waiter)
            confirmations[channel] = queue
            await wait(waiter, atMost: nil)
        }
        return subscription
    }

    private func newWaiter() -> UInt64 {
        nextWaiterID += 1
        return nextWaiterID
    }

    /// Suspends until `resume(waiter)`, or until `limit` passes.
    private func wait(_ waiter: UInt64, atMost limit: Duration?) async {
        guard let limit else { return await withCheckedContinuation { waiters[waiter] = $0 } }
        timedWaiters.insert(waiter)
        defer {
            timedWaiters.remove(waiter)
            resumedEarly.remove(waiter)
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.waitForResume(waiter) }
            group.addTask {
                try? await Task.sleep(for: limit)
                await self.resume(waiter)
            }
            // The first to end resumes the other: the waiter's resume ends the sleep by cancelling it.
            await group.next()
            group.cancelAll()
        }
    }

    private func waitForResume(_ waiter: UInt64) async {
        if resumedEarly.remove(waiter) != nil { return }
        await withCheckedContinuation { waiters[waiter] = $0 }
    }

    private func resume(_ waiter: UInt64) {
        if let continuation = waiters.removeValue(forKey: waiter) {
            continuation.resume()
        } else if timedWaiters.contains(waiter) {
            // Resumed before its wait began (a timed wait starts in a child task): remembered,
            // so the wait returns at once.
            resumedEarly.insert(waiter)
        }
    }

    private func unsubscribe(channel: String, id: UInt64) {
        guard let sink = subscribers[channel]?.removeValue(forKey: id) else { return }
        sink.finish()
        if subscribers[channel]?.isEmpty == true {
            subscribers[channel] = nil
            subscribing.remove(channel)
            connection?.sendPushing(["UNSUBSCRIBE", channel])
        }
    }

    private func handle(_ push: RESPValue) {
        guard let parts = push.array, let kind = parts.first?.string?.lowercased() else { return }
        switch kind {
        case "message" where parts.count == 3:
            guard let channel = parts[1].string, case .bulk(let payload) = parts[2] else { return }
            for sink in subscribers[channel]?.values ?? [:].values { sink.deliver(.message(payload)) }
        case "subscribe":
            guard let channel = parts[1].string else { return }
            if var queue = confirmations[channel], let batch = queue.popFirst() {
                confirmations[channel] = queue.isEmpty ? nil : queue
                for waiter in batch { resume(waiter) }
            }
            if confirmations[channel] == nil { subscribing.remove(channel) }
            if owedGap.remove(channel) != nil {
                for sink in subscribers[channel]?.values ?? [:].values { sink.deliver(.gap) }
            }
        case "pong":
            lastPong = .now
        default:
            break
        }
    }

    /// Keeps the subscriber connection up until cancelled: connect, resubscribe, read, repeat.
    func run() async {
        var backoff = Duration.milliseconds(50)
        while !Task.isCancelled {
            let (pushes, pushContinuation) = AsyncStream.makeStream(of: RESPValue.self)
            do {
                let connection = try await RedisConnection.connect(
                    settings,
                    onPush: { pushContinuation.yield($0) },
                    onClose: { pushContinuation.finish() }
                )
                attach(connection)
                backoff = .milliseconds(50)
                await withTaskGroup(of: Void.self) { group in
                    group.addTask { await self.watchdog(connection) }
                    for await push in pushes { handle(push) }
                    group.cancelAll()
                }
                detach()
                if !Task.isCancelled {
                    logger.warning("redis subscriber connection lost; reconnecting", metadata: ["redis": "\(settings)"])
                }
            } catch {
                pushContinuation.finish()
                if !Task.isCancelled {
                    logger.warning("redis subscriber cannot connect; retrying", metadata: ["redis": "\(settings)", "error": "\(error)", "retry_ms": "\(backoff.milliseconds)"])
                }
            }
            try? await Task.sleep(for: backoff)
            backoff = min(backoff * 2, .seconds(2))
        }
        connection?.close()
        connection = nil
        for waiter in Array(waiters.keys) { resume(waiter) }
        for sink in subscribers.values.flatMap(\.values) { sink.finish() }
        subscribers = [:]
    }

    private func attach(_ connection: RedisConnection) {
        self.connection = connection
        lastPong = .now
        let channels = Array(subscribers.keys)
        if connectedOnce {
            owedGap = Set(channels)
        }
        connectedOnce = true
        for channel in channels {
            connection.sendPushing(["SUBSCRIBE", channel])
            subscribing.insert(channel)
            confirmations[channel, default: []].append(awaitingConnection.removeValue(forKey: channel) ?? [])
        }
        // Waiters whose subscription was cancelled meanwhile need no confirmation.
        for waiter in awaitingConnection.values.flatMap({ $0 }) { resume(waiter) }
        awaitingConnection = [:]
    }

    private func detach() {
        connection = nil
        subscribing = []
        // Nobody waits on a dead connection: the reconnect resubscribes and sends `.gap`.
        for queue in confirmations.values { for batch in queue { for waiter in batch { resume(waiter) } } }
        confirmations = [:]
    }

    /// Pings every few seconds; a connection that stops answering is closed (and so replaced).
    private func watchdog(_ connection: RedisConnection) async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(5))
            if Task.isCancelled { return }
            if ContinuousClock.now - lastPong > .seconds(15) {
                logger.warning("redis subscriber connection silent; closing it", metadata: ["redis": "\(settings)"])
                connection.close()
                return
            }
            connection.sendPushing(["PING"])
        }
    }
}
