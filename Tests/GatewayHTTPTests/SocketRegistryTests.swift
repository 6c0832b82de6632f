import CircleBus
import CircleCore
import CircleHTTP
import CircleStore
import CircleTestSupport
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOWebSocket
import SQLKit
import Testing
@testable import GatewayHTTP

/// The registry's once-a-second session check, with a database slow enough to expose races.
@Suite("Socket registry")
struct SocketRegistryTests {
    /// A real SQLite store whose reads take a while.
    struct SlowStore: DatabaseStore {
        let inner: any DatabaseStore
        var delay: Duration = .milliseconds(300)
        var engine: DatabaseEngine { inner.engine }
        func read<R: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> R) async throws -> R {
            try await Task.sleep(for: delay)
            return try await inner.read(body)
        }
        func write<R: Sendable>(_ body: @Sendable (any SQLDatabase) async throws -> R) async throws -> R { try await inner.write(body) }
    }

    @Test("a socket registered while the check runs is not taken for revoked; a revoked session's socket is closed")
    func registerDuringCheck() async throws {
        try await withSQLiteStore { store in
            try await Self.insertSessions(live: ["old", "new"], revoked: ["gone"], into: store)
            let registry = SocketRegistry(store: SlowStore(inner: store), logger: TestServers.quietLogger)
            let signals = NIOLockedValueBox<[String: SocketSignal]>([:])
            func register(_ session: String) async {
                _ = await registry.register(Identity(userId: "u", sessionId: session)) { signal in signals.withLockedValue { $0[session] = signal } }
            }
            await register("old")
            await register("gone")
            async let check: Void = registry.closeRevoked()
            try await Task.sleep(for: .milliseconds(100))
            await register("new")
            await check
            let seen = signals.withLockedValue { $0 }
            #expect(seen["gone"] == .revoked)
            #expect(seen["old"] == nil)
            #expect(seen["new"] == nil, "a socket registered during the check must not be closed as revoked")
        }
    }

    @Test("a session check stuck on a slow database holds up neither pings nor the silence check")
    func keepaliveDuringSlowCheck() async throws {
        try await withSQLiteStore { store in
            // Every session check takes a minute: before the keepalive had its own timer, the
            // first tick's check held the pings back for that long.
            let registry = SocketRegistry(
                store: SlowStore(inner: store, delay: .seconds(60)), logger: TestServers.quietLogger,
                keepalive: .init(pingInterval: .seconds(1), silenceLimit: .seconds(600)))
            let channel = NIOAsyncTestingChannel()
            try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).get()
            let keepalive = SocketKeepalive(channel: channel)
            let id = try #require(await registry.register(Identity(userId: "u", sessionId: "old"), keepalive: keepalive) { _ in })
            let running = Task { try await registry.run() }
            // Three pings, a second apart, while the first check is still waiting; the bound
            // only stops a broken registry from hanging the test.
            let start = ContinuousClock.now
            var pings = 0
            while pings < 3, ContinuousClock.now - start < .seconds(30) {
                if let frame = try await channel.readOutbound(as: WebSocketFrame.self) {
                    #expect(frame.opcode == .ping)
                    pings += 1
                } else {
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            #expect(pings == 3, "pinged \(pings) times in \(ContinuousClock.now - start) while the session check was stuck")
            await registry.unregister(id)
            running.cancel()
            _ = await running.result
        }
    }

    @Test("a revocation announced on the bus closes that session's sockets at once; the backstop check covers every session once per pass, a slice at a time")
    func announcedAndSliced() async throws {
        try await withSQLiteStore { store in
            let revoked = (0..<12).map { "r\($0)" }
            let live = (0..<12).map { "l\($0)" } + ["announced"]
            try await Self.insertSessions(live: live, revoked: revoked, into: store)
            let bus = LocalBus()
            let registry = SocketRegistry(store: store, logger: TestServers.quietLogger, bus: bus, caps: .init(perSession: 8, perUser: 100))
            let closed = NIOLockedValueBox<[String]>([])
            for session in live + revoked {
                _ = await registry.register(Identity(userId: "u", sessionId: session)) { signal in
                    if case .revoked = signal { closed.withLockedValue { $0.append(session) } }
                }
            }

            // Three slices make a pass: each closes only its own revoked sessions, all of them
            // together close every one, once, and no live session is touched.
            var perSlice: [Int] = []
            for slice in 0..<3 {
                let before = closed.withLockedValue { $0.count }
                await registry.closeRevoked(slice: slice, of: 3)
                perSlice.append(closed.withLockedValue { $0.count } - before)
            }
            #expect(perSlice.allSatisfy { $0 < revoked.count }, "a slice is not the whole: \(perSlice)")
            #expect(closed.withLockedValue { $0 }.count == revoked.count && Set(closed.withLockedValue { $0 }) == Set(revoked))

            // The database still says "announced" is live: only the announcement can close it.
            let running = Task { try await registry.run() }
            let start = ContinuousClock.now
            while !closed.withLockedValue({ $0.contains("announced") }), ContinuousClock.now - start < .seconds(10) {
                await bus.publish(ByteBuffer(string: "announced,unknown"), to: SessionValidator.revocationChannel)
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(closed.withLockedValue { $0.contains("announced") }, "closed by the announcement")
            #expect(Set(closed.withLockedValue { $0 }) == Set(revoked + ["announced"]), "nobody else")
            running.cancel()
            _ = await running.result
        }
    }

    /// Member `u` with these sessions, the revoked ones revoked.
    private static func insertSessions(live: [String], revoked: [String], into store: any DatabaseStore) async throws {
        try await store.write { db in
            try await db.raw("""
                INSERT INTO users (id, username, display_name, auth_verifier, salt, identity_key, x25519_key, kx_cert, is_admin, created_at, updated_at)
                VALUES ('u', 'user', 'User', x'00', x'00', x'00', x'00', x'00', 0, 0, 0)
                """).run()
            for session in live + revoked {
                let revokedAt: Int64? = revoked.contains(session) ? 1 : nil
                try await db.raw("""
                    INSERT INTO sessions (id, token_hash, user_id, device_label, ip, created_at, last_seen_at, revoked_at)
                    VALUES (\(bind: session), \(bind: session), 'u', 'd', 'ip', 0, 0, \(bind: revokedAt))
                    """).run()
            }
        }
    }

    private func withSQLiteStore(_ body: @Sendable (any DatabaseStore) async throws -> Void) async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("circle-registry-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try await StoreFactory.withMigratedStore(.sqlite(path: folder.appendingPathComponent("db.sqlite").path), logger: TestServers.quietLogger) { store in
            try await body(store)
        }
    }

    @Test("a socket past a session's or a member's cap closes the oldest of them (4009), never the new one; sockets told to close no longer count")
    func caps() async throws {
        try await withSQLiteStore { store in
            let registry = SocketRegistry(store: store, logger: TestServers.quietLogger, caps: .init(perSession: 2, perUser: 3))
            let replaced = NIOLockedValueBox<[String]>([])
            func open(_ name: String, session: String, user: String = "u") async -> UInt64? {
                await registry.register(Identity(userId: user, sessionId: session)) { signal in
                    if case .replaced = signal { replaced.withLockedValue { $0.append(name) } }
                }
            }
            _ = await open("a1", session: "a")
            _ = await open("a2", session: "a")
            #expect(replaced.withLockedValue { $0 }.isEmpty)
            _ = await open("a3", session: "a")
            #expect(replaced.withLockedValue { $0 } == ["a1"], "the session's oldest")
            let b1 = await open("b1", session: "b")
            #expect(replaced.withLockedValue { $0 } == ["a1"], "three open: the member's cap")
            _ = await open("b2", session: "b")
            #expect(replaced.withLockedValue { $0 } == ["a1", "a2"], "the member's oldest still open")
            _ = await open("c1", session: "c", user: "other")
            #expect(replaced.withLockedValue { $0 } == ["a1", "a2"], "another member's sockets are their own")
            #expect(await registry.count == 6, "replaced sockets stay listed until they have closed")
            // A socket that closed frees its place under both caps.
            await registry.unregister(try #require(b1))
            _ = await open("b3", session: "b")
            #expect(replaced.withLockedValue { $0 } == ["a1", "a2"], "a3, b2 and b3 open: within both caps")
            _ = await open("b4", session: "b")
            #expect(replaced.withLockedValue { $0 } == ["a1", "a2", "b2"], "the session's oldest open one")
        }
    }
}
