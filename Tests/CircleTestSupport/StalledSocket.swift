import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A WebSocket client that stops reading after it authenticates, like a phone gone to sleep:
/// the server's writes back up until its own queue overflows. Later `drain()` reads everything
/// the server sent (frames, then the close frame) until the connection ends.
public final class StalledSocket: Sendable {
    final class Collector: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let bytes = NIOLockedValueBox<[UInt8]>([])
        let closed = NIOLockedValueBox<Bool>(false)
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            bytes.withLockedValue { $0 += buffer.readableBytesView }
        }
        func channelInactive(context: ChannelHandlerContext) {
            closed.withLockedValue { $0 = true }
        }
    }

    private let channel: any Channel
    private let collector: Collector
    private let slow = NIOLockedValueBox(true)

    private init(channel: any Channel, collector: Collector) {
        self.channel = channel
        self.collector = collector
    }

    /// Connects, upgrades, sends the auth frame, reads the handshake answer, then stops reading.
    public static func connect(host: String = "127.0.0.1", port: Int, token: String) async throws -> StalledSocket {
        let collector = Collector()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.autoRead, value: false)
            .channelOption(.maxMessagesPerRead, value: 1)
            .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(capacity: 4096))
            .channelOption(.socketOption(.so_rcvbuf), value: 16 * 1024)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(collector) }
            }
            .connect(host: host, port: port).get()
        let request = "GET /api/v1/events HTTP/1.1\r\nHost: \(host):\(port)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        try await channel.writeAndFlush(ByteBuffer(string: request))
        try await channel.writeAndFlush(ByteBuffer(bytes: maskedTextFrame("{\"type\":\"auth\",\"token\":\"\(token)\"}")))
        let socket = StalledSocket(channel: channel, collector: collector)
        // Read until the handshake answer and the `ready` frame are in, then stop.
        let deadline = ContinuousClock.now + .seconds(30)
        while !String(decoding: collector.bytes.withLockedValue { $0 }, as: UTF8.self).contains("\"ready\"") {
            guard ContinuousClock.now < deadline else { throw TestSupportError("the stalled socket was not accepted") }
            channel.read()
            try await Task.sleep(for: .milliseconds(20))
        }
        return socket
    }

    /// Reads until the server closes the connection (bounded): 4 KiB every 50 ms until
    /// `speedUp()`, then as fast as it can. Returns the code of the server's close frame, if any.
    public func drain(timeout: Duration = .seconds(180)) async throws -> UInt16? {
        let deadline = ContinuousClock.now + timeout
        var reads = 0
        while !collector.closed.withLockedValue({ $0 }) {
            guard ContinuousClock.now < deadline else { throw TestSupportError("the server never closed the stalled socket") }
            channel.read()
            reads += 1
            if slow.withLockedValue({ $0 }) {
                try await Task.sleep(for: .milliseconds(50))
            } else if reads % 64 == 0 {
                try await Task.sleep(for: .milliseconds(1))
            }
        }
        return Self.lastCloseCode(collector.bytes.withLockedValue { $0 })
    }

    /// Starts reading at full speed.
    public func speedUp() { slow.withLockedValue { $0 = false } }

    /// Reads until the server's close frame arrives (or the connection ends, nil): its code.
    public func closeFrame(timeout: Duration = .seconds(60)) async throws -> UInt16? {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let code = Self.lastCloseCode(collector.bytes.withLockedValue { $0 }) { return code }
            if collector.closed.withLockedValue({ $0 }) { return nil }
            guard ContinuousClock.now < deadline else { throw TestSupportError("no close frame within \(timeout)") }
            channel.read()
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// How many pings (opcode 9) the server has sent that were read so far.
    public var pings: Int {
        Self.frames(collector.bytes.withLockedValue { $0 }).filter { $0.opcode == 9 }.count
    }

    /// The code of the close frame (opcode 8) among the server's frames, if there is one.
    static func lastCloseCode(_ bytes: [UInt8]) -> UInt16? {
        frames(bytes).last { $0.opcode == 8 && $0.payload.count >= 2 }.map { UInt16($0.payload.first!) << 8 | UInt16($0.payload.dropFirst().first!) }
    }

    /// The complete unmasked server frames after the HTTP head.
    static func frames(_ bytes: [UInt8]) -> [(opcode: UInt8, payload: ArraySlice<UInt8>)] {
        guard let headEnd = bytes.indices.dropLast(3).first(where: { bytes[$0] == 13 && bytes[$0 + 1] == 10 && bytes[$0 + 2] == 13 && bytes[$0 + 3] == 10 }) else { return [] }
        var index = headEnd + 4
        var frames: [(opcode: UInt8, payload: ArraySlice<UInt8>)] = []
        while index + 2 <= bytes.count {
            let opcode = bytes[index] & 0x0f
            var length = Int(bytes[index + 1] & 0x7f)
            var offset = index + 2
            if length == 126 {
                guard offset + 2 <= bytes.count else { break }
                length = Int(bytes[offset]) << 8 | Int(bytes[offset + 1])
                offset += 2
            } else if length == 127 {
                guard offset + 8 <= bytes.count else { break }
                length = (0..<8).reduce(0) { $0 << 8 | Int(bytes[offset + $1]) }
                offset += 8
            }
            guard offset + length <= bytes.count else { break }
            frames.append((opcode, bytes[offset..<(offset + length)]))
            index = offset + length
        }
        return frames
    }

    static func maskedTextFrame(_ text: String) -> [UInt8] {
        let payload = Array(text.utf8)
        let mask: [UInt8] = [1, 2, 3, 4]
        var frame: [UInt8] = [0x81]
        if payload.count < 126 {
            frame.append(0x80 | UInt8(payload.count))
        } else {
            frame += [0x80 | 126, UInt8(payload.count >> 8), UInt8(payload.count & 0xff)]
        }
        frame += mask
        frame += payload.enumerated().map { $0.element ^ mask[$0.offset % 4] }
        return frame
    }

    public func close() {
        channel.close(promise: nil)
    }
}
