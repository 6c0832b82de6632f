import CircleBus
import CircleConfig
import CircleCore
import CircleEvents
import CircleStore
import CircleTestSupport
import Foundation
import NIOCore
import Testing

/// The outbox behind live delivery: the publisher removes an append's entry once all of its
/// events went out; when the bus is down the entry stays and the relay sends the events later.
@Suite("Event outbox: publisher and relay")
struct EventOutboxTests {
    static var engines: [DatabaseEngine] { TestServers.postgresEnabled ? [.sqlite, .postgres] : [.sqlite] }

    /// The frames a subscription yields, as (seq, type), until `count` arrived (or 30 s passed: a bound for a broken test, not a measure).
    static func frames(_ subscription: BusSubscription, count: Int) async -> [String] {
        await withTaskGroup(of: [String].self) { group in
            group.addTask {
                var seen: [String] = []
                for await event in subscription.events {
                    guard case .message(let buffer) = event, let frame = try? EventFrame(decoding: buffer) else { continue }
                    let object = try? JSONSerialization.jsonObject(with: Data(frame.text.utf8)) as? [String: Any]
                    seen.append("\(object?["seq"] as? Int ?? -1)\(object?["type"] as? String ?? "?")")
                    if seen.count == count { break }
                }
                return seen
            }
            group.addTask {
                try? await Task.sleep(for: .seconds(30))
                await subscription.cancel()
                return []
            }
            let first = await group.next() ?? []
            group.cancelAll()
            await subscription.cancel()
            return first
        }
    }

    static func pending(_ store: any DatabaseStore) async throws -> [OutboxEntry] {
        try await store.read { db in try await UserEventLog.outbox(before: Timestamp.now().adding(seconds: 60), limit: 100, in: db) }
    }

    @Test("a bus that is down leaves the entry; the relay sends each user's events in order and removes it; a live publish removes its own", arguments: engines)
    func publishThenRelay(_ engine: DatabaseEngine) async throws {
        let opened = try await TestDatabases.open(engine, suite: "outbox")
        let logger = TestServers.quietLogger
        do {
            let store = opened.store
            try await Migrator(logger: logger).migrate(store)
            let clock = SystemWallClock()
            // Committed five seconds ago, then published while the bus is down (nothing listens there).
            let stranded = try await store.write { db in
                try await UserEventLog.append([
                    NewUserEvent(userId: "kim", type: .sessionCreated, data: "{}"),
                    NewUserEvent(userId: "lee", type: .sessionRevoked, data: "{}"),
                    NewUserEvent(userId: "kim", type: .conversationRead, data: "{}"),
                    NewUserEvent(userId: "kim", type: .conversationOp, data: "{}"),
                ], at: Timestamp.now().adding(seconds: -5), in: db)
            }
            let down = RedisBus(settings: RedisSettings(host: "127.0.0.1", port: try FreePort.find()), logger: logger)
            let failing = EventPublisher(store: store, bus: down, logger: logger)
            await failing.publish(stranded)
            await failing.flushOutbox()
            #expect(try await Self.pending(store).map(\.id) == [stranded[0].outbox!], "the entry stays when the bus refused")

            let bus = LocalBus()
            let relay = EventRelay(store: store, bus: bus, clock: clock, logger: logger)
            let kim = try await bus.subscribe(to: EventPublisher.channel(forUser: "kim"))
            let lee = try await bus.subscribe(to: EventPublisher.channel(forUser: "lee"))
            async let kimFrames = Self.frames(kim, count: 3)
            async let leeFrames = Self.frames(lee, count: 1)
            #expect(try await relay.relayBatch() == 1)
            #expect(await kimFrames == ["1session.created", "2conversation.read", "3conversation.op"])
            #expect(await leeFrames == ["1session.revoked"])
            #expect(try await Self.pending(store).isEmpty)
            #expect(try await relay.relayBatch() == 0, "nothing is sent twice")

            // A live append published at once: its entry goes with the next removal (within 200 ms).
            let live = try await store.write { db in
                try await UserEventLog.append([NewUserEvent(userId: "kim", type: .conversationCreated, data: "{}")], at: .now(), in: db)
            }
            let publisher = EventPublisher(store: store, bus: bus, logger: logger)
            let kimAgain = try await bus.subscribe(to: EventPublisher.channel(forUser: "kim"))
            async let again = Self.frames(kimAgain, count: 1)
            await publisher.publish(live)
            #expect(await again == ["4conversation.created"])
            await publisher.flushOutbox()
            #expect(try await Self.pending(store).isEmpty)
            // A relay leaves entries younger than its grace alone (the publisher may still be on its way).
            _ = try await store.write { db in
                try await UserEventLog.append([NewUserEvent(userId: "kim", type: .passwordChanged, data: "{}")], at: .now(), in: db)
            }
            let patient = EventRelay(store: store, bus: bus, clock: clock, logger: logger, grace: .seconds(600))
            #expect(try await patient.relayBatch() == 0)
            #expect(try await Self.pending(store).count == 1)
        } catch {
            await opened.close()
            throw error
        }
        await opened.close()
    }
}
