import CircleCore
import CircleTestSupport
import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

@Suite("Realtime socket keepalive")
struct SocketKeepaliveTests {
    @Test("the gateway pings every socket; one that answers stays open, one that never answers is closed with 1001 after the silence limit")
    func pingsAndSilence() async throws {
        let harness = GatewayHarness(registration: "open", extra: [.socketPingInterval: "1s", .socketSilenceLimit: "3s"])
        try await harness.run { api in
            let ida = TestAccount(username: "ida")
            let token = try await api.register(ida, invite: nil)
            let (answering, _) = try await TestSocket.authenticated(api.socketURL, token: token)

            let silent = try await SilentSocket.watch(api.baseURL, token: token, for: .seconds(12))
            #expect(silent.sawReady)
            #expect(silent.pings >= 1, "pinged (every second) until closed")
            #expect(silent.closeCode == 1001)
            // Not before the silence limit after the last frame it sent (the server heard it
            // later than it was sent); the upper bound leaves room for a loaded machine.
            let closedAfter = try #require(silent.closedAfter)
            #expect(closedAfter >= .seconds(3) && closedAfter < .seconds(9), "closed \(closedAfter) after its last frame")

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

/// A WebSocket client on a plain socket that authenticates and then never answers anything
/// (not even pings): what a vanished peer looks like to the server.
enum SilentSocket {
    struct Outcome: Sendable {
        var sawReady = false
        var pings = 0
        var closeCode: UInt16?
        /// From the last frame this client sent (its auth frame) to the server's close frame.
        var closedAfter: Duration?
    }

    static func watch(_ baseURL: String, token: String, for limit: Duration) async throws -> Outcome {
        try await withCheckedThrowingContinuation { continuation in
            Thread {
                do {
                    continuation.resume(returning: try blockingWatch(baseURL, token: token, for: limit))
                } catch {
                    continuation.resume(throwing: error)
                }
            }.start()
        }
    }

    static func blockingWatch(_ baseURL: String, token: String, for limit: Duration) throws -> Outcome {
        let url = try #require(URL(string: baseURL))
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw TestSupportError("socket failed") }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(url.port!).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { throw TestSupportError("connect failed") }
        var timeout = timeval(tv_sec: 0, tv_usec: 200_000)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))

        let key = Data(SecureRandom.bytes(16)).base64EncodedString()
        try send(descriptor, Array((
            "GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Key: \(key)\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).utf8))
        var received: [UInt8] = []
        let deadline = ContinuousClock.now + limit
        while !received.containsHeaderEnd {
            guard ContinuousClock.now < deadline else { throw TestSupportError("no upgrade answer") }
            try read(descriptor, into: &received)
        }
        let headerEnd = received.headerEnd!
        let head = String(decoding: received[..<headerEnd], as: UTF8.self)
        guard head.hasPrefix("HTTP/1.1 101") else { throw TestSupportError("not upgraded: \(head)") }
        received.removeFirst(headerEnd + 4)
        let lastSent = ContinuousClock.now
        try send(descriptor, maskedTextFrame("{\"type\":\"auth\",\"token\":\"\(token)\"}"))

        var outcome = Outcome()
        while ContinuousClock.now < deadline, outcome.closeCode == nil {
            while let (opcode, payload, length) = frame(in: received) {
                received.removeFirst(length)
                switch opcode {
                case 0x1:
                    if String(decoding: payload, as: UTF8.self).contains("\"type\":\"ready\"") { outcome.sawReady = true }
                case 0x9:
                    outcome.pings += 1
                case 0x8:
                    outcome.closeCode = payload.count >= 2 ? UInt16(payload[0]) << 8 | UInt16(payload[1]) : 0
                    outcome.closedAfter = ContinuousClock.now - lastSent
                default:
                    break
                }
            }
            if outcome.closeCode == nil { try read(descriptor, into: &received) }
        }
        return outcome
    }

    private static func send(_ descriptor: Int32, _ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            guard n > 0 else { throw TestSupportError("write failed") }
            sent += n
        }
    }

    /// Reads what is there (waiting at most the receive timeout).
    private static func read(_ descriptor: Int32, into buffer: inout [UInt8]) throws {
        var chunk = [UInt8](repeating: 0, count: 4096)
        let n = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
        if n > 0 { buffer += chunk[..<n] }
        if n == 0 { throw TestSupportError("the server closed the connection without a close frame") }
    }

    private static func maskedTextFrame(_ text: String) -> [UInt8] {
        let payload = Array(text.utf8)
        precondition(payload.count < 126)
        let mask = SecureRandom.bytes(4)
        return [0x81, 0x80 | UInt8(payload.count)] + mask + payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
    }

    /// One unmasked server frame at the start of `bytes`: opcode, payload, whole length.
    private static func frame(in bytes: [UInt8]) -> (UInt8, [UInt8], Int)? {
        guard bytes.count >= 2 else { return nil }
        let opcode = bytes[0] & 0x0F
        var length = Int(bytes[1] & 0x7F), offset = 2
        if length == 126 {
            guard bytes.count >= 4 else { return nil }
            length = Int(bytes[2]) << 8 | Int(bytes[3])
            offset = 4
        } else if length == 127 {
            guard bytes.count >= 10 else { return nil }
            length = bytes[2..<10].reduce(0) { $0 << 8 | Int($1) }
            offset = 10
        }
        guard bytes.count >= offset + length else { return nil }
        return (opcode, Array(bytes[offset..<(offset + length)]), offset + length)
    }
}

private extension Array where Element == UInt8 {
    var headerEnd: Int? {
        guard count >= 4 else { return nil }
        for index in 0...(count - 4) where self[index] == 13 && self[index + 1] == 10 && self[index + 2] == 13 && self[index + 3] == 10 {
            return index
        }
        return nil
    }

    var containsHeaderEnd: Bool { headerEnd != nil }
}
