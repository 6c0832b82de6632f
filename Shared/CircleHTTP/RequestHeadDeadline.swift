import HummingbirdCore
import Logging
import NIOCore

/// Closes a connection whose first request head has not fully arrived within `limit`.
///
/// Neither of Hummingbird's HTTP/1 channels times out a connection before its first request:
/// the idle timer of the plain channel waits for a whole request head, and the WebSocket-upgrade
/// channel adds it only after the first head. Without this, a client that connects and sends
/// nothing, or dribbles a header a byte at a time, holds a connection (and a file descriptor)
/// for as long as it likes: the "slowloris" attack. The handler sits first in the pipeline,
/// watches the raw bytes for the blank line that ends the head, and removes itself there;
/// later requests of a kept-alive connection fall under the channel's idle timeout.
final class RequestHeadDeadlineHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let limit: TimeAmount
    private let logger: Logger
    private var timer: Scheduled<Void>?
    /// The last four bytes read, to find "\r\n\r\n" across reads.
    private var tail: UInt32 = 0

    init(limit: TimeAmount, logger: Logger) {
        self.limit = limit
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        start(context)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func channelInactive(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        var ended = false
        for byte in buffer.readableBytesView {
            tail = tail << 8 | UInt32(byte)
            if tail == 0x0D0A_0D0A {
                ended = true
                break
            }
        }
        context.fireChannelRead(data)
        if ended {
            timer?.cancel()
            timer = nil
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        }
    }

    private func start(_ context: ChannelHandlerContext) {
        guard timer == nil else { return }
        let limit = self.limit
        let logger = self.logger
        let channel = context.channel
        timer = context.eventLoop.assumeIsolated().scheduleTask(in: limit) {
            logger.debug("closing a connection whose first request head did not arrive in time", metadata: ["limit": "\(limit)"])
            channel.close(promise: nil)
        }
    }
}

/// A server's connections with `RequestHeadDeadlineHandler` first in each pipeline.
struct RequestHeadDeadlineChannel<Inner: ServerChildChannel>: ServerChildChannel {
    let inner: Inner
    let limit: TimeAmount

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Inner.Value> {
        do {
            try channel.pipeline.syncOperations.addHandler(RequestHeadDeadlineHandler(limit: limit, logger: logger), position: .first)
        } catch {
            return channel.eventLoop.makeFailedFuture(error)
        }
        return inner.setup(channel: channel, logger: logger)
    }

    func handle(value: Inner.Value, logger: Logger) async {
        await inner.handle(value: value, logger: logger)
    }
}
