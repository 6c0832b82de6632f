import NIOCore
import NIOWebSocket

/// Close codes of the realtime socket (ARCHITECTURE 11), and closing decided outside the
/// socket's own tasks.
enum SocketClose {
    static let serverRestart = WebSocketErrorCode(codeNumber: 1012)
    static let unauthorized = WebSocketErrorCode(codeNumber: 4001)
    static let tooSlow = WebSocketErrorCode(codeNumber: 4008)
    static let replaced = WebSocketErrorCode(codeNumber: 4009)
    static let tooManyFrames = WebSocketErrorCode(codeNumber: 4029)

    /// How long a socket gets to answer its close frame before the connection is dropped.
    static let grace: TimeAmount = .seconds(10)

    /// Writes a close frame straight into the connection (an event-loop operation, for a close
    /// decided by a timer or by a producer while the socket's tasks may be blocked), then drops
    /// the connection if the client has not closed it within the grace period. The frame queues
    /// behind whatever is being written, whole frame after whole frame.
    static func write(_ code: WebSocketErrorCode, reason: String, to channel: any Channel) {
        var payload = channel.allocator.buffer(capacity: 2 + reason.utf8.count)
        payload.write(webSocketErrorCode: code)
        payload.writeString(reason)
        channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .connectionClose, data: payload), promise: nil)
        dropAfterGrace(channel)
    }

    /// Closes the connection after the grace period unless the client did first.
    static func dropAfterGrace(_ channel: any Channel) {
        channel.eventLoop.scheduleTask(in: grace) { channel.close(promise: nil) }
    }
}
