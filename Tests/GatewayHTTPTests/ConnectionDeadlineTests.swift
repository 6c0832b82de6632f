import CircleCore
@testable import CircleHTTP
import CircleTestSupport
import Foundation
import Logging
import NIOCore
import NIOEmbedded
import NIOPosix
import Testing

/// Slowloris: a connection must send its first request head in time, or it is closed.
@Suite("Connection deadlines")
struct ConnectionDeadlineTests {
    /// A raw TCP client: writes what it is told, reads and drops what comes back.
    static func connect(port: Int) async throws -> any Channel {
        try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton).connect(host: "127.0.0.1", port: port).get()
    }

    /// How long until `channel` is closed by the other side; nil if still open after `limit`
    /// (then this side closes it: the wait for its close must end).
    static func closed(_ channel: any Channel, within limit: Duration) async -> Duration? {
        let start = ContinuousClock.now
        let closeFuture = channel.closeFuture
        return await withTaskGroup(of: Duration?.self) { group in
            group.addTask {
                try? await closeFuture.get()
                return ContinuousClock.now - start
            }
            group.addTask {
                try? await Task.sleep(for: limit)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            if first == nil { channel.close(promise: nil) }
            return first
        }
    }

    @Test("the deadline closes a silent client and one that dribbles its head; a finished head lifts it, even split across reads")
    func handler() async throws {
        func connected() async throws -> (EmbeddedChannel, EmbeddedEventLoop) {
            let loop = EmbeddedEventLoop()
            let channel = EmbeddedChannel(loop: loop)
            try channel.pipeline.syncOperations.addHandler(RequestHeadDeadlineHandler(limit: .seconds(20), logger: TestServers.quietLogger))
            try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 9)).get()
            return (channel, loop)
        }
        // Sends nothing: closed at the deadline, not before.
        let (silent, silentLoop) = try await connected()
        silentLoop.advanceTime(by: .seconds(19))
        #expect(silent.isActive)
        silentLoop.advanceTime(by: .seconds(1))
        #expect(!silent.isActive, "a silent client stays connected")

        // Sends a byte a second and never ends its head: closed at the deadline all the same.
        let (dribbling, dribblingLoop) = try await connected()
        for byte in "GET / HTTP/1.1\r\nHost: a\r\n".utf8.prefix(20) {
            try dribbling.writeInbound(ByteBuffer(bytes: [byte]))
            dribblingLoop.advanceTime(by: .seconds(1))
        }
        #expect(!dribbling.isActive, "a client dribbling its head stays connected")

        // The blank line that ends the head arrives in two reads: the deadline is lifted, the
        // handler leaves the pipeline, and every byte went on unchanged.
        let (finished, finishedLoop) = try await connected()
        try finished.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: a\r\n\r"))
        finishedLoop.advanceTime(by: .seconds(5))
        try finished.writeInbound(ByteBuffer(string: "\nbody"))
        finishedLoop.advanceTime(by: .seconds(600))
        #expect(finished.isActive, "a client whose head arrived was closed")
        #expect(throws: (any Error).self) { try finished.pipeline.syncOperations.handler(type: RequestHeadDeadlineHandler.self) }
        var received = ""
        while let part = try finished.readInbound(as: ByteBuffer.self) { received += String(buffer: part) }
        #expect(received == "GET / HTTP/1.1\r\nHost: a\r\n\r\nbody")
        _ = try? finished.finish()
    }

    @Test("the gateway closes a connection that sends no request within 20 s, and leaves an older realtime socket open")
    func gateway() async throws {
        let harness = GatewayHarness(registration: "open")
        try await harness.run { api in
            let kai = TestAccount(username: "kai")
            let token = try await api.register(kai, invite: nil)
            let (socket, _) = try await TestSocket.authenticated(api.socketURL, token: token)
            let port = try #require(URL(string: api.baseURL)?.port)
            let silent = try await Self.connect(port: port)
            let after = try #require(await Self.closed(silent, within: .seconds(120)), "a connection that never sent a request stays open")
            #expect(after >= .seconds(15), "closed after \(after)")
            // The realtime socket (its head ended long ago) is still live.
            let phone = try await api.login(kai, device: "phone")
            let frame = try #require(try await socket.next(ofType: "session.created"), "the realtime socket was closed")
            #expect(TestJSON.string(frame, path: ["type"]) == "session.created")
            #expect(TestJSON.string(frame, path: ["data", "sessionId"]) == phone.sessionId)
            socket.close()
        }
    }
}
