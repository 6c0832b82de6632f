import CircleBus
import CircleConfig
import CircleTestSupport
import Foundation
import NIOCore
import Testing

/// RedisBus against a private redis-server that the test kills and starts again.
@Suite(
    "RedisBus with a private Redis that restarts",
    .serialized,
    .enabled(if: TestServers.redisEnabled, TestServers.redisSkipReason)
)
struct RedisRestartTests {
    @Test("subscriptions work again after Redis restarts, with a gap reported to catch up")
    func subscriptionsSurviveRestart() async throws {
        let server = try await RedisServerProcess.start()
        let bus = RedisBus(settings: server.settings(prefix: "restart:"), logger: TestServers.quietLogger)
        let runner = Task { try await bus.run() }
        defer { runner.cancel() }
        try await bus.preflight()

        let early = try await bus.subscribe(to: "user.1")
        var earlyEvents = early.events.makeAsyncIterator()
        try await bus.publish(ByteBuffer(string: "before"), to: "user.1")
        #expect(BusConformance.text(try await BusConformance.next(&earlyEvents)) == "before")

        await server.kill()
        await #expect(throws: (any Error).self) { try await bus.publish(ByteBuffer(string: "lost"), to: "user.1") }
        // Subscribing while Redis is down returns at once; the reconnect subscribes it.
        let during = try await bus.subscribe(to: "user.2")
        var duringEvents = during.events.makeAsyncIterator()
        try await server.restart()

        #expect(try await BusConformance.next(&earlyEvents, within: .seconds(30)) == .gap)
        #expect(try await BusConformance.next(&duringEvents, within: .seconds(30)) == .gap)
        try await bus.publish(ByteBuffer(string: "after"), to: "user.1")
        try await bus.publish(ByteBuffer(string: "hello"), to: "user.2")
        #expect(BusConformance.text(try await BusConformance.next(&earlyEvents)) == "after")
        #expect(BusConformance.text(try await BusConformance.next(&duringEvents)) == "hello")

        // Streams work again too.
        try await bus.createGroup(stream: "s", group: "g")
        try await bus.add(to: "s", fields: ["n": "1"])
        #expect(try await bus.readGroup(stream: "s", group: "g", consumer: "c", count: 1, block: .seconds(1)).count == 1)
        await early.cancel()
        await during.cancel()
        await server.stop()
    }

    @Test("blocked stream reads do not hold up publishing or pings")
    func blockedReadsDoNotBlock() async throws {
        let server = try await RedisServerProcess.start()
        let bus = RedisBus(settings: server.settings(prefix: "block:"), logger: TestServers.quietLogger)
        let runner = Task { try await bus.run() }
        defer { runner.cancel() }
        try await bus.createGroup(stream: "idle", group: "g")
        let readersDone = DoneFlag()
        let readers = Task {
            defer { Task { await readersDone.set() } }
            return try await withThrowingTaskGroup(of: Int.self) { group in
                for index in 0..<32 {
                    group.addTask {
                        try await bus.readGroup(stream: "idle", group: "g", consumer: "c\(index)", count: 1, block: .seconds(120)).count
                    }
                }
                return try await group.reduce(0, +)
            }
        }
        try await Task.sleep(for: .milliseconds(300))
        for index in 0..<200 { try await bus.publish(ByteBuffer(string: "\(index)"), to: "user.x") }
        try await bus.ping()
        // Had publishing waited behind a blocked read, it could not finish before the reads time
        // out (120 s; the reads are cancelled right after, so a passing run does not wait for
        // them): no tight wall-clock bound. With 30 s a fully loaded CI machine once took longer.
        #expect(await readersDone.isSet == false)
        // Cancelling the reads closes their connections.
        readers.cancel()
        _ = try? await readers.value
        try await bus.ping()
        await server.stop()
    }
}

actor DoneFlag {
    private(set) var isSet = false
    func set() { isSet = true }
}
