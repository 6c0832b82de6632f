import GatewayCore
import GatewayStore
import NIOCore
import NIOWebSocket
import Synchronization

/// When a realtime socket last sent anything and was last pinged. The registry pings every
/// socket from its one timer (no task per socket: an idle socket's memory, BENCHMARKS.md) and
/// closes one that stayed silent too long; a pong is bytes read like any other frame.
final class SocketKeepalive: Sendable {
    private let channel: any Channel
    /// Uptime in nanoseconds of the last read, of the last ping sent, and of the first ping sent
    /// after the last read (unanswered while it is later than the last read).
    private let lastHeard: Atomic<UInt64>
    private let lastPing: Atomic<UInt64>
    private let firstPingSinceHeard: Atomic<UInt64>

    init(channel: any Channel, now: NIODeadline = .now()) {
        self.channel = channel
        lastHeard = Atomic(now.uptimeNanoseconds)
        lastPing = Atomic(now.uptimeNanoseconds)
        firstPingSinceHeard = Atomic(now.uptimeNanoseconds)
    }

    /// Starts noting reads: a handler first in the socket's pipeline, where every byte arrives.
    func watch() async throws {
        try await channel.pipeline.addHandler(ReadActivityHandler(keepalive: self), position: .first).get()
    }

    func heard(at now: NIODeadline = .now()) {
        lastHeard.store(now.uptimeNanoseconds, ordering: .relaxed)
    }

    /// Whether nothing was read for longer than `limit`, and the first ping sent after the
    /// client last spoke is unanswered for `answerTime`. Judged by pings actually sent, so late
    /// ticks of the registry's timer (a loaded machine, a slow database) never make a client
    /// that answers look silent.
    func isSilent(for limit: Duration, answerTime: Duration, at now: NIODeadline = .now()) -> Bool {
        let heard = lastHeard.load(ordering: .relaxed)
        let pinged = firstPingSinceHeard.load(ordering: .relaxed)
        guard now.uptimeNanoseconds > heard, Duration.nanoseconds(Int64(now.uptimeNanoseconds - heard)) > limit else { return false }
        return pinged > heard && now.uptimeNanoseconds >= pinged && Duration.nanoseconds(Int64(now.uptimeNanoseconds - pinged)) >= answerTime
    }

    /// Sends a ping when the last one is `interval` old. Written straight to the channel (the
    /// frame encoder is below the async writer, and a control frame may go between any two
    /// frames), so a client that stopped reading holds up nobody.
    func pingIfDue(every interval: Duration, at now: NIODeadline = .now()) {
        let last = lastPing.load(ordering: .relaxed)
        guard now.uptimeNanoseconds >= last, Duration.nanoseconds(Int64(now.uptimeNanoseconds - last)) >= interval, channel.isActive else { return }
        lastPing.store(now.uptimeNanoseconds, ordering: .relaxed)
        if firstPingSinceHeard.load(ordering: .relaxed) <= lastHeard.load(ordering: .relaxed) {
            firstPingSinceHeard.store(now.uptimeNanoseconds, ordering: .relaxed)
        }
        var payload = channel.allocator.buffer(capacity: 8)
        payload.writeInteger(now.uptimeNanoseconds)
        channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .ping, data: payload), promise: nil)
    }
}

/// Notes every read of a socket for its keepalive and passes the bytes on unchanged.
final class ReadActivityHandler: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let keepalive: SocketKeepalive

    init(keepalive: SocketKeepalive) {
        self.keepalive = keepalive
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        keepalive.heard()
        context.fireChannelRead(data)
    }
}
