import CircleBus
import CircleCore
import CircleEvents
import CircleHTTP
import Foundation
import GatewayCore
import HummingbirdWebSocket
import Logging
import NIOCore
import NIOWebSocket
import Synchronization

/// One client's realtime socket: authenticate with the first frame, catch up from the event
/// log, then deliver live frames, each stored event exactly once and in order.
final class EventSocket: Sendable {
    let state: GatewayState
    let bus: any MessageBus
    let registry: SocketRegistry
    let typing: TypingRelay
    let fanOut: FanOutDelivery
    let outbound: WebSocketOutboundWriter
    let address: String
    let channel: any Channel
    let logger: Logger

    init(state: GatewayState, bus: any MessageBus, registry: SocketRegistry, typing: TypingRelay, fanOut: FanOutDelivery, outbound: WebSocketOutboundWriter,
         address: String, channel: any Channel, logger: Logger) {
        self.state = state
        self.bus = bus
        self.registry = registry
        self.typing = typing
        self.fanOut = fanOut
        self.outbound = outbound
        self.address = address
        self.channel = channel
        self.logger = logger
    }

    static let authTimeout: TimeAmount = .seconds(10)
    /// The largest client message, whole (the server's WebSocket frame limit is the same, so one
    /// frame cannot carry more either).
    static let maxInboundMessage = ServerBuilder.maxInboundSocketFrame

    /// The first frame a client sends.
    struct AuthFrame: Decodable {
        let type: String
        let token: String
        let since: Int64?
        /// This client's device id (16 bytes, base64url): it receives the call signals sent to it.
        let device: String?
    }

    /// The socket's life, in the task the server gives it: read the first frame (within the time
    /// limit), authenticate and set up (in a task that ends with it), then only read (and drop)
    /// what the client sends until the socket closes; deliveries run in `LiveSocket`. A Swift
    /// task keeps the memory of its deepest call until it ends, and this one lives as long as the
    /// socket, so the one-off deep work runs elsewhere: an idle socket keeps one task with small
    /// frames (BENCHMARKS.md, gateway memory).
    @inline(never)
    func run(_ inbound: WebSocketInboundStream) async throws {
        var messages = inbound.messages(maxSize: Self.maxInboundMessage).makeAsyncIterator()
        // The time limit is a timer of the event loop, not a sleeping task: it costs almost
        // nothing once cancelled.
        let channel = self.channel
        let expired = ExpiryFlag()
        let timer = channel.eventLoop.scheduleTask(in: Self.authTimeout) {
            expired.fired.store(true, ordering: .relaxed)
            SocketClose.write(SocketClose.unauthorized, reason: "authenticate within 10 seconds", to: channel)
        }
        let first = try await messages.next()
        timer.cancel()
        if expired.fired.load(ordering: .relaxed) { return }
        // Nil: the client left.
        guard case .text(let text)? = first else {
            if first != nil { try await outbound.close(SocketClose.unauthorized, reason: "the first frame must be {\"type\":\"auth\",\"token\":...}") }
            return
        }
        guard let live = try await shortLived({ try await self.open(text) }) else { return }
        do {
            // Client frames after authentication: the named limit `socket-frames` (by default a
            // burst of 40, then 10 a second: typing needs one per conversation every 2 s).
            let limit = state.rateLimiter.limit(.socketFrames)
            var frames = TokenBucket(capacity: limit.capacity, period: limit.period)
            while let message = try await messages.next() {
                guard frames.take() == nil else {
                    state.rateLimiter.countRefusal(.socketFrames)
                    // Nothing more is delivered once the close frame is on its way.
                    live.stop()
                    try await outbound.close(SocketClose.tooManyFrames, reason: "too many frames (limit socket-frames: \(limit.capacity) per \(limit.period.components.seconds) s)")
                    break
                }
                guard case .text(let text) = message else { continue }
                try await shortLived { await self.received(text, from: live.userId) }
            }
        } catch {}
        await live.finish()
    }

    /// What a client may send once authenticated: typing indicators. Anything else is dropped.
    struct ClientFrame: Decodable {
        let type: String
        let data: TypingRelay.Request?
    }

    func received(_ text: String, from userId: String) async {
        guard let frame = try? JSONDecoder().decode(ClientFrame.self, from: Data(text.utf8)), frame.type == "typing", let request = frame.data else { return }
        await typing.relay(request, from: userId)
    }

    /// Checks the first frame, subscribes to the user's events (their channel and the replica's
    /// fan-out), registers with the registry and queues the catch-up; nil when the socket was
    /// closed instead.
    func open(_ text: String) async throws -> LiveSocket? {
        guard let auth = try? JSONDecoder().decode(AuthFrame.self, from: Data(text.utf8)), auth.type == "auth" else {
            try await outbound.close(SocketClose.unauthorized, reason: "the first frame must be {\"type\":\"auth\",\"token\":...}")
            return nil
        }
        if let since = auth.since, since < 0 {
            try await outbound.close(SocketClose.unauthorized, reason: "since must be at least 0")
            return nil
        }
        if let device = auth.device, Base64URL.decode(device)?.count != 16 {
            try await outbound.close(SocketClose.unauthorized, reason: "device must be 16 bytes of base64url")
            return nil
        }
        guard let identity = try await state.sessions.identity(forToken: auth.token) else {
            try await outbound.close(SocketClose.unauthorized, reason: "unauthorized")
            return nil
        }
        await state.activity.seen(sessionId: identity.sessionId, ip: address)
        let live = LiveSocket(socket: self, delivery: SocketDelivery(userId: identity.userId, sessionId: identity.sessionId, device: auth.device), userId: identity.userId)
        do {
            // Subscribe before reading the log, so nothing falls between the two.
            live.subscription = try await bus.subscribe(to: EventPublisher.channel(forUser: identity.userId)) { [live] event in
                live.push(.bus(event))
            }
            await live.join(fanOut)
            let keepalive = SocketKeepalive(channel: channel)
            try await keepalive.watch()
            guard let registration = await registry.register(identity, keepalive: keepalive, signal: { [live] in live.push(.signal($0)) }) else {
                await live.finish()
                try await outbound.close(SocketClose.serverRestart, reason: "server restart")
                return nil
            }
            live.registration = (registry, registration)
        } catch {
            await live.finish()
            throw error
        }
        live.start(since: auth.since)
        return live
    }

    /// Handles one input; false when the socket is done (its close frame is on its way).
    func handle(_ input: LiveSocket.Input, delivery: SocketDelivery) async -> Bool {
        do {
            switch input {
            case .start(let since):
                return try await delivery.start(since: since, socket: self)
            case .bus(.message(let payload)):
                return try await delivery.live(payload, socket: self)
            case .frame(let frame):
                return try await delivery.live(frame, socket: self)
            case .bus(.gap):
                return try await delivery.recover(socket: self)
            case .signal(let signal):
                // Dropped after the grace period even if the close frame cannot be written.
                SocketClose.dropAfterGrace(channel)
                switch signal {
                case .revoked: try await outbound.close(SocketClose.unauthorized, reason: "session revoked")
                case .shutdown: try await outbound.close(SocketClose.serverRestart, reason: "server restart")
                case .silent: try await outbound.close(.goingAway, reason: "no answer to pings")
                case .replaced: try await outbound.close(SocketClose.replaced, reason: "replaced by newer sockets of this device or member")
                }
            }
        } catch {
            // A client that left is not worth a warning; anything else is.
            logger.log(level: channel.isActive ? .warning : .debug, "event delivery failed; closing the socket", metadata: ["error": "\(error)"])
            try? await outbound.close(.unexpectedServerError, reason: "server error: reconnect with since")
        }
        return false
    }

    /// Runs `body` in a task of its own that ends with it, so the memory of its calls is given
    /// back at once instead of staying with the socket's task (see `run`). An event-loop
    /// operation: the task is started from the event loop's thread, outside any task, because
    /// creating a child of the socket's task would take memory from that task's allocator, which
    /// it keeps.
    func shortLived<T: Sendable>(_ body: @escaping @Sendable () async throws -> T) async throws -> T {
        let promise = channel.eventLoop.makePromise(of: T.self)
        channel.eventLoop.execute { promise.completeWithTask(body) }
        return try await promise.futureResult.get()
    }

    func send(_ frame: EventFrame) async throws {
        // The body is already UTF-8 JSON: written as it is, without a round trip through String.
        try await outbound.write(.custom(WebSocketFrame(fin: true, opcode: .text, data: frame.body)))
    }
}

/// Set once the authentication time limit has passed.
final class ExpiryFlag: Sendable {
    let fired = Atomic<Bool>(false)
}
