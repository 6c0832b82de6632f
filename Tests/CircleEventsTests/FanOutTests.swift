import CircleBus
import CircleConfig
import CircleCore
import CircleEvents
import CircleStore
import CircleTestSupport
import Foundation
import NIOCore
import Synchronization
import Testing

/// Live frames for several members go out once, with their list of members, on the channel
/// every gateway reads; frames for one member or one device keep the member's own channel.
@Suite("Fan-out of live frames")
struct FanOutTests {
    /// What one channel carried.
    final class Heard: Sendable {
        let payloads = Mutex<[ByteBuffer]>([])

        func wait(for count: Int) async -> [ByteBuffer] {
            let deadline = ContinuousClock.now + .seconds(30)
            while payloads.withLock({ $0.count }) < count, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(10)) }
            return payloads.withLock { $0 }
        }
    }

    static func listen(_ channel: String, on bus: any MessageBus) async throws -> (Heard, BusSubscription) {
        let heard = Heard()
        let subscription = try await bus.subscribe(to: channel) { event in
            if case .message(let payload) = event { heard.payloads.withLock { $0.append(payload) } }
        }
        return (heard, subscription)
    }

    @Test("the encoding lists every member in order and carries the frame unchanged")
    func encoding() throws {
        let frame = try EventFrame(type: .presence, data: ["userId": "ana", "state": "online"])
        let members = (0..<936).map { _ in UUID().uuidString.lowercased() }
        let decoded = try FanOutFrame(decoding: FanOutFrame.encode(frame, to: members))
        var listed: [String] = []
        decoded.forEachRecipient { listed.append($0) }
        #expect(listed == members)
        #expect(decoded.frame == frame)
        #expect(decoded.lists(members[500]) && !decoded.lists("someone-else"))
        #expect(throws: EventFrameError.malformed) { try FanOutFrame(decoding: ByteBuffer(string: "ana,ben")) }
        #expect(throws: EventFrameError.malformed) { try FanOutFrame(decoding: ByteBuffer(string: "ana,ben\nnot a frame")) }
        #expect(!FanOutFrame.listable("a,b") && !FanOutFrame.listable("a\nb") && !FanOutFrame.listable("") && FanOutFrame.listable(members[0]))
    }

    static var buses: [Bool] { TestServers.redisEnabled ? [false, true] : [false] }

    @Test("a frame for several members is one publish on the fan-out channel; one member's and one device's stay on the members' channels", arguments: buses)
    func routing(redis: Bool) async throws {
        let logger = TestServers.quietLogger
        let opened = try await TestDatabases.open(.sqlite, suite: "fanout")
        let redisBus: RedisBus? = redis ? RedisBus(settings: try TestServers.redisSettings(suite: "fanout"), logger: logger) : nil
        let bus: any MessageBus = redisBus ?? LocalBus()
        try await withThrowingTaskGroup(of: Void.self) { group in
            if let redisBus { group.addTask { try await redisBus.run() } }
            defer { group.cancelAll() }
            let publisher = EventPublisher(store: opened.store, bus: bus, logger: logger)
            let (fanOut, fanOutSubscription) = try await Self.listen(FanOutFrame.channel, on: bus)
            let (ana, anaSubscription) = try await Self.listen(EventPublisher.channel(forUser: "ana"), on: bus)
            let (ben, benSubscription) = try await Self.listen(EventPublisher.channel(forUser: "ben"), on: bus)

            let typing = try EventFrame(type: .typing, data: ["conversationId": "c", "userId": "cyd", "state": "start"])
            let signal = try EventFrame(type: .callSignal, data: ["callId": "k"], device: "d")
            let own = try EventFrame(type: .presence, data: ["userId": "ana", "state": "busy"])
            #expect(await publisher.publish(live: [(typing, ["ana", "ben"]), (signal, ["ana", "ben"]), (own, ["ana"])]))

            let once = await fanOut.wait(for: 1)
            #expect(once.count == 1)
            let decoded = try FanOutFrame(decoding: try #require(once.first))
            var listed: [String] = []
            decoded.forEachRecipient { listed.append($0) }
            #expect(listed == ["ana", "ben"] && decoded.frame == typing)
            // Per member: the device's signal, and for ana her own presence; in publish order.
            #expect(try await ana.wait(for: 2).map { try EventFrame(decoding: $0) } == [signal, own])
            #expect(try await ben.wait(for: 1).map { try EventFrame(decoding: $0) } == [signal])
            try await Task.sleep(for: .milliseconds(200))
            #expect(fanOut.payloads.withLock { $0.count } == 1 && ana.payloads.withLock { $0.count } == 2, "nothing else was published")
            for subscription in [fanOutSubscription, anaSubscription, benSubscription] { await subscription.cancel() }
        }
        await opened.close()
    }
}
