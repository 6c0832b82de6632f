import CircleCore
import CircleTestSupport
import Foundation
import Testing

@Suite("Accounts, invites and login")
struct AccountTests {
    @Test("register with an admin invite; the invite cannot be used twice; an expired one is refused")
    func inviteRegistration() async throws {
        let harness = GatewayHarness()
        try await harness.run { api in
            let code = try await harness.invite(admin: true)
            let ann = TestAccount(username: "Ann")
            let token = try await api.register(ann, invite: code)
            let me = try await api.call("GET", "/api/v1/account/me", token: token)
            #expect(me.status == 200)
            #expect(TestJSON.string(me.body, path: ["username"]) == "ann")
            #expect(TestJSON.value(me.body, path: ["isAdmin"]) as? Bool == true)

            let reuse = try await api.call("POST", "/api/v1/auth/register", json: TestAccount(username: "bob").registration(invite: code))
            #expect(reuse.status == 410)
            #expect(TestJSON.string(reuse.body, path: ["type"]) == "urn:circle:problem:invite-unusable")

            let expired = try await harness.invite(validFor: .seconds(60), now: Timestamp.now().adding(seconds: -120))
            let late = try await api.call("POST", "/api/v1/auth/register", json: TestAccount(username: "cat").registration(invite: expired))
            #expect(late.status == 410)
            let none = try await api.call("POST", "/api/v1/auth/register", json: TestAccount(username: "dan").registration(invite: nil))
            #expect(none.status == 422)
            #expect(try await harness.count("SELECT COUNT(*) AS n FROM users") == 1)

            let plain = try await harness.invite()
            let bob = TestAccount(username: "bob")
            let bobToken = try await api.register(bob, invite: plain)
            let bobMe = try await api.call("GET", "/api/v1/account/me", token: bobToken)
            #expect(TestJSON.value(bobMe.body, path: ["isAdmin"]) as? Bool == false)
        }
    }

    @Test("a taken username is refused only to someone holding a usable invite")
    func takenName() async throws {
        let harness = GatewayHarness()
        try await harness.run { api in
            _ = try await api.register(TestAccount(username: "eve"), invite: try await harness.invite())
            let probe = try await api.call("POST", "/api/v1/auth/register", json: TestAccount(username: "eve").registration(invite: "not-an-invite"))
            #expect(probe.status == 410)
            let code = try await harness.invite()
            let taken = try await api.call("POST", "/api/v1/auth/register", json: TestAccount(username: "EVE").registration(invite: code))
            #expect(taken.status == 409)
            // The failed attempt did not use up the invite.
            _ = try await api.register(TestAccount(username: "frank"), invite: code)
        }
    }

    @Test("registration refuses bad keys and shapes with 4xx and stores nothing", arguments: [
        ("identityKey", "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "small order"),
        ("identityKey", "7v_______________________________________38", "non-canonical"),
        ("identityKey", "sVS9YhiK4oPdGH_v6MMfXidu3wg7TP8RydXP-FbHREA", "mixed order: a valid key plus a point of order 8"),
        ("identityKey", "AAAA", "length"),
        ("x25519Key", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "small order"),
        ("x25519Key", "4Ot6fDtBuK4WVuP68Z_EatoJjeucMrH9hmIFFl9JuAA", "small order"),
        ("x25519Key", "7v_______________________________________38", "non-canonical"),
        ("x25519Key", "CQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAIA", "top bit set"),
        ("kxCert", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "bad cert"),
        ("username", "x", "short name"),
        ("username", "ann smith", "space"),
        ("userId", "not-a-uuid", "bad id"),
        ("authKey", "short", "bad key"),
        ("bundle", "", "empty bundle"),
        ("displayName", "", "empty name"),
        ("displayName", "a" + String(repeating: "\u{0301}", count: 30_000), "one character carrying 30,000 combining marks (60 KB)"),
        ("displayName", "\u{202E}gnp.exe", "a bidi override"),
        ("deviceLabel", "phone" + String(repeating: "\u{0301}", count: 2_000), "a 4 KB label of one visible word"),
        ("deviceLabel", "lap\u{200D}top", "a zero-width joiner"),
    ])
    func badRegistration(_ field: String, _ value: String, _ why: String) async throws {
        let harness = GatewayHarness(registration: "open")
        try await harness.run { api in
            let reply = try await api.call("POST", "/api/v1/auth/register", json: TestAccount(username: "gus").registration(invite: nil, overriding: [field: value]))
            #expect((400..<500).contains(reply.status), "\(why): \(reply.status) \(reply.body)")
            #expect(reply.headers["content-type"] == "application/problem+json")
            #expect(TestJSON.string(reply.body, path: ["detail"])?.contains(field) == true, "\(why): \(reply.body)")
            #expect(try await harness.count("SELECT COUNT(*) AS n FROM users") == 0)
        }
    }

    @Test("a kx-cert signed for another user id is refused")
    func certBoundToUser() async throws {
        let harness = GatewayHarness(registration: "open")
        try await harness.run { api in
            let other = TestAccount(username: "hal")
            let victim = TestAccount(username: "ivy")
            // Other's keys and cert, presented under a different user id.
            let body = other.registration(invite: nil, overriding: ["userId": victim.userId])
            let reply = try await api.call("POST", "/api/v1/auth/register", json: body)
            #expect(reply.status == 422)
            #expect(TestJSON.string(reply.body, path: ["detail"])?.hasPrefix("kxCert") == true)
        }
    }

    @Test("malformed, oversized and unknown-field bodies get 4xx problem+json")
    func badBodies() async throws {
        let harness = GatewayHarness(registration: "open", extra: [.httpBodyLimit: "8192"])
        try await harness.run { api in
            let malformed = try await api.call("POST", "/api/v1/auth/login", json: "{\"username\":")
            #expect(malformed.status == 400)
            let wrongType = try await api.call("POST", "/api/v1/auth/login", json: "{\"username\":5,\"authKey\":\"x\"}")
            #expect(wrongType.status == 400)
            let unknown = try await api.call("POST", "/api/v1/auth/register", json: TestAccount(username: "jay").registration(invite: nil, overriding: ["isAdmin": true]))
            #expect(unknown.status == 400)
            #expect(TestJSON.string(unknown.body, path: ["detail"]) == "Unknown member: isAdmin.")
            let huge = try await api.call("POST", "/api/v1/auth/register", json: TestAccount(username: "kim").registration(invite: nil, overriding: ["bundle": String(repeating: "A", count: 10000)]))
            #expect(huge.status == 413)
            #expect(try await harness.count("SELECT COUNT(*) AS n FROM users") == 0)
        }
    }

    @Test("prelogin answers an unknown name exactly like a real one, with a stable salt")
    func preloginNoEnumeration() async throws {
        let harness = GatewayHarness(registration: "open")
        try await harness.run { api in
            // An unknown name is answered with the origin it was asked from, as an account bound there.
            let fake1 = try await api.call("POST", "/api/v1/auth/prelogin", json: "{\"username\":\"nobody\"}")
            let asked = try #require(TestJSON.string(fake1.body, path: ["origin"]))
            let lee = TestAccount(username: "lee")
            #expect(try await api.call("POST", "/api/v1/auth/register", json: lee.registration(invite: nil, overriding: ["origin": asked])).status == 201)
            let real = try await api.call("POST", "/api/v1/auth/prelogin", json: "{\"username\":\"LEE\"}")
            #expect(TestJSON.string(real.body, path: ["origin"]) == asked)
            let fake2 = try await api.call("POST", "/api/v1/auth/prelogin", json: "{\"username\":\"nobody\"}")
            #expect(real.status == 200 && fake1.status == 200)
            #expect(TestJSON.string(real.body, path: ["salt"]) == Base64URL.encode(lee.salt))
            #expect(TestJSON.string(fake1.body, path: ["salt"]) == TestJSON.string(fake2.body, path: ["salt"]))
            #expect(TestJSON.string(fake1.body, path: ["salt"]).flatMap(Base64URL.decode)?.count == 32)
            #expect(TestJSON.object(real.body)?.keys.sorted() == TestJSON.object(fake1.body)?.keys.sorted())
            #expect(TestJSON.string(fake1.body, path: ["kdf", "name"]) == "PBKDF2-SHA256")
            #expect(TestJSON.int(fake1.body, path: ["kdf", "iterations"]) == 600_000)
            #expect(TestJSON.string(real.body, path: ["serverId"])?.count == 32)
        }
    }

    @Test("login: the right key gets a session and the stored bundle; wrong key and unknown user get the same 401")
    func login() async throws {
        let harness = GatewayHarness(registration: "open")
        try await harness.run { api in
            let mo = TestAccount(username: "moe")
            _ = try await api.register(mo, invite: nil)
            let ok = try await api.call("POST", "/api/v1/auth/login", json: mo.login())
            #expect(ok.status == 200)
            #expect(TestJSON.string(ok.body, path: ["bundle"]) == Base64URL.encode(mo.bundle))
            let token = try #require(TestJSON.string(ok.body, path: ["token"]))
            #expect(token.count == 43)
            #expect(try await api.call("GET", "/api/v1/account/me", token: token).status == 200)

            let wrong = try await api.call("POST", "/api/v1/auth/login", json: mo.login(authKey: SecureRandom.bytes(32)))
            let unknown = try await api.call("POST", "/api/v1/auth/login", json: TestAccount(username: "ghost").login())
            #expect(wrong.status == 401 && unknown.status == 401)
            #expect(wrong.body == unknown.body)
            #expect(try await api.call("GET", "/api/v1/account/me", token: String(repeating: "A", count: 43)).status == 401)
            #expect(try await api.call("GET", "/api/v1/account/me").status == 401)
        }
    }

    @Test("failed logins back off with 429 and Retry-After, the same for real and unknown names")
    func backoff() async throws {
        let harness = GatewayHarness(registration: "open")
        try await harness.run { api in
            let ned = TestAccount(username: "ned")
            _ = try await api.register(ned, invite: nil)
            for name in ["ned", "ghost"] {
                let account = name == "ned" ? ned : TestAccount(username: name)
                // Five failures are free; after that each failure sets a wait (1 s, then 2 s, ...),
                // so failing attempts in a row meet a 429 (on a slow machine a wait may already be
                // over by the next attempt: it then fails again and the next wait is longer).
                var statuses: [Int] = []
                var throttled: HTTPProbe.Reply?
                var lastFailureSent = ContinuousClock.now
                for _ in 0..<12 where throttled == nil {
                    let sent = ContinuousClock.now
                    let reply = try await api.call("POST", "/api/v1/auth/login", json: account.login(authKey: SecureRandom.bytes(32)))
                    statuses.append(reply.status)
                    if reply.status == 429 { throttled = reply } else { lastFailureSent = sent }
                }
                #expect(Array(statuses.prefix(6)) == [401, 401, 401, 401, 401, 401], "\(name)")
                let retryAfter = Int(throttled?.headers["retry-after"] ?? "") ?? 0
                #expect(throttled != nil && retryAfter >= 1, "\(name): \(statuses)")
                // The right key is refused too until the wait is over: the wait (at least 1 s)
                // began after the last failing request was sent, so a request sent within half a
                // second of it falls inside the wait whatever the machine's load.
                let sent = ContinuousClock.now
                let blocked = try await api.call("POST", "/api/v1/auth/login", json: account.login())
                if sent - lastFailureSent < .milliseconds(500) {
                    #expect(blocked.status == 429, "\(name)")
                }
            }
            // Waiting lets the owner in: no lockout.
            try await Task.sleep(for: .milliseconds(2100))
            #expect(try await api.call("POST", "/api/v1/auth/login", json: ned.login()).status == 200)
        }
    }

    @Test("40 concurrent wrong logins for one name: exactly the 5 free ones and the one that starts the wait are checked; the rest get 429")
    func concurrentLoginsCountedAtomically() async throws {
        let harness = GatewayHarness(registration: "open")
        try await harness.run { api in
            let pia = TestAccount(username: "pia")
            _ = try await api.register(pia, invite: nil)
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for _ in 0..<40 {
                    group.addTask { try await api.call("POST", "/api/v1/auth/login", json: pia.login(authKey: SecureRandom.bytes(32))).status }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(statuses.filter { $0 == 401 }.count == 6, "\(statuses)")
            #expect(statuses.filter { $0 == 429 }.count == 34, "\(statuses)")
        }
    }

    @Test("named rate limits: directory lookups by name per member, registrations per address, failures per invite; 429 rate-limited with Retry-After")
    func rateLimits() async throws {
        let harness = GatewayHarness(registration: "invite", extra: [.limitsRates: "directory-name=3/1h,register=4/1h", .httpTrustForwardedFor: "true"])
        try await harness.run { api in
            let ray = TestAccount(username: "ray"), sue = TestAccount(username: "sue")
            let ray1 = try await api.register(ray, invite: try await harness.invite())
            let sue1 = try await api.register(sue, invite: try await harness.invite())
            var statuses: [Int] = []
            for name in ["sue", "nobody", "ray", "sue"] {
                statuses.append(try await api.call("GET", "/api/v1/directory/usernames/\(name)", token: ray1).status)
            }
            #expect(statuses == [200, 404, 200, 429], "\(statuses)")
            let limited = try await api.call("GET", "/api/v1/directory/usernames/sue", token: ray1)
            #expect(TestJSON.string(limited.body, path: ["type"]) == "urn:circle:problem:rate-limited")
            #expect(Int(limited.headers["retry-after"] ?? "") ?? 0 > 60, "a lookup comes back every 20 minutes")
            #expect(try await api.call("GET", "/api/v1/directory/usernames/ray", token: sue1).status == 200, "another member's bucket is their own")
            #expect(try await api.call("GET", "/api/v1/directory/users/\(sue.userId)", token: ray1).status == 200, "lookups by id have their own limit")

            // One invite, taken names: three failures are free, then the invite waits (it was
            // never spent, so without this it could test any number of names).
            let invite = try await harness.invite()
            var taken: [Int] = []
            var lastSent = ContinuousClock.now
            for index in 0..<4 {
                lastSent = .now
                let reply = try await api.call("POST", "/api/v1/auth/register", json: TestAccount(username: "ray").registration(invite: invite),
                                               headers: ["X-Forwarded-For": "10.0.0.\(index + 1)"])
                taken.append(reply.status)
            }
            #expect(taken == [409, 409, 409, 409], "the fourth is checked and starts a wait: \(taken)")
            // The wait (1 s) began when the fourth was sent: a request within half a second of it
            // falls inside whatever the machine's load.
            let sent = ContinuousClock.now
            let waiting = try await api.call("POST", "/api/v1/auth/register", json: TestAccount(username: "tom").registration(invite: invite),
                                             headers: ["X-Forwarded-For": "10.0.0.9"])
            if sent - lastSent < .milliseconds(500) {
                #expect(waiting.status == 429, "the invite waits, whoever holds it")
            }

            // Registrations per address: the bucket of 4 is spent by the first four from one address.
            var fromOne: [Int] = []
            for index in 0..<5 {
                let reply = try await api.call("POST", "/api/v1/auth/register", json: TestAccount(username: "vic\(index)").registration(invite: try await harness.invite()),
                                               headers: ["X-Forwarded-For": "6.6.6.6"])
                fromOne.append(reply.status)
            }
            #expect(fromOne == [201, 201, 201, 201, 429], "\(fromOne)")
        }
    }

    @Test("nobody can lock a member out: failures from one address make that address wait, and the owner's right key from another address still signs in")
    func noTargetedLockout() async throws {
        let harness = GatewayHarness(registration: "open", extra: [.httpTrustForwardedFor: "true"])
        try await harness.run { api in
            let ola = TestAccount(username: "ola")
            _ = try await api.register(ola, invite: nil)
            var statuses: [Int] = []
            for _ in 0..<10 {
                let reply = try await api.call("POST", "/api/v1/auth/login", json: ola.login(authKey: SecureRandom.bytes(32)), headers: ["X-Forwarded-For": "6.6.6.6"])
                statuses.append(reply.status)
            }
            #expect(statuses.contains(429), "the attacker's address waits: \(statuses)")
            let owner = try await api.call("POST", "/api/v1/auth/login", json: ola.login(), headers: ["X-Forwarded-For": "10.0.0.9"])
            #expect(owner.status == 200, "the owner from elsewhere: \(owner.status) \(owner.body)")
        }
    }

    @Test("directory: signed-in members read profiles and keys; strangers get 401, unknown names 404")
    func directory() async throws {
        let harness = GatewayHarness(registration: "open")
        try await harness.run { api in
            let oz = TestAccount(username: "ozzy")
            let token = try await api.register(oz, invite: nil)
            #expect(try await api.call("GET", "/api/v1/directory/usernames/ozzy").status == 401)
            let entry = try await api.call("GET", "/api/v1/directory/usernames/OZZY", token: token)
            #expect(entry.status == 200)
            #expect(TestJSON.string(entry.body, path: ["identityKey"]) == Base64URL.encode(oz.identity.publicKey.rawRepresentation))
            #expect(TestJSON.string(entry.body, path: ["kxCert"]) == Base64URL.encode(oz.kxCert))
            let byId = try await api.call("GET", "/api/v1/directory/users/\(oz.userId)", token: token)
            #expect(byId.body == entry.body)
            #expect(try await api.call("GET", "/api/v1/directory/usernames/nobody", token: token).status == 404)
        }
    }
}
