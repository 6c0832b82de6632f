import CircleBus
import CircleEvents
import NIOCore
import NIOWebSocket
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
        /// A live frame read once for several members (`FanOutDelivery`). Boxed: the frame is
        /// several times the size of the other cases, and every socket's mailbox has room for two
        /// inputs even while idle.
        indirect case frame(EventFrame)
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
    private let registrations = Mutex<Registrations>(Registrations())

    /// What the socket joined, each left once by `finish`.
    struct Registrations {
        var subscription: BusSubscription?
        var registration: (SocketRegistry, UInt64)?
        var fanOut: FanOutDelivery?
    }

    init(socket: EventSocket, delivery: SocketDelivery, userId: String) {
        self.socket = socket
        self.delivery = delivery
        self.userId = userId
    }

    /// The event loop of the socket's connection.
    var eventLoop: any EventLoop { socket.channel.eventLoop }

    var subscription: BusSubscription? {
        get { registrations.withLock { $0.subscription } }
        set { registrations.withLock { $0.subscription = newValue } }
    }

    var registration: (SocketRegistry, UInt64)? {
        get { registrations.withLock { $0.registration } }
        set { registrations.withLock { $0.registration = newValue } }
    }

    /// Joins the replica's fan-out delivery (left by `finish`).
    func join(_ fanOut: FanOutDelivery) async {
        await fanOut.add(self)
        registrations.withLock { $0.fanOut = fanOut }
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
            if box.inputs.count >= Self.queueLimit, input.isFrame {
                box.finished = true
                box.inputs.removeAll()
                return .overflowed
            }
            // A gap already waiting covers this one (each channel of the socket reports the
            // same reconnect).
            if case .bus(.gap) = input, box.inputs.contains(where: \.isGap) { return .queued }
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
            startDelivery()
        case .overflowed:
            SocketClose.write(SocketClose.tooSlow, reason: "too slow: resume with since", to: socket.channel)
            socket.logger.notice("closed a socket that fell behind")
        }
    }

    /// Takes the socket for one frame written by `writeDirectly` when nothing else is queued or
    /// being delivered (the usual case for a frame sent to many members at once): no delivery
    /// task then, and one event-loop operation for all such sockets of a loop. False when the
    /// frame must be pushed instead.
    func claimForDirectWrite() -> Bool {
        mailbox.withLock { box in
            guard box.started, !box.finished, !box.delivering, box.inputs.isEmpty else { return false }
            // Inputs that arrive meanwhile queue behind the frame, as behind a delivery.
            box.delivering = true
            return true
        }
    }

    /// On the socket's event loop, after `claimForDirectWrite`: writes the frame (a live frame,
    /// no sequence number, for any device) and hands the socket back; a client that is not
    /// reading gets the frame through a delivery instead, which waits for it and lets its queue
    /// overflow if it never reads.
    func writeDirectly(_ frame: EventFrame) {
        let channel = socket.channel
        channel.eventLoop.assertInEventLoop()
        let writable = channel.isWritable
        // A socket being closed gets no more frames (none may follow a close frame).
        let open = mailbox.withLock { !$0.finished }
        if writable, open {
            channel.writeAndFlush(WebSocketFrame(fin: true, opcode: .text, data: frame.body), promise: nil)
        }
        let deliver = mailbox.withLock { box -> Bool in
            if !writable, !box.finished { box.inputs.prepend(.frame(frame)) }
            guard !box.finished, !box.inputs.isEmpty else {
                box.delivering = false
                return false
            }
            return true
        }
        if deliver { startDelivery() }
    }

    /// Starts the delivery of queued inputs (the caller set `delivering`). Detached on purpose,
    /// not a child of the socket's task: a task waiting for inputs would stay with every idle
    /// socket (its memory, BENCHMARKS.md); this one ends when the queue is empty, `stop` ends it
    /// at the next input, and at shutdown the registry closes every socket, which stops it.
    private func startDelivery() {
        Task { await self.deliver() }
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
        let left = registrations.withLock { state in
            defer { state = Registrations() }
            return state
        }
        left.fanOut?.remove(self)
        await left.subscription?.cancel()
        if let (registry, id) = left.registration { await registry.unregister(id) }
    }
}

extension LiveSocket.Input {
    /// Whether it is a frame from the bus (which a slow client can let pile up).
    var isFrame: Bool {
        switch self {
        case .bus, .frame: true
        case .start, .signal: false
        }
    }

    var isGap: Bool {
        if case .bus(.gap) = self { return true }
        return false
    }
}
