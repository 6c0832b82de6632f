import CircleConfig
import CircleCore
import CircleTestSupport
import Foundation
import Testing

@Suite("Invitations from the browser: admins create, list and revoke; a registration page checks its invite first")
struct InviteTests {
    @Test("an admin creates an invite with a note and expiry and gets its link once; it registers one member and shows who used it; an unused one can be revoked and then refuses registration; members and strangers get 404")
    func adminInvites() async throws {
        let harness = GatewayHarness(registration: "invite", extra: [.httpPublicURL: "https://circle.example"])
        let adminCode = try await harness.invite(admin: true)
        let memberCode = try await harness.invite()
        try await harness.run { api in
            let admin = try await api.register(TestAccount(username: "root"), invite: adminCode)
            let member = try await api.register(TestAccount(username: "mia"), invite: memberCode)

            let created = try await api.call("POST", "/api/v1/admin/invites", json: #"{"note":"  for Ben ","validForHours":48}"#, token: admin)
            #expect(created.status == 201)
            let link = try #require(TestJSON.string(created.body, path: ["link"]))
            #expect(link.hasPrefix("https://circle.example/#/invite/"))
            let code = String(link.split(separator: "/").last!)
            let id = try #require(TestJSON.string(created.body, path: ["invite", "id"]))
            #expect(TestJSON.string(created.body, path: ["invite", "note"]) == "for Ben")
            let expiresAt = try #require(TestJSON.int(created.body, path: ["invite", "expiresAt"]))
            let createdAt = try #require(TestJSON.int(created.body, path: ["invite", "createdAt"]))
            #expect(expiresAt - createdAt == 48 * 3_600_000)
            #expect(try await harness.count("SELECT COUNT(*) AS n FROM invites WHERE code_hash = '\(code)'") == 0, "only a hash of the code is kept")

            // The registration page's check: usable until used.
            let check = try await api.call("GET", "/api/v1/auth/invites/\(code)")
            #expect(check.status == 200 && TestJSON.string(check.body, path: ["state"]) == "usable" && TestJSON.int(check.body, path: ["expiresAt"]) == expiresAt)
            let ben = TestAccount(username: "ben")
            _ = try await api.register(ben, invite: code)
            let used = try await api.call("GET", "/api/v1/auth/invites/\(code)")
            #expect(TestJSON.string(used.body, path: ["state"]) == "used" && TestJSON.value(used.body, path: ["expiresAt"]) == nil)
            #expect(TestJSON.string(try await api.call("GET", "/api/v1/auth/invites/\(String(repeating: "A", count: 24))").body, path: ["state"]) == "unknown")
            #expect(TestJSON.string(try await api.call("GET", "/api/v1/auth/invites/not%20base64!").body, path: ["state"]) == "unknown")

            let spare = try await api.call("POST", "/api/v1/admin/invites", json: "{}", token: admin)
            let spareId = try #require(TestJSON.string(spare.body, path: ["invite", "id"]))
            let spareCode = String(try #require(TestJSON.string(spare.body, path: ["link"])).split(separator: "/").last!)

            let list = try await api.call("GET", "/api/v1/admin/invites", token: admin)
            let invites = try #require(TestJSON.value(list.body, path: ["invites"]) as? [[String: Any]])
            let bens = try #require(invites.first { $0["id"] as? String == id })
            #expect(bens["state"] as? String == "used")
            #expect((bens["usedBy"] as? [String: Any])?["username"] as? String == "ben")
            #expect(invites.first { $0["id"] as? String == spareId }?["state"] as? String == "usable")
            #expect(invites.count == 4, "the two made by the harness are listed too")

            // Revoking: an unused one stops working; a used one is refused; unknown ids are 404.
            #expect(try await api.call("DELETE", "/api/v1/admin/invites/\(spareId)", token: admin).status == 204)
            #expect(TestJSON.string(try await api.call("GET", "/api/v1/auth/invites/\(spareCode)").body, path: ["state"]) == "revoked")
            let refused = try await api.call("POST", "/api/v1/auth/register", json: TestAccount(username: "eve").registration(invite: spareCode))
            #expect(refused.status == 410)
            let usedRevoke = try await api.call("DELETE", "/api/v1/admin/invites/\(id)", token: admin)
            #expect(usedRevoke.status == 409 && usedRevoke.body.contains("invite-used"))
            #expect(try await api.call("DELETE", "/api/v1/admin/invites/\(Base64URL.encode(SecureRandom.bytes(16)))", token: admin).status == 404)

            // Bad input changes nothing.
            #expect(try await api.call("POST", "/api/v1/admin/invites", json: #"{"validForHours":0}"#, token: admin).status == 422)
            #expect(try await api.call("POST", "/api/v1/admin/invites", json: #"{"note":"\#(String(repeating: "x", count: 121))"}"#, token: admin).status == 422)
            #expect(try await api.call("POST", "/api/v1/admin/invites", json: #"{"note":"a\u202Eb"}"#, token: admin).status == 422)
            #expect(try await api.call("POST", "/api/v1/admin/invites", json: #"{"code":"mine"}"#, token: admin).status == 400)

            // Not an admin: the same 404 as for anything that is not there.
            #expect(try await api.call("GET", "/api/v1/admin/invites", token: member).status == 404)
            #expect(try await api.call("POST", "/api/v1/admin/invites", json: "{}", token: member).status == 404)
            let listAfter = try await api.call("GET", "/api/v1/admin/invites", token: admin)
            let before = (TestJSON.value(listAfter.body, path: ["invites"]) as? [Any])?.count
            #expect(try await api.call("DELETE", "/api/v1/admin/invites/\(id)", token: member).status == 404)
            #expect(try await api.call("GET", "/api/v1/admin/invites").status == 401)
            #expect(before == 4, "nothing a refused request did is listed")

            // Each creation and revocation is in the server's activity chain.
            let security = try await api.call("GET", "/api/v1/admin/security?limit=100", token: admin)
            let kinds = (TestJSON.value(security.body, path: ["entries"]) as? [[String: Any]])?.compactMap { $0["kind"] as? String } ?? []
            #expect(kinds.filter { $0 == "invite.created" }.count == 2 && kinds.contains("invite.revoked"))
        }
    }
}
