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
    let services: SocketServices
    let outbound: WebSocketOutboundWriter
    let address: String
    let channel: any Channel
    let logger: Logger

    init(services: SocketServices, outbound: WebSocketOutboundWriter, address: String, channel: any Channel, logger: Logger) {
        self.services = services
        self.outbound = outbound
        self.address = address
        self.channel = channel
        self.logger = logger
    }

    var state: GatewayState { services.state }
    var bus: any MessageBus { services.bus }
    var registry: SocketRegistry { services.registry }
    var typing: TypingRelay { services.typing }
    var fanOut: FanOutDelivery { services.fanOut }

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
    /// limit), authenticate and set up (in a task that ends with it), then only read what the
    /// client sends until the socket closes; deliveries run in `LiveSocket`. A Swift task keeps
    /// the memory of its deepest call until it ends, and this one lives as long as the socket, so
    /// the one-off deep work runs elsewhere and this frame holds only what the reading loop needs:
    /// the rare paths are functions of their own, and what it awaits is not inlined
    /// (`@inline(never)`): inlined, their locals join this frame, which then no longer fits the
    /// task's slab and costs every socket a second 1 KiB one. An idle socket keeps one task with
    /// small frames (BENCHMARKS.md, gateway memory).
    @inline(never)
    func run(_ inbound: WebSocketInboundStream) async throws {
        let client = ClientReader(inbound, frames: frameBucket())
        guard let first = try await firstFrame(client),
              let live = try await shortLived({ try await self.open(first) }) else { return }
        do {
            while let message = try await client.next() {
                guard client.frames.take() == nil else {
                    try await closeForFrameRate(live)
                    break
                }
                guard case .text(let text) = message else { continue }
                try await shortLived { await self.received(text, from: live.userId) }
            }
        } catch {}
        await live.finish()
    }

    /// The first frame's text, read within the time limit; nil when the socket was closed or
    /// the client left instead.
    @inline(never)
    private func firstFrame(_ client: ClientReader) async throws -> String? {
        // The time limit is a timer of the event loop, not a sleeping task: it costs almost
        // nothing once cancelled.
        let channel = self.channel
        let expired = ExpiryFlag()
        let timer = channel.eventLoop.scheduleTask(in: Self.authTimeout) {
            expired.fired.store(true, ordering: .relaxed)
            SocketClose.write(SocketClose.unauthorized, reason: "authenticate within 10 seconds", to: channel)
        }
        let first = try await client.next()
        timer.cancel()
        if expired.fired.load(ordering: .relaxed) { return nil }
        // Nil: the client left.
        guard case .text(let text)? = first else {
            if first != nil { try await outbound.close(SocketClose.unauthorized, reason: "the first frame must be {\"type\":\"auth\",\"token\":...}") }
            return nil
        }
        return text
    }

    /// Client frames after authentication: the named limit `socket-frames` (by default a burst
    /// of 40, then 10 a second: typing needs one per conversation every 2 s).
    private func frameBucket() -> TokenBucket {
        let limit = state.rateLimiter.limit(.socketFrames)
        return TokenBucket(capacity: limit.capacity, period: limit.period)
    }

    /// Closes a socket that sent frames faster than `socket-frames` allows.
    @inline(never)
    private func closeForFrameRate(_ live: LiveSocket) async throws {
        let limit = state.rateLimiter.limit(.socketFrames)
        state.rateLimiter.countRefusal(.socketFrames)
        // Nothing more is delivered once the close frame is on its way.
        live.stop()
        try await outbound.close(SocketClose.tooManyFrames, reason: "too many frames (limit socket-frames: \(limit.capacity) per \(limit.period.components.seconds) s)")
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
            case .frame(let live):
                return try await delivery.live(live.frame, socket: self)
            case .bus(.gap):
                return try await delivery.recover(socket: self)
            case .signal(let signal):
                // Dropped after the grace period even if the close frame cannot be written.
                SocketClose.dropAfterGrace(channel)
                switch signal {
                case .revoked:
                    // The client is told first when the log holds its session's end (the revocation
                    // is announced after that event's commit); delivering it closes the socket.
                    if (try? await delivery.catchUp(socket: self)) == false { return false }
                    try await outbound.close(SocketClose.unauthorized, reason: "session revoked")
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
    @inline(never)
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

/// What the client sends, read only by the socket's own task: its messages and the bucket that
/// limits their rate. A class, so that task's frame holds one reference instead of both (the
/// task keeps its frames' memory for the socket's life: `EventSocket.run`).
private final class ClientReader {
    private var messages: WebSocketInboundMessageStream.AsyncIterator
    var frames: TokenBucket

    init(_ inbound: WebSocketInboundStream, frames: TokenBucket) {
        messages = inbound.messages(maxSize: EventSocket.maxInboundMessage).makeAsyncIterator()
        self.frames = frames
    }

    @inline(never)
    func next() async throws -> WebSocketMessage? {
        try await messages.next()
    }
}
