import CircleCore
import CircleTestSupport
import Foundation
import Testing

@Suite("Encrypted pins blob")
struct PinsTests {
    @Test("versions only move forward by one; each user sees only their own blob; bad input changes nothing")
    func versions() async throws {
        let harness = GatewayHarness(registration: "open")
        try await harness.run { api in
            let ivy = try await api.register(TestAccount(username: "ivy"), invite: nil)
            let jon = try await api.register(TestAccount(username: "jon"), invite: nil)
            let empty = try await api.call("GET", "/api/v1/account/pins", token: ivy)
            #expect(empty.status == 200 && TestJSON.int(empty.body, path: ["version"]) == 0)
            func put(_ version: Int, _ blob: [UInt8], as token: String) async throws -> Int {
                try await api.call("PUT", "/api/v1/account/pins", json: "{\"version\":\(version),\"blob\":\"\(Base64URL.encode(blob))\"}", token: token).status
            }
            let first = SecureRandom.bytes(100)
            #expect(try await put(2, first, as: ivy) == 409)
            #expect(try await put(1, first, as: ivy) == 204)
            #expect(try await put(1, SecureRandom.bytes(100), as: ivy) == 409, "a second device writing the same version must merge first")
            #expect(try await put(2, SecureRandom.bytes(50), as: ivy) == 204)
            #expect(try await put(0, first, as: ivy) == 422)
            #expect(try await put(3, [], as: ivy) == 422)
            #expect(try await put(3, [UInt8](repeating: 1, count: 300_000), as: ivy) == 422)
            #expect(try await api.call("PUT", "/api/v1/account/pins", json: "{\"version\":3,\"blob\":\"AA\",\"extra\":1}", token: ivy).status == 400)
            #expect(try await api.call("PUT", "/api/v1/account/pins", json: "{\"version\":3,\"blob\":\"AA\"}").status == 401)
            let mine = try await api.call("GET", "/api/v1/account/pins", token: ivy)
            #expect(TestJSON.int(mine.body, path: ["version"]) == 2)
            let theirs = try await api.call("GET", "/api/v1/account/pins", token: jon)
            #expect(TestJSON.int(theirs.body, path: ["version"]) == 0 && TestJSON.string(theirs.body, path: ["blob"]) == nil)
        }
    }
}
