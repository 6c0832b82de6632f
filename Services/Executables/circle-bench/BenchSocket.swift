import NIOCore
import NIOHTTP1
import NIOPosix
import NIOWebSocket
import Synchronization

/// A load generator's WebSocket client whose frames are read by a channel handler on the
/// socket's event loop: no task per socket and no task switch per frame. The presence benchmark
/// reads about 50,000 frames a second on the two cores it measures, where a client that hands
/// each frame to an async sequence spent a third of the machine (BENCHMARKS.md).
final class BenchSocket: Sendable {
    private let channel: any Channel

    private init(channel: any Channel) {
        self.channel = channel
    }

    /// Connects and upgrades to a WebSocket at `path`; then each text frame's bytes go to `onText`
    /// and the end of the socket to `onClose` (once), both on the socket's event loop. Fails if
    /// the upgrade does not happen within `timeout`.
    static func connect(host: String, port: Int, path: String, timeout: TimeAmount = .seconds(15),
                        onText: @escaping @Sendable (ByteBuffer) -> Void, onClose: @escaping @Sendable () -> Void) async throws -> BenchSocket {
        let group = MultiThreadedEventLoopGroup.singleton
        let upgraded = group.any().makePromise(of: Void.self)
        let settled = Atomic(false)
        let settle: @Sendable (Result<Void, any Error>) -> Void = { result in
            guard settled.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged else { return }
            upgraded.completeWith(result)
        }
        let channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                let upgrader = NIOWebSocketClientUpgrader(maxFrameSize: 1 << 20, automaticErrorHandling: false) { channel, _ in
                    channel.eventLoop.makeCompletedFuture {
                        let operations = channel.pipeline.syncOperations
                        _ = operations.removeHandler(context: try operations.context(handlerType: Refused.self))
                        try operations.addHandler(Reader(onText: onText, onClose: onClose))
                    }
                }
                return channel.pipeline.addHTTPClientHandlers(withClientUpgrade: (upgraders: [upgrader], completionHandler: { _ in settle(.success(())) }))
                    .flatMapThrowing { try channel.pipeline.syncOperations.addHandler(Refused()) }
            }
            .connect(host: host, port: port).get()
        channel.closeFuture.whenComplete { _ in settle(.failure(ChannelError.ioOnClosedChannel)) }
        let deadline = channel.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: "\(host):\(port)")
        headers.add(name: "Content-Length", value: "0")
        channel.write(HTTPClientRequestPart.head(HTTPRequestHead(version: .http1_1, method: .GET, uri: path, headers: headers)), promise: nil)
        channel.writeAndFlush(HTTPClientRequestPart.end(nil), promise: nil)
        do {
            try await upgraded.futureResult.get()
            deadline.cancel()
        } catch {
            deadline.cancel()
            channel.close(promise: nil)
            throw error
        }
        return BenchSocket(channel: channel)
    }

    /// Sends a text frame (masked, as a client's must be).
    func send(_ text: String) {
        channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .text, maskKey: .random(), data: ByteBuffer(string: text)), promise: nil)
    }

    func close() {
        channel.close(promise: nil)
    }

    /// Until the upgrade: an answer that is not one (a 429, a 503) or an error closes the socket
    /// at once, instead of waiting for the deadline.
    private final class Refused: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = HTTPClientResponsePart

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            context.close(promise: nil)
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }

    /// Hands text frames on, answers pings, and closes when the server does.
    private final class Reader: ChannelInboundHandler {
        typealias InboundIn = WebSocketFrame
        typealias OutboundOut = WebSocketFrame

        private let onText: @Sendable (ByteBuffer) -> Void
        private let onClose: @Sendable () -> Void

        init(onText: @escaping @Sendable (ByteBuffer) -> Void, onClose: @escaping @Sendable () -> Void) {
            self.onText = onText
            self.onClose = onClose
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let frame = unwrapInboundIn(data)
            switch frame.opcode {
            case .text:
                onText(frame.unmaskedData)
            case .ping:
                context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, maskKey: .random(), data: frame.unmaskedData)), promise: nil)
            case .connectionClose:
                // The close frame is echoed (RFC 6455 5.5.1), then the connection ends.
                let echo = WebSocketFrame(fin: true, opcode: .connectionClose, maskKey: .random(), data: frame.unmaskedData)
                context.writeAndFlush(wrapOutboundOut(echo), promise: nil)
                context.close(promise: nil)
            default:
                break
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            onClose()
            context.fireChannelInactive()
        }

        /// A frame that cannot be read ends the socket (there is no protocol error handler).
        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }
}
