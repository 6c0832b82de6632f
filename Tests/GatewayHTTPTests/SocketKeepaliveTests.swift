import CircleCore
import CircleTestSupport
import Foundation
@testable import GatewayHTTP
import NIOCore
import NIOEmbedded
import NIOWebSocket
import Testing

@Suite("Realtime socket keepalive")
struct SocketKeepaliveTests {
    @Test("the gateway pings every socket; one that answers stays open, one that never answers is closed with 1001 after the silence limit")
    func pingsAndSilence() async throws {
        // A silence limit of 6 s, so the socket that answers is not taken for silent when a
        // loaded machine holds up its pongs for a few seconds.
        let harness = GatewayHarness(registration: "open", extra: [.socketPingInterval: "1s", .socketSilenceLimit: "6s"])
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
            let code = try await silent.closeFrame(timeout: .seconds(30))
            // Not before the silence limit after the last frame it sent (the server heard it
            // later than it was sent). How soon after is counted in pings rather than seconds: a
            // loaded machine delays the timer (CI once took 9 s), but each tick sends at most
            // one ping, and a server ignoring the limit would ping on until the 30 s wait ends.
            let closedAfter = ContinuousClock.now - lastSent
            #expect(code == 1001)
            #expect(closedAfter >= .seconds(6), "closed \(closedAfter) after its last frame")
            #expect((1...8).contains(silent.pings), "pinged every second until closed, \(silent.pings) times in \(closedAfter)")
            silent.close()

            // The socket that answered its pings all along is still open and live.
            let phone = try await api.login(ida, device: "phone")
            let frame = try await answering.next(ofType: "session.created")
            let closed = frame == nil ? try? await answering.closeCode(timeout: .seconds(2)) : nil
            let created = try #require(frame, "the answering socket closed with \(String(describing: closed))")
            #expect(TestJSON.string(created, path: ["type"]) == "session.created")
            #expect(TestJSON.string(created, path: ["data", "sessionId"]) == phone.sessionId)
            answering.close()
        }
    }

    @Test("silence is judged by pings actually sent: late ticks never close a client that answers; one that leaves a ping unanswered is closed")
    func lateTicks() async throws {
        let channel = EmbeddedChannel()
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).get()
        let start = NIODeadline.uptimeNanoseconds(1_000_000_000_000)
        func at(_ ms: Int64) -> NIODeadline { start + .milliseconds(ms) }
        let socket = SocketKeepalive(channel: channel, now: start)
        let (limit, interval) = (Duration.seconds(3), Duration.seconds(1))
        func tick(_ ms: Int64) -> Bool {
            if socket.isSilent(for: limit, answerTime: limit - interval, at: at(ms)) { return true }
            socket.pingIfDue(every: interval, at: at(ms))
            return false
        }
        func pings() throws -> Int {
            var count = 0
            while let frame = try channel.readOutbound(as: WebSocketFrame.self) {
                #expect(frame.opcode == .ping)
                count += 1
            }
            return count
        }
        // The timer stalls for 5 s (a slow database, a loaded machine): the client was never
        // pinged meanwhile, so it is not silent; it is pinged now and answers.
        #expect(!tick(5_000))
        socket.heard(at: at(5_100))
        // It stalls again, for almost 4 s: the client answered the last ping sent, so it stays.
        #expect(!tick(9_000))
        socket.heard(at: at(9_050))
        #expect(!tick(10_000))
        #expect(try pings() == 3)
        // From now on it answers nothing: pinged every second, closed once the first ping after
        // it last spoke (at 10 s) is the silence limit minus the interval old and it has been
        // silent for the limit.
        #expect(!tick(11_000))
        #expect(!tick(12_000))
        #expect(tick(12_100))
        #expect(try pings() == 2)
        _ = try await channel.finish()
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
