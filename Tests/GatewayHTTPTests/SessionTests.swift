import CircleCore
import CircleTestSupport
import Foundation
import Testing

@Suite("Sessions, password change and recovery")
struct SessionTests {
    @Test("list sessions; revoke one, others, or log out; a revoked token fails at once; another user's session is not found")
    func sessions() async throws {
        let harness = GatewayHarness(registration: "open")
        try await harness.run { api in
            let pat = TestAccount(username: "pat")
            let first = try await api.register(pat, invite: nil)
            let laptop = try await api.login(pat, device: "laptop")
            let phone = try await api.login(pat, device: "phone")
            let listed = try await api.call("GET", "/api/v1/account/sessions", token: first)
            let sessions = try #require(TestJSON.value(listed.body, path: ["sessions"]) as? [[String: Any]])
            #expect(sessions.map { $0["deviceLabel"] as? String } == ["test device", "laptop", "phone"])
            #expect(sessions.map { $0["current"] as? Bool } == [true, false, false])
            #expect(!listed.body.contains("token"))

            let quinn = TestAccount(username: "quinn")
            let stranger = try await api.register(quinn, invite: nil)
            #expect(try await api.call("DELETE", "/api/v1/account/sessions/\(laptop.sessionId)", token: stranger).status == 404)
            #expect(try await api.call("GET", "/api/v1/account/me", token: laptop.token).status == 200)

            #expect(try await api.call("DELETE", "/api/v1/account/sessions/\(laptop.sessionId)", token: first).status == 204)
            #expect(try await api.call("GET", "/api/v1/account/me", token: laptop.token).status == 401)
            #expect(try await api.call("DELETE", "/api/v1/account/sessions/\(laptop.sessionId)", token: first).status == 404)

            let others = try await api.call("POST", "/api/v1/account/sessions/revoke-others", token: first)
            #expect(TestJSON.value(others.body, path: ["revoked"]) as? [String] == [phone.sessionId])
            #expect(try await api.call("GET", "/api/v1/account/me", token: phone.token).status == 401)
            #expect(try await api.call("GET", "/api/v1/account/me", token: stranger).status == 200)

            #expect(try await api.call("POST", "/api/v1/auth/logout", token: first).status == 204)
            #expect(try await api.call("GET", "/api/v1/account/me", token: first).status == 401)
            // Replaying the logged-out token changes nothing.
            #expect(try await api.call("POST", "/api/v1/auth/logout", token: first).status == 401)
        }
    }

    @Test("password change: needs the current key, replaces the secret and bundle, ends other sessions")
    func passwordChange() async throws {
        let harness = GatewayHarness(registration: "open")
        try await harness.run { api in
            let rae = TestAccount(username: "rae")
            let token = try await api.register(rae, invite: nil)
            let other = try await api.login(rae, device: "old phone")
            let newKey = SecureRandom.bytes(32)
            let newBundle = SecureRandom.bytes(150)
            func body(current: [UInt8]) -> String {
                "{\"currentAuthKey\":\"\(Base64URL.encode(current))\",\"authKey\":\"\(Base64URL.encode(newKey))\",\"salt\":\"\(Base64URL.encode(SecureRandom.bytes(32)))\",\"bundle\":\"\(Base64URL.encode(newBundle))\"}"
            }
            let wrong = try await api.call("POST", "/api/v1/account/password", json: body(current: SecureRandom.bytes(32)), token: token)
            #expect(wrong.status == 403)
            #expect(try await api.call("POST", "/api/v1/auth/login", json: rae.login()).status == 200)
            let changed = try await api.call("POST", "/api/v1/account/password", json: body(current: rae.authKey), token: token)
            #expect(changed.status == 200)
            #expect(TestJSON.int(changed.body, path: ["bundleVersion"]) == 2)
            #expect(try await api.call("GET", "/api/v1/account/me", token: other.token).status == 401)
            #expect(try await api.call("GET", "/api/v1/account/me", token: token).status == 200)
            #expect(try await api.call("POST", "/api/v1/auth/login", json: rae.login()).status == 401)
            let relogin = try await api.call("POST", "/api/v1/auth/login", json: rae.login(authKey: newKey))
            #expect(relogin.status == 200)
            #expect(TestJSON.string(relogin.body, path: ["bundle"]) == Base64URL.encode(newBundle))
        }
    }

    @Test("recovery: the recovery key fetches the recovery copy and resets the password; a wrong one does nothing")
    func recovery() async throws {
        let harness = GatewayHarness(registration: "open")
        try await harness.run { api in
            let sam = TestAccount(username: "sam")
            let token = try await api.register(sam, invite: nil)
            let wrong = try await api.call("POST", "/api/v1/auth/recovery", json: "{\"username\":\"sam\",\"recoveryAuthKey\":\"\(Base64URL.encode(SecureRandom.bytes(32)))\"}")
            #expect(wrong.status == 401)
            let unknown = try await api.call("POST", "/api/v1/auth/recovery", json: "{\"username\":\"nobody\",\"recoveryAuthKey\":\"\(Base64URL.encode(SecureRandom.bytes(32)))\"}")
            #expect(unknown.status == 401 && unknown.body == wrong.body)
            let fetched = try await api.call("POST", "/api/v1/auth/recovery", json: "{\"username\":\"sam\",\"recoveryAuthKey\":\"\(Base64URL.encode(sam.recoveryAuthKey))\"}")
            #expect(fetched.status == 200)
            #expect(TestJSON.string(fetched.body, path: ["recoveryBundle"]) == Base64URL.encode(sam.recoveryBundle))

            let newKey = SecureRandom.bytes(32)
            let reset = try await api.call("POST", "/api/v1/auth/recovery/reset", json: """
                {"username":"sam","recoveryAuthKey":"\(Base64URL.encode(sam.recoveryAuthKey))","authKey":"\(Base64URL.encode(newKey))",\
                "salt":"\(Base64URL.encode(SecureRandom.bytes(32)))","bundle":"\(Base64URL.encode(SecureRandom.bytes(100)))","deviceLabel":"rescue"}
                """)
            #expect(reset.status == 200)
            #expect(try await api.call("GET", "/api/v1/account/me", token: token).status == 401)
            let newToken = try #require(TestJSON.string(reset.body, path: ["token"]))
            #expect(try await api.call("GET", "/api/v1/account/me", token: newToken).status == 200)
            #expect(try await api.call("POST", "/api/v1/auth/login", json: sam.login(authKey: newKey)).status == 200)
            #expect(try await api.call("POST", "/api/v1/auth/login", json: sam.login()).status == 401)
        }
    }

    @Test("sync: session events since N in order; too old or future N gets 410 resync-required; bad N gets 422")
    func sync() async throws {
        let harness = GatewayHarness(registration: "open")
        try await harness.run { api in
            let tia = TestAccount(username: "tia")
            let token = try await api.register(tia, invite: nil)
            let second = try await api.login(tia, device: "second")
            _ = try await api.call("DELETE", "/api/v1/account/sessions/\(second.sessionId)", token: token)
            let all = try await api.call("GET", "/api/v1/sync?since=0", token: token)
            #expect(all.status == 200)
            let events = try #require(TestJSON.value(all.body, path: ["events"]) as? [[String: Any]])
            #expect(events.map { $0["seq"] as? Int } == [1, 2, 3, 4])
            #expect(events.map { $0["type"] as? String } == ["session.created", "security.alert", "session.created", "session.revoked"])
            #expect((events[3]["data"] as? [String: Any])?["sessionId"] as? String == second.sessionId)
            #expect(TestJSON.int(all.body, path: ["lastSeq"]) == 4)
            let page = try await api.call("GET", "/api/v1/sync?since=1&limit=1", token: token)
            #expect(TestJSON.value(page.body, path: ["more"]) as? Bool == true)
            #expect(TestJSON.int(page.body, path: ["lastSeq"]) == 2)
            let future = try await api.call("GET", "/api/v1/sync?since=99", token: token)
            #expect(future.status == 410)
            #expect(TestJSON.string(future.body, path: ["type"]) == "urn:circle:problem:resync-required")
            #expect(try await api.call("GET", "/api/v1/sync?since=abc", token: token).status == 422)
            #expect(try await api.call("GET", "/api/v1/sync?since=0").status == 401)
        }
    }

    @Test("behind a trusted proxy the client address is the one the proxy appended to X-Forwarded-For, never one the client wrote; without trust, the connection's")
    func forwardedFor() async throws {
        for (trust, forwarded, expected) in [("true", "6.6.6.6, 10.1.2.3", "10.1.2.3"), ("true", "6.6.6.6,  fd00::7 ", "fd00::7"),
                                             ("true", "6.6.6.6, not an address", "127.0.0.1"), ("false", "6.6.6.6, 10.1.2.3", "127.0.0.1")] {
            let harness = GatewayHarness(registration: "open", extra: [.httpTrustForwardedFor: trust])
            try await harness.run { api in
                let reply = try await api.call("POST", "/api/v1/auth/register", json: TestAccount(username: "xff").registration(invite: nil),
                                               headers: ["X-Forwarded-For": forwarded])
                let token = try #require(TestJSON.string(reply.body, path: ["token"]), "\(reply.status) \(reply.body)")
                let listed = try await api.call("GET", "/api/v1/account/sessions", token: token, headers: ["X-Forwarded-For": forwarded])
                let sessions = try #require(TestJSON.value(listed.body, path: ["sessions"]) as? [[String: Any]])
                #expect(sessions.first?["ip"] as? String == expected, "\(trust) \(forwarded): \(sessions)")
            }
        }
    }
}
