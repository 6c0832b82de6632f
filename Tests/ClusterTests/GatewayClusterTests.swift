import CircleBus
import CircleConfig
import CircleCore
import CircleEvents
import CircleStore
import CircleTestSupport
import Foundation
import NIOCore
import SQLKit
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Realtime delivery across real gateway processes sharing PostgreSQL and Redis.
@Suite("Gateways as processes", .enabled(if: TestServers.bothEnabled, TestServers.bothSkipReason))
struct GatewayClusterTests {
    func startGateway(_ env: [String: String]) async throws -> (ChildProcess, APIClient) {
        let port = try FreePort.find()
        let process = try ChildProcess("circle-gateway", ["--http-port", String(port)], environment: env)
        try await HTTPProbe.waitFor("http://127.0.0.1:\(port)/readyz", while: { process.isRunning })
        return (process, APIClient(baseURL: "http://127.0.0.1:\(port)"))
    }

    func expectSeqs(_ socket: TestSocket, _ seqs: [Int], types: [String], _ label: String) async throws {
        var got: [Int?] = []
        var gotTypes: [String?] = []
        for _ in seqs {
            let frame = try await socket.next()
            got.append(frame.flatMap { TestJSON.int($0, path: ["seq"]) })
            gotTypes.append(frame.flatMap { TestJSON.string($0, path: ["type"]) })
        }
        #expect(got == seqs.map { $0 }, "\(label)")
        #expect(gotTypes == types.map { $0 }, "\(label)")
    }

    @Test("events reach every socket exactly once and in order across two gateways; the relay recovers a lost publish; a client of a killed gateway resumes on the other")
    func twoGateways() async throws {
        let postgres = try await TestServers.freshPostgresDatabase(suite: "gateways")
        let env = try scaledEnvironment(postgres, suite: "gateways")
        #expect(try await ChildProcess("circle", ["migrate"], environment: env).waitForExit() == 0)
        let invite = try ChildProcess("circle", ["invite", "create", "--admin"], environment: env)
        #expect(await invite.waitForExit() == 0)
        let code = try #require(invite.output.split(separator: "/").last.map { $0.trimmingCharacters(in: .whitespacesAndNewlines) })

        let (gatewayA, a) = try await startGateway(env)
        let (gatewayB, b) = try await startGateway(env)
        let xia = TestAccount(username: "xia")
        let token = try await a.register(xia, invite: code)
        let (onA, headA) = try await TestSocket.authenticated(a.socketURL, token: token)
        let (onB, headB) = try await TestSocket.authenticated(b.socketURL, token: token)
        #expect(headA == 1 && headB == 1)

        // Caused on B: a new session, then its revocation. A has just validated (and cached)
        // the new token; after the revocation on B it must fail on A within one second.
        let extra = try await b.login(xia, device: "extra")
        #expect(try await a.call("GET", "/api/v1/account/me", token: extra.token).status == 200)
        #expect(try await b.call("DELETE", "/api/v1/account/sessions/\(extra.sessionId)", token: token).status == 204)
        // No request sent a second or more after the revocation may still be accepted (measured
        // by when each request was sent, so a slow answer on a loaded machine does not count).
        let revokedAt = ContinuousClock.now
        var lastAcceptedSent = revokedAt
        while true {
            let sent = ContinuousClock.now
            guard try await a.call("GET", "/api/v1/account/me", token: extra.token).status == 200 else { break }
            lastAcceptedSent = sent
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(lastAcceptedSent - revokedAt < .seconds(1))
        for (socket, label) in [(onA, "socket on A"), (onB, "socket on B")] {
            // A sign-in while another session is live alerts that session first.
            try await expectSeqs(socket, [2, 3, 4], types: ["security.alert", "session.created", "session.revoked"], label)
        }

        // A change committed but never published (as if its writer crashed right after commit).
        try await PostgresStore.withSingleConnection(postgres, logger: TestServers.quietLogger) { store in
            _ = try await store.write { db in
                try await UserEventLog.append([NewUserEvent(userId: xia.userId, type: .conversationRead, data: "{\"stranded\":true}")], at: Timestamp.now().adding(seconds: -5), in: db)
            }
        }
        for (socket, label) in [(onA, "socket on A"), (onB, "socket on B")] {
            try await expectSeqs(socket, [5], types: ["conversation.read"], label)
            // Exactly once: nothing more arrives.
            await #expect(throws: TestSupportError.self) { try await socket.next(timeout: .milliseconds(1500)) }
        }

        // Gateway A dies; its client comes back on B with the last seq it saw.
        gatewayA.signal(SIGKILL)
        await gatewayA.waitForExit()
        _ = try? await onA.closeCode(timeout: .seconds(5))
        _ = try await b.login(xia, device: "while A was down")
        try await expectSeqs(onB, [6, 7], types: ["security.alert", "session.created"], "socket on B")
        let back = try await TestSocket.connect(b.socketURL)
        back.send(TestSocket.authFrame(token: token, since: 5))
        try await expectSeqs(back, [6, 7], types: ["security.alert", "session.created"], "resumed socket")
        #expect(TestJSON.string(try await back.next() ?? "", path: ["type"]) == "ready")

        // B stops: its sockets are told to reconnect elsewhere (1012).
        gatewayB.signal(SIGTERM)
        #expect(try await onB.closeCode() == 1012)
        #expect(try await back.closeCode() == 1012)
        #expect(await gatewayB.waitForExit(timeout: .seconds(60)) == 0)
    }

    @Test("limits hold across two gateway replicas: of 40 concurrent wrong sign-ins spread over both, exactly 6 are checked; a member's directory-name bucket is one for both")
    func limitsAcrossReplicas() async throws {
        let postgres = try await TestServers.freshPostgresDatabase(suite: "limits")
        var env = try scaledEnvironment(postgres, suite: "limits")
        env["AUTH_REGISTRATION"] = "open"
        env["LIMITS_RATES"] = TestServers.lenientRateLimits + ",directory-name=4/1h"
        #expect(try await ChildProcess("circle", ["migrate"], environment: env).waitForExit() == 0)
        let (gatewayA, a) = try await startGateway(env)
        let (gatewayB, b) = try await startGateway(env)
        let yan = TestAccount(username: "yan")
        let token = try await a.register(yan, invite: nil)
        let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
            for index in 0..<40 {
                let gateway = index % 2 == 0 ? a : b
                group.addTask { try await gateway.call("POST", "/api/v1/auth/login", json: yan.login(authKey: SecureRandom.bytes(32))).status }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(statuses.filter { $0 == 401 }.count == 6 && statuses.filter { $0 == 429 }.count == 34, "\(statuses.sorted())")
        var lookups: [Int] = []
        for index in 0..<6 {
            lookups.append(try await (index % 2 == 0 ? a : b).call("GET", "/api/v1/directory/usernames/yan", token: token).status)
        }
        #expect(lookups == [200, 200, 200, 200, 429, 429], "\(lookups)")
        for gateway in [gatewayA, gatewayB] {
            gateway.signal(SIGTERM)
            #expect(await gateway.waitForExit(timeout: .seconds(60)) == 0)
        }
    }

    @Test("a socket that reads slower than its events arrive is closed with 4008 once its queue overflows; the gateway stays healthy (events on the member's channel, and frames for several members on the fan-out channel)",
          arguments: [false, true])
    func slowConsumer(fanOut: Bool) async throws {
        let postgres = try await TestServers.freshPostgresDatabase(suite: "slow")
        var env = try scaledEnvironment(postgres, suite: "gateways")
        env["AUTH_REGISTRATION"] = "open"
        // The stalled client answers no pings while it stalls: under a loaded machine the flood
        // can outlast the default silence limit, which would close it with 1001 instead.
        env["SOCKET_SILENCE_LIMIT"] = "600s"
        #expect(try await ChildProcess("circle", ["migrate"], environment: env).waitForExit() == 0)
        let (gateway, api) = try await startGateway(env)
        let zoe = TestAccount(username: "zoe")
        let token = try await api.register(zoe, invite: nil)
        let port = Int(api.baseURL.split(separator: ":").last!)!
        let stalled = try await StalledSocket.connect(port: port, token: token)

        let redis = try RedisSettings.parse(env["REDIS_URL"]!, prefix: env["REDIS_PREFIX"]!)
        let bus = RedisBus(settings: redis, logger: TestServers.quietLogger)
        try await bus.preflight()
        // The client reads, but far slower than the events come; once they stop it catches up.
        async let closeCode = stalled.drain()
        let padding = String(repeating: "x", count: 2000)
        // Pipelined, so the flood takes a moment however loaded the machine is (one awaited
        // PUBLISH after another could take most of the client's patience under load).
        let flood = (0..<20_000).map { index in
            let frame = EventFrame(routing: .init(), body: ByteBuffer(string: "{\"type\":\"test.flood\",\"data\":{\"i\":\(index),\"pad\":\"\(padding)\"}}"))
            return fanOut ? (payload: FanOutFrame.encode(frame, to: [UUID().uuidString.lowercased(), zoe.userId]), channel: FanOutFrame.channel)
                          : (payload: frame.encoded(), channel: "user.\(zoe.userId)")
        }
        #expect(await bus.publish(flood).allSatisfy { $0 })
        stalled.speedUp()
        let code = try await closeCode
        #expect(code == 4008, "closed with \(String(describing: code)); gateway said: \(gateway.output.suffix(2000))")
        // Other clients are unaffected.
        let (fresh, _) = try await TestSocket.authenticated(api.socketURL, token: token)
        fresh.close()
        #expect(try await api.call("GET", "/healthz").status == 200)
        gateway.signal(SIGTERM)
        await gateway.waitForExit()
    }

    @Test("the same flow in the embedded `circle serve`: live events in order, and 1012 on SIGTERM")
    func embeddedFlow() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("circle-embedded-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let port = try FreePort.find()
        let server = try ChildProcess("circle", ["serve", "--http-port", String(port), "--log-level", "warning"], workingDirectory: folder)
        try await HTTPProbe.waitFor("http://127.0.0.1:\(port)/readyz", while: { server.isRunning })
        // `circle serve` printed an invite for the first admin.
        let link = try #require(server.output.split(separator: "\n").first { $0.contains("/#/invite/") })
        let code = String(link.split(separator: "/").last!)
        let api = APIClient(baseURL: "http://127.0.0.1:\(port)")
        let yan = TestAccount(username: "yan")
        let token = try await api.register(yan, invite: code)
        let (socket, head) = try await TestSocket.authenticated(api.socketURL, token: token)
        #expect(head == 1)
        let phone = try await api.login(yan, device: "phone")
        _ = try await api.call("DELETE", "/api/v1/account/sessions/\(phone.sessionId)", token: token)
        try await expectSeqs(socket, [2, 3, 4], types: ["security.alert", "session.created", "session.revoked"], "embedded socket")
        server.signal(SIGTERM)
        #expect(try await socket.closeCode() == 1012)
        #expect(await server.waitForExit(timeout: .seconds(60)) == 0)
    }
}
