import CircleBus
import NIOCore
import Synchronization

/// An authenticated socket's inputs, delivered in order, and its registrations. Producers (the
/// bus and the registry, by callback) queue inputs; a delivery task exists only while there are
/// inputs to deliver.
final class LiveSocket: Sendable {
    /// What a socket is given to do, in order.
    enum Input: Sendable {
        /// Catch up from this sequence number (or start at the head), then say `ready`.
        case start(since: Int64?)
        case bus(BusEvent)
        case signal(SocketSignal)
    }

    private struct Mailbox {
        /// Small until needed: most sockets are idle.
        var inputs = CircularBuffer<Input>(initialCapacity: 2)
        /// Nothing is delivered before the catch-up is queued (events that arrive between
        /// subscribing and `start` wait behind it).
        var started = false
        var delivering = false
        var finished = false
    }

    /// Frames waiting to be written before the socket counts as too slow.
    static let queueLimit = 2048
    /// Above this many slots, an emptied queue is replaced by a small one.
    static let idleCapacity = 64

    private let socket: EventSocket
    private let delivery: SocketDelivery
    /// The member the socket belongs to.
    let userId: String
    private let mailbox = Mutex(Mailbox())
    private let registrations = Mutex<(subscription: BusSubscription?, registration: (SocketRegistry, UInt64)?)>((nil, nil))

    init(socket: EventSocket, delivery: SocketDelivery, userId: String) {
        self.socket = socket
        self.delivery = delivery
        self.userId = userId
    }

    var subscription: BusSubscription? {
        get { registrations.withLock { $0.subscription } }
        set { registrations.withLock { $0.subscription = newValue } }
    }

    var registration: (SocketRegistry, UInt64)? {
        get { registrations.withLock { $0.registration } }
        set { registrations.withLock { $0.registration = newValue } }
    }

    /// Queues the catch-up, ahead of anything else.
    func start(since: Int64?) {
        enqueue(.start(since: since), first: true)
    }

    /// Queues an input. Past the queue limit the client is too slow: it is told to resume
    /// (4008) and dropped if even that cannot be written within the grace period. This runs
    /// outside the delivery, which may be stuck writing to a client that stopped reading.
    func push(_ input: Input) {
        enqueue(input, first: false)
    }

    private func enqueue(_ input: Input, first: Bool) {
        enum Outcome { case queued, deliver, overflowed, dropped }
        let outcome = mailbox.withLock { box -> Outcome in
            if box.finished { return .dropped }
            if box.inputs.count >= Self.queueLimit, case .bus = input {
                box.finished = true
                box.inputs.removeAll()
                return .overflowed
            }
            if first {
                box.inputs.prepend(input)
                box.started = true
            } else {
                box.inputs.append(input)
            }
            if box.delivering || !box.started { return .queued }
            box.delivering = true
            return .deliver
        }
        switch outcome {
        case .queued, .dropped:
            return
        case .deliver:
            // Not a child of the socket's task on purpose: a task waiting for inputs would stay
            // with every idle socket (its memory, BENCHMARKS.md); this one ends when the queue is
            // empty, and `stop` ends it at the next input.
            Task { await self.deliver() }
        case .overflowed:
            SocketClose.write(SocketClose.tooSlow, reason: "too slow: resume with since", to: socket.channel)
            socket.logger.notice("closed a socket that fell behind")
        }
    }

    /// Delivers queued inputs one at a time until none is left (or the socket is done).
    private func deliver() async {
        while true {
            let next = mailbox.withLock { box -> Input? in
                guard !box.finished, let input = box.inputs.popFirst() else {
                    box.delivering = false
                    // A burst's room is given back once it is delivered (the buffer never shrinks itself).
                    if box.inputs.isEmpty, box.inputs.capacity > Self.idleCapacity { box.inputs = CircularBuffer(initialCapacity: 2) }
                    return nil
                }
                return input
            }
            guard let input = next else { return }
            if await !socket.handle(input, delivery: delivery) {
                stop()
                SocketClose.dropAfterGrace(socket.channel)
                return
            }
        }
    }

    /// Stops deliveries; anything queued is dropped.
    func stop() {
        mailbox.withLock { box in
            box.finished = true
            box.inputs.removeAll()
        }
    }

    /// Stops deliveries and ends the bus subscription and the registration (once): the last
    /// thing the socket's task does.
    func finish() async {
        stop()
        let (subscription, registration) = registrations.withLock { state in
            defer { state = (nil, nil) }
            return (state.subscription, state.registration)
        }
        await subscription?.cancel()
        if let (registry, id) = registration { await registry.unregister(id) }
    }
}
