import CircleCore
import CircleTestSupport
import Foundation
import Testing

@Suite("Realtime socket keepalive")
struct SocketKeepaliveTests {
    @Test("the gateway pings every socket; one that answers stays open, one that never answers is closed with 1001 after the silence limit")
    func pingsAndSilence() async throws {
        let harness = GatewayHarness(registration: "open", extra: [.socketPingInterval: "1s", .socketSilenceLimit: "3s"])
        try await harness.run { api in
            let ida = TestAccount(username: "ida")
            let token = try await api.register(ida, invite: nil)
            let (answering, _) = try await TestSocket.authenticated(api.socketURL, token: token)

            // A raw client that authenticates, then reads everything and never answers, not even
            // a ping: what a vanished peer looks like to the server.
            let port = try #require(URL(string: api.baseURL)?.port)
            let lastSent = ContinuousClock.now
            let silent = try await StalledSocket.connect(port: port, token: token)
            silent.speedUp()
            let code = try await silent.closeFrame(timeout: .seconds(12))
            // Not before the silence limit after the last frame it sent (the server heard it
            // later than it was sent); the upper bound leaves room for a loaded machine.
            let closedAfter = ContinuousClock.now - lastSent
            #expect(code == 1001)
            #expect(silent.pings >= 1, "pinged (every second) until closed")
            #expect(closedAfter >= .seconds(3) && closedAfter < .seconds(9), "closed \(closedAfter) after its last frame")
            silent.close()

            // The socket that answered its pings all along is still open and live.
            let phone = try await api.login(ida, device: "phone")
            let created = try #require(try await answering.next())
            #expect(TestJSON.string(created, path: ["type"]) == "session.created")
            #expect(TestJSON.string(created, path: ["data", "sessionId"]) == phone.sessionId)
            answering.close()
        }
    }

    @Test("the ping interval and silence limit are checked: a silence limit not above the interval is refused")
    func settingsAreChecked() async throws {
        let harness = GatewayHarness(registration: "open", extra: [.socketPingInterval: "30s", .socketSilenceLimit: "20s"])
        await #expect(throws: (any Error).self) {
            try await harness.run { _ in }
        }
        let bad = GatewayHarness(registration: "open", extra: [.socketPingInterval: "soon"])
        await #expect(throws: (any Error).self) {
            try await bad.run { _ in }
        }
    }
}
