import CircleBus
import CircleEvents
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// This replica's live sockets by member, for the frames published once for several members
/// (`FanOutFrame`): one subscription to the bus's `fanout` channel, whose frames go to the
/// sockets of the members each one lists. Sockets join before they catch up (`add` waits until
/// the subscription is confirmed), so nothing published after that is missed.
///
/// A `Service`: `run()` subscribes, and unsubscribes on shutdown.
final class FanOutDelivery: Service, Sendable {
    private enum Subscription {
        /// Sockets waiting for the subscription.
        case pending([CheckedContinuation<Void, Never>])
        /// Subscribed, or given up (the process is stopping): nobody waits.
        case settled
    }

    private let bus: any MessageBus
    private let logger: Logger
    private let sockets = Mutex<[String: [ObjectIdentifier: LiveSocket]]>([:])
    private let subscription = Mutex(Subscription.pending([]))

    init(bus: any MessageBus, logger: Logger) {
        self.bus = bus
        self.logger = logger
    }

    /// Adds a member's socket, once the subscription is confirmed.
    func add(_ socket: LiveSocket) async {
        await withCheckedContinuation { continuation in
            let waits = subscription.withLock { state -> Bool in
                guard case .pending(var waiting) = state else { return false }
                waiting.append(continuation)
                state = .pending(waiting)
                return true
            }
            if !waits { continuation.resume() }
        }
        sockets.withLock { $0[socket.userId, default: [:]][ObjectIdentifier(socket)] = socket }
    }

    func remove(_ socket: LiveSocket) {
        sockets.withLock { index in
            index[socket.userId]?[ObjectIdentifier(socket)] = nil
            if index[socket.userId]?.isEmpty == true { index[socket.userId] = nil }
        }
    }

    func run() async throws {
        defer { settle() }
        let subscription = try await bus.subscribe(to: FanOutFrame.channel) { [self] event in receive(event) }
        settle()
        try? await gracefulShutdown()
        await subscription.cancel()
    }

    /// Lets every waiting socket go on.
    private func settle() {
        let waiting = subscription.withLock { state -> [CheckedContinuation<Void, Never>] in
            defer { state = .settled }
            if case .pending(let waiting) = state { return waiting }
            return []
        }
        for continuation in waiting { continuation.resume() }
    }

    /// A frame from the bus: to each listed member's sockets here. A gap (the bus reconnected)
    /// goes to every socket, which then catches up.
    private func receive(_ event: BusEvent) {
        switch event {
        case .gap:
            for socket in sockets.withLock({ $0.values.flatMap(\.values) }) { socket.push(.bus(.gap)) }
        case .message(let payload):
            guard let fanOut = try? FanOutFrame(decoding: payload) else {
                logger.error("a fan-out frame cannot be read", metadata: ["bytes": "\(payload.readableBytes)"])
                return
            }
            var targets: [LiveSocket] = []
            sockets.withLock { index in
                fanOut.forEachRecipient { userId in
                    if let found = index[userId] { targets.append(contentsOf: found.values) }
                }
            }
            guard !targets.isEmpty else { return }
            // Sockets with nothing else to deliver get their frames written on their event loop,
            // one operation per loop; the others have it queued behind what they are delivering.
            let frame = LiveFrame(fanOut.frame)
            var byLoop: [ObjectIdentifier: (loop: any EventLoop, sockets: [LiveSocket])] = [:]
            for socket in targets where socket.pushLive(frame) {
                let loop = socket.eventLoop
                byLoop[ObjectIdentifier(loop), default: (loop, [])].sockets.append(socket)
            }
            for (loop, sockets) in byLoop.values {
                loop.execute { for socket in sockets { socket.writeQueuedFrames() } }
            }
        }
    }
}
