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
        indirect case frame(LiveFrame)
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
    /// Where live frames' encodings are written: below the WebSocket encoder, which has nothing
    /// to add (found once, on the event loop).
    private let encoder: NIOLoopBoundBox<ChannelHandlerContext?>
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
        self.encoder = .makeEmptyBox(valueType: ChannelHandlerContext.self, eventLoop: socket.channel.eventLoop)
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
        if enqueue(.start(since: since), first: true) == .deliver { startDelivery() }
    }

    /// Queues an input. Past the queue limit the client is too slow: it is told to resume
    /// (4008) and dropped if even that cannot be written within the grace period. This runs
    /// outside the delivery, which may be stuck writing to a client that stopped reading.
    func push(_ input: Input) {
        if enqueue(input, first: false) == .deliver { startDelivery() }
    }

    /// Queues a live frame for several members (`FanOutDelivery`). True when nothing was being
    /// delivered: the caller then has `writeQueuedFrames` run on the socket's event loop (one
    /// operation per loop for all such sockets, and no delivery task). Otherwise the delivery
    /// under way takes it, or the frames queued meanwhile, written together.
    func pushLive(_ frame: LiveFrame) -> Bool {
        enqueue(.frame(frame), first: false) == .deliver
    }

    private enum Outcome { case queued, deliver, overflowed, dropped }

    private func enqueue(_ input: Input, first: Bool) -> Outcome {
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
        if outcome == .overflowed {
            SocketClose.write(SocketClose.tooSlow, reason: "too slow: resume with since", to: socket.channel)
            socket.logger.notice("closed a socket that fell behind")
        }
        return outcome
    }

    /// On the socket's event loop, after `pushLive` said so: writes the live frames at the head
    /// of the queue (those queued since are written too, with one flush: a socket that falls
    /// behind in a burst catches up in fewer writes), then hands what else is queued to a
    /// delivery. A client that is not reading gets its frames through a delivery, which waits for
    /// it and lets the queue overflow if it never reads.
    func writeQueuedFrames() {
        let channel = socket.channel
        channel.eventLoop.assertInEventLoop()
        var wrote = false
        if encoder.value == nil { encoder.value = try? channel.pipeline.syncOperations.context(handlerType: WebSocketFrameEncoder.self) }
        let encoder = encoder.value
        // Checked per frame: a socket being closed gets no more (none may follow a close frame).
        while channel.isWritable, let live = mailbox.withLock({ box -> LiveFrame? in
            guard !box.finished, case .frame(let live)? = box.inputs.first else { return nil }
            box.inputs.removeFirst()
            return live
        }) {
            if let encoder {
                encoder.write(NIOAny(live.wire), promise: nil)
            } else {
                channel.write(WebSocketFrame(fin: true, opcode: .text, data: live.frame.body), promise: nil)
            }
            wrote = true
        }
        if wrote { channel.flush() }
        let deliver = mailbox.withLock { box -> Bool in
            guard !box.finished, !box.inputs.isEmpty else {
                box.delivering = false
                if box.inputs.capacity > Self.idleCapacity { box.inputs = CircularBuffer(initialCapacity: 2) }
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

/// A live frame for several members (`FanOutDelivery`), with its WebSocket encoding made once
/// for all of them: a server's frames are not masked, so every socket is sent the same bytes
/// (shared, not copied), one buffer per write.
struct LiveFrame: Sendable {
    let frame: EventFrame
    /// The whole WebSocket text frame: header and body.
    let wire: ByteBuffer

    init(_ frame: EventFrame) {
        self.frame = frame
        let body = frame.body
        var wire = ByteBuffer()
        wire.reserveCapacity(body.readableBytes + 10)
        wire.writeInteger(UInt8(0x81))  // FIN, text
        switch body.readableBytes {
        case ..<126: wire.writeInteger(UInt8(body.readableBytes))
        case ..<65_536: wire.writeInteger(UInt8(126)); wire.writeInteger(UInt16(body.readableBytes))
        default: wire.writeInteger(UInt8(127)); wire.writeInteger(UInt64(body.readableBytes))
        }
        wire.writeImmutableBuffer(body)
        self.wire = wire
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
