import CircleBus
import CircleConfig
import CircleTestSupport
import Foundation
import NIOCore
import Testing

/// Every bus test, written once and run against `LocalBus` and `RedisBus`.
enum BusConformance {
    typealias Case = @Sendable (any MessageBus) async throws -> Void

    static let cases: [String: Case] = [
        "a subscriber receives what is published, in order": receivesInOrder,
        "two subscribers of one channel both receive; one leaving does not disturb the other": sharedChannel,
        "subscribing and unsubscribing other channels does not disturb live traffic": churnDoesNotDisturb,
        "a cancelled subscription ends and receives nothing more": cancelEnds,
        "each stream entry goes to exactly one consumer of a group": entriesSharedOnce,
        "entries of a dead consumer are claimed by another; acknowledged ones are not": claimDeadConsumer,
        "a blocking read wakes up when an entry arrives, and times out empty": blockingRead,
        "creating a group twice is harmless, and a group sees entries added before it": groupIdempotent,
        "a stream added to with a length limit keeps about that many of its newest entries": trimmed,
        "expiring counters count within their window, block for a while, and reset": expiringCounters,
        "of 40 concurrent attempts exactly the free ones and one more pass; waits double; a decrement gives one back": attemptsAtomic,
        "a token bucket gives its capacity at once, even to concurrent takers, then one per period/capacity": tokenBucket,
        "a handler subscription gets every message in order, and nothing after cancel": handlerSubscription,
        "a batch publish delivers each channel's messages in order, interleaved with another channel's": batchInOrder,
    ]

    static var names: [String] { cases.keys.sorted() }

    /// The next event, nil when the stream ended; fails when nothing arrives in time.
    static func next(_ iterator: inout AsyncStream<BusEvent>.Iterator, within timeout: Duration = .seconds(30)) async throws -> BusEvent? {
        let box = IteratorBox(iterator)
        let result = try await withThrowingTaskGroup(of: BusEvent?.self) { group in
            group.addTask { await box.next() }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw TestSupportError("no bus event within \(timeout)")
            }
            let first = try await group.next()!
            group.cancelAll()
            return first
        }
        iterator = box.iterator
        return result
    }

    static func text(_ event: BusEvent?) -> String? {
        if case .message(let buffer) = event { return String(buffer: buffer) }
        return nil
    }

    static func receivesInOrder(_ bus: any MessageBus) async throws {
        let subscription = try await bus.subscribe(to: "user.1")
        var iterator = subscription.events.makeAsyncIterator()
        for index in 0..<50 { try await bus.publish(ByteBuffer(string: "m\(index)"), to: "user.1") }
        try await bus.publish(ByteBuffer(string: "elsewhere"), to: "user.2")
        for index in 0..<50 { #expect(text(try await next(&iterator)) == "m\(index)") }
        await subscription.cancel()
    }

    static func batchInOrder(_ bus: any MessageBus) async throws {
        let one = try await bus.subscribe(to: "user.31")
        let two = try await bus.subscribe(to: "user.32")
        var first = one.events.makeAsyncIterator()
        var second = two.events.makeAsyncIterator()
        var batch: [(payload: ByteBuffer, channel: String)] = []
        for index in 0..<300 {
            batch.append((ByteBuffer(string: "a\(index)"), "user.31"))
            if index % 3 == 0 { batch.append((ByteBuffer(string: "b\(index)"), "user.32")) }
        }
        let accepted = await bus.publish(batch)
        #expect(accepted.count == batch.count)
        #expect(accepted.allSatisfy { $0 })
        for index in 0..<300 { #expect(text(try await next(&first)) == "a\(index)") }
        for index in stride(from: 0, to: 300, by: 3) { #expect(text(try await next(&second)) == "b\(index)") }
        #expect(await bus.publish([]).isEmpty)
        await one.cancel()
        await two.cancel()
    }

    static func sharedChannel(_ bus: any MessageBus) async throws {
        let a = try await bus.subscribe(to: "user.7")
        let b = try await bus.subscribe(to: "user.7")
        var ia = a.events.makeAsyncIterator()
        var ib = b.events.makeAsyncIterator()
        try await bus.publish(ByteBuffer(string: "one"), to: "user.7")
        #expect(text(try await next(&ia)) == "one")
        #expect(text(try await next(&ib)) == "one")
        await a.cancel()
        try await bus.publish(ByteBuffer(string: "two"), to: "user.7")
        #expect(text(try await next(&ib)) == "two")
        await b.cancel()
    }

    static func churnDoesNotDisturb(_ bus: any MessageBus) async throws {
        let steady = try await bus.subscribe(to: "user.steady")
        var iterator = steady.events.makeAsyncIterator()
        let count = 200
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for index in 0..<40 {
                    let other = try await bus.subscribe(to: "user.churn\(index % 5)")
                    await other.cancel()
                }
            }
            group.addTask {
                for index in 0..<count { try await bus.publish(ByteBuffer(string: "s\(index)"), to: "user.steady") }
            }
            try await group.waitForAll()
        }
        for index in 0..<count { #expect(text(try await next(&iterator)) == "s\(index)") }
        await steady.cancel()
    }

    static func cancelEnds(_ bus: any MessageBus) async throws {
        let subscription = try await bus.subscribe(to: "user.gone")
        var iterator = subscription.events.makeAsyncIterator()
        await subscription.cancel()
        await subscription.cancel()
        try await bus.publish(ByteBuffer(string: "late"), to: "user.gone")
        #expect(try await next(&iterator) == nil)
    }

    static func entriesSharedOnce(_ bus: any MessageBus) async throws {
        try await bus.createGroup(stream: "jobs", group: "workers")
        for index in 0..<30 { try await bus.add(to: "jobs", fields: ["n": String(index)]) }
        var seen: [String] = []
        var turn = 0
        while seen.count < 30 {
            let consumer = turn.isMultiple(of: 2) ? "a" : "b"
            turn += 1
            let entries = try await bus.readGroup(stream: "jobs", group: "workers", consumer: consumer, count: 4, block: nil)
            if entries.isEmpty { break }
            seen += entries.compactMap { $0.fields["n"] }
            try await bus.ack(stream: "jobs", group: "workers", ids: entries.map(\.id))
        }
        #expect(seen == (0..<30).map(String.init))
        #expect(try await bus.readGroup(stream: "jobs", group: "workers", consumer: "a", count: 4, block: nil).isEmpty)
    }

    static func claimDeadConsumer(_ bus: any MessageBus) async throws {
        try await bus.createGroup(stream: "work", group: "g")
        for index in 0..<4 { try await bus.add(to: "work", fields: ["n": String(index)]) }
        let taken = try await bus.readGroup(stream: "work", group: "g", consumer: "dies", count: 4, block: nil)
        #expect(taken.count == 4)
        try await bus.ack(stream: "work", group: "g", ids: [taken[0].id])
        // Too soon: nothing is idle long enough.
        #expect(try await bus.claimIdle(stream: "work", group: "g", consumer: "heir", minIdle: .seconds(30), count: 10).isEmpty)
        try await Task.sleep(for: .milliseconds(150))
        let claimed = try await bus.claimIdle(stream: "work", group: "g", consumer: "heir", minIdle: .milliseconds(100), count: 10)
        #expect(claimed.map { $0.fields["n"] } == ["1", "2", "3"])
        try await bus.ack(stream: "work", group: "g", ids: claimed.map(\.id))
        try await Task.sleep(for: .milliseconds(150))
        #expect(try await bus.claimIdle(stream: "work", group: "g", consumer: "third", minIdle: .milliseconds(100), count: 10).isEmpty)
    }

    static func blockingRead(_ bus: any MessageBus) async throws {
        try await bus.createGroup(stream: "wake", group: "g")
        let start = ContinuousClock.now
        let empty = try await bus.readGroup(stream: "wake", group: "g", consumer: "c", count: 1, block: .milliseconds(200))
        #expect(empty.isEmpty)
        #expect(ContinuousClock.now - start >= .milliseconds(150))
        async let woken = bus.readGroup(stream: "wake", group: "g", consumer: "c", count: 1, block: .seconds(10))
        try await Task.sleep(for: .milliseconds(100))
        let added = ContinuousClock.now
        try await bus.add(to: "wake", fields: ["k": "v"])
        let entries = try await woken
        #expect(entries.map { $0.fields["k"] } == ["v"])
        // Woken by the entry, not by the 10 s block running out; the margin is for a loaded machine.
        #expect(ContinuousClock.now - added < .seconds(9))
    }

    static func groupIdempotent(_ bus: any MessageBus) async throws {
        // A stream may get entries before its group exists; the group still sees them.
        try await bus.createGroup(stream: "early", group: "first")
        try await bus.add(to: "early", fields: ["n": "0"])
        try await bus.createGroup(stream: "early", group: "second")
        try await bus.createGroup(stream: "early", group: "second")
        let entries = try await bus.readGroup(stream: "early", group: "second", consumer: "c", count: 10, block: nil)
        #expect(entries.map { $0.fields["n"] } == ["0"])
    }

    static func trimmed(_ bus: any MessageBus) async throws {
        for index in 0..<2000 { try await bus.add(to: "recent", fields: ["n": String(index)], maxLength: 100) }
        try await bus.createGroup(stream: "recent", group: "late")
        var read: [String] = []
        while true {
            let entries = try await bus.readGroup(stream: "recent", group: "late", consumer: "c", count: 500, block: nil)
            if entries.isEmpty { break }
            read += entries.compactMap { $0.fields["n"] }
        }
        // Redis trims whole nodes of its tree ("~"), so a little more than the limit may stay.
        #expect(read.count >= 100 && read.count <= 300, "kept \(read.count)")
        #expect(read.last == "1999")
        #expect(read == (2000 - read.count..<2000).map(String.init))
    }
}

extension BusConformance {
    static func handlerSubscription(_ bus: any MessageBus) async throws {
        let (received, sink) = AsyncStream.makeStream(of: BusEvent.self)
        let subscription = try await bus.subscribe(to: "user.handler") { sink.yield($0) }
        for index in 0..<100 { try await bus.publish(ByteBuffer(string: "h\(index)"), to: "user.handler") }
        var iterator = received.makeAsyncIterator()
        for index in 0..<100 { #expect(text(try await next(&iterator)) == "h\(index)") }
        await subscription.cancel()
        try await bus.publish(ByteBuffer(string: "late"), to: "user.handler")
        try await bus.publish(ByteBuffer(string: "marker"), to: "user.other")
        sink.finish()
        #expect(try await next(&iterator) == nil)
    }

    static func expiringCounters(_ bus: any MessageBus) async throws {
        let counters = try #require(bus as? any ExpiringCounters)
        // Counting within a window long enough that a stalled machine cannot end it between calls;
        // expiry with a short one (a stall only lets it expire sooner, as the test expects).
        #expect(try await counters.increment("c", window: .seconds(60)) == 1)
        #expect(try await counters.increment("c", window: .seconds(60)) == 2)
        #expect(try await counters.increment("other", window: .seconds(60)) == 1)
        #expect(try await counters.increment("short", window: .seconds(1)) == 1)
        try await Task.sleep(for: .milliseconds(1200))
        #expect(try await counters.increment("short", window: .seconds(1)) == 1)
        #expect(try await counters.increment("c", window: .seconds(60)) == 3)
        #expect(try await counters.remaining("flag") == nil)
        try await counters.block("flag", for: .seconds(60))
        let left = try #require(try await counters.remaining("flag"))
        #expect(left > .seconds(30) && left <= .seconds(60))
        try await counters.reset(["flag", "c"])
        #expect(try await counters.remaining("flag") == nil)
        #expect(try await counters.increment("c", window: .seconds(1)) == 1)
    }

    /// Two limits as the sign-in throttle's: 5 free for the name, 20 for the address.
    static func attemptLimits(firstWait: Duration) -> [AttemptLimit] {
        [AttemptLimit(key: "name", free: 5, window: .seconds(600), firstWait: firstWait, maximumWait: .seconds(600)),
         AttemptLimit(key: "address", free: 20, window: .seconds(600), firstWait: firstWait, maximumWait: .seconds(600))]
    }

    /// `attempts` concurrent attempts through each of `replicas`; the outcomes.
    static func concurrentAttempts(_ replicas: [any ExpiringCounters], _ attempts: Int, limits: [AttemptLimit]) async throws -> [AttemptOutcome] {
        try await withThrowingTaskGroup(of: AttemptOutcome.self) { group in
            for replica in replicas {
                for _ in 0..<attempts { group.addTask { try await replica.attempt(limits) } }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
    }

    /// `count` concurrent takes through each of `replicas`; how many got a token.
    static func concurrentTakes(_ replicas: [any ExpiringCounters], _ count: Int, key: String, capacity: Int, period: Duration) async throws -> Int {
        try await withThrowingTaskGroup(of: Bool.self) { group in
            for replica in replicas {
                for _ in 0..<count { group.addTask { try await replica.take(key, capacity: capacity, period: period) == nil } }
            }
            return try await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
    }

    static func tokenBucket(_ bus: any MessageBus) async throws {
        let counters = try #require(bus as? any ExpiringCounters)
        // A slow refill (one token per minute): no token comes back during the burst.
        #expect(try await concurrentTakes([counters], 30, key: "slow", capacity: 10, period: .seconds(600)) == 10)
        let wait = try #require(try await counters.take("slow", capacity: 10, period: .seconds(600)))
        #expect(wait > .seconds(30) && wait <= .seconds(60), "about one period/capacity: \(wait)")
        #expect(try await counters.take("other", capacity: 10, period: .seconds(600)) == nil, "buckets are separate")
        // A fast one (a token every 100 ms) refills.
        for _ in 0..<2 { #expect(try await counters.take("fast", capacity: 2, period: .milliseconds(200)) == nil) }
        #expect(try await counters.take("fast", capacity: 2, period: .milliseconds(200)) != nil)
        try await Task.sleep(for: .milliseconds(250))
        #expect(try await counters.take("fast", capacity: 2, period: .milliseconds(200)) == nil)
    }

    static func attemptsAtomic(_ bus: any MessageBus) async throws {
        let counters = try #require(bus as? any ExpiringCounters)
        // A first wait longer than any stall of a loaded machine: no wait ends during the burst.
        let limits = attemptLimits(firstWait: .seconds(60))
        let outcomes = try await concurrentAttempts([counters], 40, limits: limits)
        #expect(outcomes.filter { $0 == .admitted(waitStarted: [false, false]) }.count == 5)
        #expect(outcomes.filter { $0 == .admitted(waitStarted: [true, false]) }.count == 1)
        #expect(outcomes.filter { if case .refused(let wait) = $0 { wait > .seconds(30) } else { false } }.count == 34)
        // Refused attempts counted nothing: the address saw 6.
        #expect(try await counters.increment("address", window: .seconds(600)) == 7)
        try await counters.decrement("address")
        try await counters.decrement("address")
        #expect(try await counters.increment("address", window: .seconds(600)) == 6)
        // A decrement never creates a counter.
        try await counters.decrement("never")
        #expect(try await counters.increment("never", window: .seconds(600)) == 1)
        // After a short wait the next attempt passes and starts one twice as long.
        let short = attemptLimits(firstWait: .milliseconds(300))
        for _ in 0..<6 { _ = try await counters.attempt(short.map { var limit = $0; limit.key = "s." + limit.key; return limit }) }
        try await Task.sleep(for: .milliseconds(400))
        let shortLimits = short.map { var limit = $0; limit.key = "s." + limit.key; return limit }
        #expect(try await counters.attempt(shortLimits) == .admitted(waitStarted: [true, false]))
        let wait = try #require(try await counters.remaining("s.name:wait"))
        #expect(wait > .milliseconds(300) && wait <= .milliseconds(600))
    }
}

/// Lets a task group child advance an iterator owned by the test.
final class IteratorBox: @unchecked Sendable {
    var iterator: AsyncStream<BusEvent>.Iterator
    init(_ iterator: AsyncStream<BusEvent>.Iterator) { self.iterator = iterator }
    func next() async -> BusEvent? { await iterator.next() }
}

@Suite("Bus conformance on LocalBus")
struct LocalBusConformanceTests {
    @Test(arguments: BusConformance.names)
    func conformance(_ name: String) async throws {
        try await BusConformance.cases[name]!(LocalBus())
    }
}

@Suite("Bus conformance on RedisBus", .enabled(if: TestServers.redisEnabled, TestServers.redisSkipReason))
struct RedisBusConformanceTests {
    @Test(arguments: BusConformance.names)
    func conformance(_ name: String) async throws {
        let bus = RedisBus(settings: try TestServers.redisSettings(suite: "bus"), logger: TestServers.quietLogger)
        let runner = Task { try await bus.run() }
        defer { runner.cancel() }
        try await bus.preflight()
        try await BusConformance.cases[name]!(bus)
    }

    @Test("two replicas share attempt limits and buckets: of 20 concurrent attempts through each, the free ones and one more pass; of 15 takes through each, the bucket's 12")
    func attemptsAcrossReplicas() async throws {
        let settings = try TestServers.redisSettings(suite: "attempts")
        let replicas = [RedisBus(settings: settings, logger: TestServers.quietLogger), RedisBus(settings: settings, logger: TestServers.quietLogger)]
        let runners = replicas.map { replica in Task { try await replica.run() } }
        defer { for runner in runners { runner.cancel() } }
        for replica in replicas { try await replica.preflight() }
        let outcomes = try await BusConformance.concurrentAttempts(replicas, 20, limits: BusConformance.attemptLimits(firstWait: .seconds(60)))
        #expect(outcomes.filter { if case .admitted = $0 { true } else { false } }.count == 6)
        #expect(outcomes.filter { if case .refused = $0 { true } else { false } }.count == 34)
        #expect(try await BusConformance.concurrentTakes(replicas, 15, key: "bucket", capacity: 12, period: .seconds(600)) == 12)
    }
}
