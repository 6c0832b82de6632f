import CircleEvents
@testable import GatewayHTTP
import NIOCore
import NIOEmbedded
import NIOWebSocket
import Testing

/// The fan-out frames' WebSocket encoding, made once and written below the encoder, read back
/// by SwiftNIO's own decoder at each length boundary of RFC 6455.
@Suite struct LiveFrameTests {
    @Test("a live frame's encoding is a final, unmasked text frame holding the body, at every length form", arguments: [0, 1, 125, 126, 65_535, 65_536, 70_000])
    func encoding(length: Int) throws {
        let body = ByteBuffer(bytes: (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
        let live = LiveFrame(EventFrame(routing: .init(), body: body))
        let channel = EmbeddedChannel(handler: ByteToMessageHandler(WebSocketFrameDecoder(maxFrameSize: 1 << 20)))
        try channel.writeInbound(live.wire)
        let frame = try #require(try channel.readInbound(as: WebSocketFrame.self))
        #expect(frame.fin && frame.opcode == .text && frame.maskKey == nil)
        #expect(frame.data == body)
        #expect(try channel.readInbound(as: WebSocketFrame.self) == nil, "nothing follows the frame")
        _ = try channel.finish()
    }
}
