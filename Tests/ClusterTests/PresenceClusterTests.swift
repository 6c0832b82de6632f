import CircleBus
import CircleConfig
import CircleCore
import CircleStore
import CircleServerTestSupport
import CircleTestSupport
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Presence with real processes: two gateways and two presence replicas on PostgreSQL and
/// Redis. A member's sockets on both gateways keep them online until both close; a gateway
/// killed without a word takes its members offline once its lease lapses; a presence replica
/// that dies holding reports loses none (another claims them).
@Suite("Presence across processes", .enabled(if: TestServers.bothEnabled, TestServers.bothSkipReason))
struct PresenceClusterTests {
    func start(_ executable: String, _ env: [String: String]) async throws -> (ChildProcess, APIClient) {
        let port = try FreePort.find()
        let process = try ChildProcess(executable, ["--http-port", String(port)], environment: env)
        try await HTTPProbe.waitFor("http://127.0.0.1:\(port)/readyz", while: { process.isRunning })
        return (process, APIClient(baseURL: "http://127.0.0.1:\(port)"))
    }

    /// Ben's state as Ana's presence query sees it, once it is `state` (nil if it never was within `within`).
    func waitFor(_ state: String, of userId: String, asSeenBy token: String, on api: APIClient, within: Duration) async throws -> Duration? {
        let start = ContinuousClock.now
        while ContinuousClock.now - start < within {
            let reply = try await api.call("GET", "/api/v1/presence?users=\(userId)", token: token)
            if (TestJSON.value(reply.body, path: ["presence"]) as? [[String: Any]])?.first?["state"] as? String == state { return ContinuousClock.now - start }
            try await Task.sleep(for: .milliseconds(200))
        }
        return nil
    }

    @Test("two gateways and two presence replicas: online until every socket closes, offline within the lease of a killed gateway, no report lost with a replica")
    func presenceAcrossProcesses() async throws {
        let postgres = try await TestServers.freshPostgresDatabase(suite: "presence")
        var env = try scaledEnvironment(postgres, suite: "presence")
        env["AUTH_REGISTRATION"] = "open"
        env["PRESENCE_LEASE"] = "6s"
        #expect(try await ChildProcess("circle", ["migrate"], environment: env).waitForExit() == 0)
        let (gatewayA, a) = try await start("circle-gateway", env)
        let (gatewayB, b) = try await start("circle-gateway", env)
        let (messaging, m) = try await start("circle-messaging", env)
        let (presence1, p1) = try await start("circle-presence", env)
        let (presence2, p2) = try await start("circle-presence", env)
        var processes = [gatewayA, gatewayB, messaging, presence1, presence2]
        defer { for process in processes { process.signal(SIGKILL) } }

        let anaAccount = TestAccount(username: "ana"), benAccount = TestAccount(username: "ben")
        let ana = Member(account: anaAccount, token: try await a.register(anaAccount, invite: nil))
        let ben = Member(account: benAccount, token: try await a.register(benAccount, invite: nil))
        _ = try await ana.create(with: [ben], on: m)
        let (watcher, _) = try await TestSocket.authenticated(a.socketURL, token: ana.token)

        // Ben on both gateways: online until both sockets close.
        let (onA, _) = try await TestSocket.authenticated(a.socketURL, token: ben.token)
        let (onB, _) = try await TestSocket.authenticated(b.socketURL, token: ben.token)
        #expect(try await waitFor("online", of: ben.id, asSeenBy: ana.token, on: p1, within: .seconds(30)) != nil)
        onA.close()
        try await Task.sleep(for: .seconds(3))
        #expect(try await waitFor("online", of: ben.id, asSeenBy: ana.token, on: p2, within: .seconds(1)) != nil, "still on B")
        onB.close()
        #expect(try await waitFor("offline", of: ben.id, asSeenBy: ana.token, on: p1, within: .seconds(30)) != nil)

        // Gateway B dies without a word: Ben, connected only there, goes offline once its lease
        // (6 s here) lapses and a presence sweep (every 5 s) notices.
        let (again, _) = try await TestSocket.authenticated(b.socketURL, token: ben.token)
        #expect(try await waitFor("online", of: ben.id, asSeenBy: ana.token, on: p1, within: .seconds(30)) != nil)
        gatewayB.signal(SIGKILL)
        await gatewayB.waitForExit()
        again.close()
        let lapse = try await waitFor("offline", of: ben.id, asSeenBy: ana.token, on: p2, within: .seconds(60))
        #expect(lapse != nil && lapse! < .seconds(30), "offline after \(String(describing: lapse))")

        // A presence replica holding reports it never acknowledged dies: another claims them.
        // The dying replica is this test, reading the next report as a member of the group and
        // never acknowledging it, while no real replica runs (a replica blocked in a read would
        // take the report first); then a fresh replica starts and must claim it.
        let redis = try RedisSettings.parse(env["REDIS_URL"]!, prefix: env["REDIS_PREFIX"]!)
        let bus = RedisBus(settings: redis, logger: TestServers.quietLogger)
        try await bus.preflight()
        for replica in [presence1, presence2] {
            replica.signal(SIGKILL)
            await replica.waitForExit()
        }
        let (late, _) = try await TestSocket.authenticated(a.socketURL, token: ben.token)
        var taken: [StreamEntry] = []
        let deadline = ContinuousClock.now + .seconds(30)
        while !taken.contains(where: { $0.fields["op"] == "open" && $0.fields["user"] == ben.id }), ContinuousClock.now < deadline {
            taken += try await bus.readGroup(stream: "presence.connections", group: "presence", consumer: "dies", count: 50, block: .seconds(1))
        }
        #expect(taken.contains { $0.fields["op"] == "open" && $0.fields["user"] == ben.id }, "the open was read by the consumer that dies")
        let (presence3, p3) = try await start("circle-presence", env)
        processes.append(presence3)
        let claimed = try await waitFor("online", of: ben.id, asSeenBy: ana.token, on: p3, within: .seconds(90))
        #expect(claimed != nil, "the surviving replica claimed the report")
        late.close()
        #expect(try await waitFor("offline", of: ben.id, asSeenBy: ana.token, on: p3, within: .seconds(60)) != nil)
        watcher.close()
        for process in processes where process.isRunning { process.signal(SIGTERM) }
        for process in processes { _ = await process.waitForExit(timeout: .seconds(30)) }
        processes = []
    }

    /// The next frame `matches` accepts (nil if none within 30 s).
    static func next(_ socket: TestSocket, where matches: (String) -> Bool) async throws -> String? {
        let deadline = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < deadline {
            guard let frame = try? await socket.nextFrame(timeout: deadline - ContinuousClock.now) else { return nil }
            if matches(frame) { return frame }
        }
        return nil
    }

    /// Every frame that arrives until the socket has been quiet for 1.5 s.
    static func rest(_ socket: TestSocket) async -> [String] {
        var frames: [String] = []
        while let frame = try? await socket.nextFrame(timeout: .milliseconds(1500)) { frames.append(frame) }
        return frames
    }

    @Test("frames for several members (published once on the fan-out channel) reach each member's sockets on both gateways exactly once, and nobody else's")
    func fanOutAcrossGateways() async throws {
        let postgres = try await TestServers.freshPostgresDatabase(suite: "fanout")
        var env = try scaledEnvironment(postgres, suite: "fanout")
        env["AUTH_REGISTRATION"] = "open"
        #expect(try await ChildProcess("circle", ["migrate"], environment: env).waitForExit() == 0)
        let (gatewayA, a) = try await start("circle-gateway", env)
        let (gatewayB, b) = try await start("circle-gateway", env)
        let (messaging, m) = try await start("circle-messaging", env)
        let (presence, p) = try await start("circle-presence", env)
        let processes = [gatewayA, gatewayB, messaging, presence]
        defer { for process in processes { process.signal(SIGKILL) } }

        var members: [Member] = []
        for name in ["ana", "ben", "cyd", "dan"] {
            let account = TestAccount(username: name)
            members.append(Member(account: account, token: try await a.register(account, invite: nil)))
        }
        let (ana, ben, cyd, dan) = (members[0], members[1], members[2], members[3])
        let (conv, _) = try await ana.create(with: [ben, cyd], on: m)
        // Ana on A, Ben on B, Cyd on both, Dan (no member) on both.
        let (anaA, _) = try await TestSocket.authenticated(a.socketURL, token: ana.token)
        let (benB, _) = try await TestSocket.authenticated(b.socketURL, token: ben.token)
        let (cydA, _) = try await TestSocket.authenticated(a.socketURL, token: cyd.token)
        let (cydB, _) = try await TestSocket.authenticated(b.socketURL, token: cyd.token)
        let (danA, _) = try await TestSocket.authenticated(a.socketURL, token: dan.token)
        let (danB, _) = try await TestSocket.authenticated(b.socketURL, token: dan.token)
        let sockets = [anaA, benB, cydA, cydB, danA, danB]
        defer { for socket in sockets { socket.close() } }

        // A typing frame from Ana (on A) and a presence change of hers: Ben's and both of Cyd's
        // sockets get each once; Ana's own socket gets her presence only (her own view); Dan's
        // sockets hear nothing of her.
        anaA.send("{\"type\":\"typing\",\"data\":{\"conversationId\":\"\(conv)\",\"state\":\"start\"}}")
        for (socket, label) in [(benB, "Ben on B"), (cydA, "Cyd on A"), (cydB, "Cyd on B")] {
            let frame = try #require(try await socket.next(ofType: "typing", timeout: .seconds(30)), "\(label)")
            #expect(TestJSON.string(frame, path: ["data", "userId"]) == ana.id, "\(label)")
        }
        #expect(try await p.call("PUT", "/api/v1/presence", json: "{\"state\":\"busy\"}", token: ana.token).status == 200)
        for (socket, label) in [(benB, "Ben on B"), (cydA, "Cyd on A"), (cydB, "Cyd on B")] {
            let busy = try await Self.next(socket, where: { TestJSON.string($0, path: ["type"]) == "presence" && TestJSON.string($0, path: ["data", "state"]) == "busy" })
            #expect(busy.map { TestJSON.string($0, path: ["data", "userId"]) } == ana.id, "\(label)")
            // Exactly once: no second copy of either.
            let rest = await Self.rest(socket)
            #expect(!rest.contains { TestJSON.string($0, path: ["type"]) == "typing" || TestJSON.string($0, path: ["data", "state"]) == "busy" }, "\(label): \(rest)")
        }
        for socket in [danA, danB] {
            let heard = await Self.rest(socket)
            #expect(!heard.contains { TestJSON.string($0, path: ["data", "userId"]) == ana.id }, "Dan heard of Ana: \(heard)")
        }
        let own = try await Self.next(anaA, where: { TestJSON.string($0, path: ["type"]) == "presence" && TestJSON.string($0, path: ["data", "chosen"]) == "busy" })
        #expect(own.map { TestJSON.string($0, path: ["data", "userId"]) } == ana.id)
        #expect(!(await Self.rest(anaA)).contains { TestJSON.string($0, path: ["type"]) == "typing" }, "her own typing is not sent back")
        for process in processes { process.signal(SIGTERM) }
        for process in processes { _ = await process.waitForExit(timeout: .seconds(30)) }
    }
}
