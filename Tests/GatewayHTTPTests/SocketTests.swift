import CircleCore
import CircleTestSupport
import Foundation
import Testing

@Suite("The realtime socket")
struct SocketTests {
    @Test("an authenticated socket gets live session events, and a resumed one gets what it missed, in order")
    func liveAndResume() async throws {
        let harness = GatewayHarness(registration: "open")
        try await harness.run { api in
            let uma = TestAccount(username: "uma")
            let token = try await api.register(uma, invite: nil)
            let (socket, head) = try await TestSocket.authenticated(api.socketURL, token: token)
            #expect(head == 1)
            let tablet = try await api.login(uma, device: "tablet")
            // The sign-in alerts the session already open, then its session event follows.
            let alert = try #require(try await socket.next())
            #expect(TestJSON.int(alert, path: ["seq"]) == 2)
            #expect(TestJSON.string(alert, path: ["type"]) == "security.alert")
            #expect(TestJSON.string(alert, path: ["data", "kind"]) == "sign-in")
            let created = try #require(try await socket.next())
            #expect(TestJSON.int(created, path: ["seq"]) == 3)
            #expect(TestJSON.string(created, path: ["type"]) == "session.created")
            #expect(TestJSON.string(created, path: ["data", "sessionId"]) == tablet.sessionId)
            socket.close()

            // While no socket is open, more happens; a socket resuming from 3 gets exactly that.
            _ = try await api.call("DELETE", "/api/v1/account/sessions/\(tablet.sessionId)", token: token)
            _ = try await api.login(uma, device: "watch")
            let resumed = try await TestSocket.connect(api.socketURL)
            resumed.send(TestSocket.authFrame(token: token, since: 3))
            var missed: [String] = []
            for _ in 0..<4 { if let frame = try await resumed.next() { missed.append(frame) } }
            #expect(missed.map { TestJSON.int($0, path: ["seq"]) } == [4, 5, 6, nil])
            #expect(missed.map { TestJSON.string($0, path: ["type"]) } == ["session.revoked", "security.alert", "session.created", "ready"])
            #expect(TestJSON.int(missed[3], path: ["data", "lastSeq"]) == 6)
            resumed.close()
        }
    }

    @Test("a socket that never authenticates is closed with 4001 after 10 seconds")
    func authTimeout() async throws {
        let harness = GatewayHarness(registration: "open")
        try await harness.run { api in
            let socket = try await TestSocket.connect(api.socketURL)
            let start = ContinuousClock.now
            #expect(try await socket.closeCode(timeout: .seconds(40)) == 4001)
            #expect(ContinuousClock.now - start >= .seconds(9))
        }
    }

    @Test("a bad token, a malformed first frame, or a replayed logged-out token is closed with 4001")
    func badAuth() async throws {
        let harness = GatewayHarness(registration: "open")
        try await harness.run { api in
            let vic = TestAccount(username: "vic")
            let token = try await api.register(vic, invite: nil)
            _ = try await api.call("POST", "/api/v1/auth/logout", token: token)
            for frame in [TestSocket.authFrame(token: String(repeating: "B", count: 43)), "{\"type\":\"hello\"}", "not json", TestSocket.authFrame(token: token)] {
                let socket = try await TestSocket.connect(api.socketURL)
                socket.send(frame)
                #expect(try await socket.closeCode() == 4001, "\(frame)")
            }
        }
    }

    @Test("events that arrive while sockets open come after each socket's ready frame, each once and in order")
    func eventsWhileOpening() async throws {
        let harness = GatewayHarness(registration: "open")
        try await harness.run { api in
            let ova = TestAccount(username: "ova")
            let token = try await api.register(ova, invite: nil)
            var tokens = [token]
            for index in 0..<5 { tokens.append(try await api.login(ova, device: "old \(index)").token) }
            // Sessions (each an event) keep being created, four at a time, while the sockets
            // authenticate: some events reach a socket between its subscription and its catch-up.
            let churn = Task {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for worker in 0..<4 {
                        // A login slowed past its deadline by a loaded machine only means one event fewer.
                        group.addTask { for index in 0..<40 { _ = try? await api.login(ova, device: "churn \(worker).\(index)") } }
                    }
                    try await group.waitForAll()
                }
            }
            // Thirty-two sockets (a member's cap), eight on each of four sessions (a session's cap).
            var sockets: [TestSocket] = []
            for index in 0..<32 {
                let socket = try await TestSocket.connect(api.socketURL)
                socket.send(TestSocket.authFrame(token: tokens[index % 4]))
                sockets.append(socket)
                try await Task.sleep(for: .milliseconds(5))
            }
            try await churn.value
            let sync = try await api.call("GET", "/api/v1/sync?since=0&limit=1000", token: token)
            let head = try #require(TestJSON.int(sync.body, path: ["lastSeq"]))
            #expect(head > 1 + 5 + 100, "most of the 160 logins went through (head \(head))")
            for socket in sockets {
                let ready = try #require(try await socket.next())
                #expect(TestJSON.string(ready, path: ["type"]) == "ready", "the first frame is ready, not \(ready)")
                var expected = try #require(TestJSON.int(ready, path: ["data", "lastSeq"])) + 1
                while expected <= head {
                    let frame = try #require(try await socket.next())
                    #expect(TestJSON.int(frame, path: ["seq"]) == expected, "got \(frame)")
                    expected += 1
                }
                socket.close()
            }
        }
    }

    @Test("a socket whose session is revoked while connected is told, then closed with 4001")
    func revokedWhileConnected() async throws {
        let harness = GatewayHarness(registration: "open")
        try await harness.run { api in
            let wes = TestAccount(username: "wes")
            let main = try await api.register(wes, invite: nil)
            let doomed = try await api.login(wes, device: "doomed")
            let (socket, _) = try await TestSocket.authenticated(api.socketURL, token: doomed.token)
            #expect(try await api.call("DELETE", "/api/v1/account/sessions/\(doomed.sessionId)", token: main).status == 204)
            let notice = try #require(try await socket.next())
            #expect(TestJSON.string(notice, path: ["type"]) == "session.revoked")
            #expect(try await socket.closeCode() == 4001)
        }
    }

    @Test("socket limits: a ninth socket of one session closes the oldest with 4009 and the rest go on; a 20 KiB frame closes with 1009; a flood of frames closes with 4029")
    func limits() async throws {
        let harness = GatewayHarness(registration: "open")
        try await harness.run { api in
            let xan = TestAccount(username: "xan")
            let token = try await api.register(xan, invite: nil)
            var sockets: [TestSocket] = []
            for _ in 0..<9 { sockets.append(try await TestSocket.authenticated(api.socketURL, token: token).0) }
            #expect(try await sockets[0].closeCode(timeout: .seconds(10)) == 4009)
            _ = try await api.login(xan, device: "another")
            for socket in sockets.dropFirst() {
                #expect(try await socket.next(ofType: "session.created", timeout: .seconds(10)) != nil, "the newer sockets go on")
            }
            // One frame larger than 16 KiB (the limit holds for a single frame, not only across continuations).
            sockets[1].send("{\"type\":\"typing\",\"pad\":\"" + String(repeating: "x", count: 20 << 10) + "\"}")
            #expect(try await sockets[1].closeCode(timeout: .seconds(10)) == 1009)
            // A burst past 40 frames at once.
            for _ in 0..<200 { sockets[2].send("{\"type\":\"noop\"}") }
            #expect(try await sockets[2].closeCode(timeout: .seconds(10)) == 4029)
            // The others are untouched.
            _ = try await api.login(xan, device: "one more")
            #expect(try await sockets[3].next(ofType: "session.created", timeout: .seconds(10)) != nil)
            for socket in sockets { socket.close() }
        }
    }

    @Test("socket-frames is a named limit: limits.rates changes it (5 a second here), and its refusals are counted in circle_rate_limited_total")
    func configuredFrameLimit() async throws {
        let harness = GatewayHarness(registration: "open", extra: [.limitsRates: TestServers.lenientRateLimits + ",socket-frames=5/1s"])
        try await harness.run { api in
            let yara = TestAccount(username: "yara")
            let token = try await api.register(yara, invite: nil)
            let steady = try await TestSocket.authenticated(api.socketURL, token: token).0
            // Four frames a second for three seconds: within 5 a second.
            for _ in 0..<12 {
                steady.send("{\"type\":\"noop\"}")
                try await Task.sleep(for: .milliseconds(250))
            }
            let flooded = try await TestSocket.authenticated(api.socketURL, token: token).0
            for _ in 0..<8 { flooded.send("{\"type\":\"noop\"}") }
            #expect(try await flooded.closeCode(timeout: .seconds(10)) == 4029, "a sixth frame at once is past 5")
            _ = try await api.login(yara, device: "another")
            #expect(try await steady.next(ofType: "session.created", timeout: .seconds(10)) != nil, "the steady socket stayed open")
            let metrics = try await api.call("GET", "/metrics")
            #expect(metrics.body.contains("circle_rate_limited_total{limit=\"socket-frames\"}"))
            steady.close()
        }
    }
}
