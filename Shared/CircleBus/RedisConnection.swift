import CircleConfig
import DequeModule
import NIOCore
import NIOPosix

/// One command to write: its arguments, and where its reply goes (nil: the reply is a push).
struct RESPCommand {
    let arguments: [ByteBuffer]
    let promise: EventLoopPromise<RESPValue>?
}

/// The channel handler: encodes commands, parses replies with hiredis, matches them in order.
///
/// A reply goes to the oldest waiting command; with none waiting it is a push (pub/sub traffic)
/// and goes to `onPush`. A subscriber connection therefore sends no command that waits for a
/// reply once it has subscribed.
final class RESPHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = RESPCommand
    typealias OutboundOut = ByteBuffer

    private let reader = HiredisReader()
    private var waiting: Deque<EventLoopPromise<RESPValue>> = []
    private let onPush: (@Sendable (RESPValue) -> Void)?
    private let onClose: (@Sendable () -> Void)?

    init(onPush: (@Sendable (RESPValue) -> Void)?, onClose: (@Sendable () -> Void)?) {
        self.onPush = onPush
        self.onClose = onClose
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let command = unwrapOutboundIn(data)
        var buffer = context.channel.allocator.buffer(capacity: 64)
        RESPEncoder.encode(command.arguments, into: &buffer)
        if let reply = command.promise { waiting.append(reply) }
        context.write(wrapOutboundOut(buffer), promise: promise)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        do {
            try reader.feed(unwrapInboundIn(data))
            while let value = try reader.next() {
                if let reply = waiting.popFirst() {
                    reply.succeed(value)
                } else {
                    onPush?(value)
                }
            }
        } catch {
            context.fireErrorCaught(error)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(RedisBusError.connectionClosed)
        onClose?()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll(error)
        context.close(promise: nil)
    }

    private func failAll(_ error: any Error) {
        while let reply = waiting.popFirst() { reply.fail(error) }
    }
}

/// A TCP connection to Redis speaking RESP, with pipelining: many commands may be in flight.
final class RedisConnection: Sendable {
    let channel: any Channel

    private init(channel: any Channel) { self.channel = channel }

    var isActive: Bool { channel.isActive }

    /// Connects, authenticates and selects the database.
    static func connect(
        _ settings: RedisSettings,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        timeout: TimeAmount = .seconds(3),
        onPush: (@Sendable (RESPValue) -> Void)? = nil,
        onClose: (@Sendable () -> Void)? = nil
    ) async throws -> RedisConnection {
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(timeout)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelOption(.socketOption(.so_keepalive), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(RESPHandler(onPush: onPush, onClose: onClose))
                }
            }
            .connect(host: settings.host, port: settings.port)
            .get()
        let connection = RedisConnection(channel: channel)
        do {
            if let password = settings.password {
                try await connection.command(["AUTH", password])
            }
            if settings.database != 0 {
                try await connection.command(["SELECT", String(settings.database)])
            }
        } catch {
            connection.close()
            throw error
        }
        return connection
    }

    /// Sends a command and waits for its reply; an error reply throws.
    @discardableResult
    func send(_ arguments: [ByteBuffer]) async throws -> RESPValue {
        let promise = channel.eventLoop.makePromise(of: RESPValue.self)
        channel.writeAndFlush(RESPCommand(arguments: arguments, promise: promise)).cascadeFailure(to: promise)
        let value = try await promise.futureResult.get()
        if case .error(let message) = value { throw RedisBusError.server(message) }
        return value
    }

    /// Sends commands in order with one flush and waits for every reply: whether each succeeded.
    func sendAll(_ commands: [[ByteBuffer]]) async -> [Bool] {
        let loop = channel.eventLoop
        let promises = commands.map { _ in loop.makePromise(of: RESPValue.self) }
        let channel = self.channel
        loop.execute {
            for (arguments, promise) in zip(commands, promises) {
                channel.write(RESPCommand(arguments: arguments, promise: promise)).cascadeFailure(to: promise)
            }
            channel.flush()
        }
        var accepted: [Bool] = []
        accepted.reserveCapacity(promises.count)
        for promise in promises {
            if let value = try? await promise.futureResult.get(), !value.isError {
                accepted.append(true)
            } else {
                accepted.append(false)
            }
        }
        return accepted
    }

    /// Sends a command of text arguments and waits for its reply.
    @discardableResult
    func command(_ arguments: [String]) async throws -> RESPValue {
        try await send(arguments.map { ByteBuffer(string: $0) })
    }

    /// Sends a command whose reply arrives as a push (subscriber connections).
    func sendPushing(_ arguments: [String]) {
        channel.writeAndFlush(RESPCommand(arguments: arguments.map { ByteBuffer(string: $0) }, promise: nil), promise: nil)
    }

    func close() {
        channel.close(promise: nil)
    }
}
