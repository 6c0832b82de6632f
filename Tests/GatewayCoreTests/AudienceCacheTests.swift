import CircleBus
import CircleEvents
import CircleServerTestSupport
import CircleTestSupport
import GatewayCore
import Synchronization
import Testing

/// The typing relay's audiences: kept until the bus announces a change that touches them.
@Suite("Typing audiences")
struct AudienceCacheTests {
    /// Loads that count themselves.
    final class Loads: Sendable {
        let count = Mutex(0)
        let during = Mutex<(@Sendable () async -> Void)?>(nil)

        func load(_ members: [String: Set<String>]) -> @Sendable (String) async throws -> Audience {
            { id in
                self.count.withLock { $0 += 1 }
                if let during = self.during.withLock({ hook in defer { hook = nil }; return hook }) { await during() }
                return Audience(members: members[id] ?? [], typingOff: [])
            }
        }
    }

    @Test("an announced change drops the audiences it touches at once and no other; a load that overlapped a change is used, not kept")
    func announced() async throws {
        let bus = LocalBus()
        let cache = AudienceCache(bus: bus, logger: TestServers.quietLogger)
        let running = Task { try await cache.run() }
        defer { running.cancel() }
        let deadline = ContinuousClock.now + .seconds(10)
        while !cache.subscribed, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        #expect(cache.subscribed)

        let members: [String: Set<String>] = ["c1": ["ana", "ben"], "c2": ["cyd", "dan"], "c3": ["eve"]]
        let loads = Loads()
        let load = loads.load(members)
        func read(_ ids: String...) async throws { for id in ids { _ = try await cache.audience(of: id, load: load) } }
        @Sendable func announce(_ changes: AudienceChange...) async throws {
            try await bus.publish(AudienceChange.encode(changes), to: AudienceChange.channel)
        }

        try await read("c1", "c2", "c1", "c2")
        try await Task.sleep(for: .milliseconds(1100))
        try await read("c1", "c2")
        #expect(loads.count.withLock { $0 } == 2, "each audience is read once while nothing changes")

        try await announce(.member("ana"))
        try await read("c1", "c2")
        #expect(loads.count.withLock { $0 } == 3, "a member's change drops only the audiences they are in")

        try await announce(.conversation("c2"), .member("nobody"))
        try await read("c1", "c2")
        #expect(loads.count.withLock { $0 } == 4, "a conversation's change drops its audience")

        // A change lands while c3 is being read: what was read is used once, then read again.
        loads.during.withLock { $0 = { try? await announce(.conversation("c3")) } }
        let first = try await cache.audience(of: "c3", load: load)
        #expect(first.members == ["eve"])
        try await read("c3", "c3")
        #expect(loads.count.withLock { $0 } == 6)

        cache.forgetAll()
        try await read("c1", "c2", "c3")
        #expect(loads.count.withLock { $0 } == 9, "a gap drops everything")
    }

    @Test("what is read before the announcements are heard lapses after a second")
    func unsubscribed() async throws {
        let cache = AudienceCache(bus: LocalBus(), logger: TestServers.quietLogger)
        let loads = Loads()
        let load = loads.load(["c1": ["ana", "ben"]])
        for _ in 0..<2 { _ = try await cache.audience(of: "c1", load: load) }
        #expect(loads.count.withLock { $0 } == 1)
        try await Task.sleep(for: .milliseconds(1100))
        _ = try await cache.audience(of: "c1", load: load)
        #expect(loads.count.withLock { $0 } == 2, "a change meanwhile would not have been heard")
    }

    @Test("announcements read back as written; lines that are not changes are skipped")
    func encoding() {
        let changes: [AudienceChange] = [.conversation("abc-_1"), .member("0f6c2a"), .conversation("x")]
        #expect(AudienceChange.decode(AudienceChange.encode(changes)) == changes)
        #expect(AudienceChange.decode(.init(string: "c\nz 1\nm \nm u1\n")) == [.member("u1")])
    }
}
