import ArgumentParser
import AsyncHTTPClient
import CircleCore
import CircleProtocol
import Foundation
import Logging
import NIOCore
import Synchronization

/// Presence and typing at scale: N members, each in K conversations of G members, all online.
/// Measures how long a presence change takes to reach every online contact, how long typing
/// frames take to reach the conversation's members at a given rate, and the presence service's
/// memory per online member.
struct PresenceBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "presence",
        abstract: "Presence changes and typing frames to N connected members in K conversations of G members each.",
        discussion: "Needs open registration. The gateway, messaging and presence URLs may be one server (circle serve) or nginx."
    )

    @Option(help: "The gateway's base URL (registration, sockets).") var url = "http://127.0.0.1:8080"
    @Option(help: "The messaging service's base URL (default: --url).") var messagingURL: String?
    @Option(help: "The presence service's base URL (default: --url).") var presenceURL: String?
    @Option(help: "Members, all connected.") var users = 10_000
    @Option(help: "Conversations each member is in.") var perUser = 20
    @Option(help: "Members of each conversation.") var groupSize = 50
    @Option(help: "Presence changes to measure (one at a time, spaced).") var changes = 200
    @Option(help: "Milliseconds between presence changes.") var changeGap = 50
    @Option(help: "Typing frames per second.") var typingRate = 1000
    @Option(help: "Seconds of typing.") var typingSeconds = 10
    @Option(help: "The presence process's id, for its memory per online member.") var presencePid: Int32?
    @Option(help: "CPU of these processes over the presence phase: name=pid,...") var cpu = ""
    @Option(help: "Requests in flight while setting up.") var concurrency = 64

    func run() async throws {
        ProcessMemory.raiseFileLimit()
        let messaging = messagingURL ?? url
        let presence = presenceURL ?? url
        let setupStart = ContinuousClock.now
        // 1. Members.
        let accounts = (0..<users).map { BenchAccount(username: "p\($0)x\(UInt16.random(in: 0...UInt16.max))") }
        let tokens = try await Self.inParallel(accounts.indices, width: concurrency) { index in try await accounts[index].register(at: url) }
        // 2. Conversations.
        let layout = ConversationLayout(users: users, perUser: perUser, groupSize: groupSize)
        let groups = layout.groups
        let conversationIds = try await Self.inParallel(groups.indices, width: concurrency) { index in
            try await Self.createConversation(groups[index], accounts: accounts, token: tokens[groups[index][0]], at: messaging)
        }
        var contacts = [Set<Int>](repeating: [], count: users)
        for group in groups {
            for member in group { contacts[member].formUnion(group) }
        }
        for member in 0..<users { contacts[member].remove(member) }
        let averageContacts = Double(contacts.map(\.count).reduce(0, +)) / Double(users)
        report("setup: \(users) members, \(groups.count) conversations of \(groupSize) (\(perUser) each, \(String(format: "%.0f", averageContacts)) contacts on average) in \(ContinuousClock.now - setupStart)")

        // 3. Everyone online.
        let memoryBefore = try presencePid.map { try ProcessMemory.residentKiB(pid: $0) }
        let indexOf = Dictionary(uniqueKeysWithValues: accounts.enumerated().map { ($1.userId, $0) })
        let clock = LatencyClock()
        let sockets = SocketSet()
        let ready = ReadyCounter()
        guard let gateway = URL(string: url), let host = gateway.host, let port = gateway.port else { throw BenchError("--url needs a host and a port: \(url)") }
        let logger = quietLogger()
        let retries = Tally()
        let connectStart = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for member in 0..<users {
                if member >= concurrency * 2 { await ready.waitUntil(member - concurrency * 2 + 1) }
                group.addTask {
                    // A socket the gateway closes before it is ready (an overloaded gateway can
                    // let the 10 s authentication limit pass) connects again, as a client would;
                    // after five tries it counts as failed.
                    for attempt in 0..<5 {
                        if attempt > 0 {
                            retries.add()
                            try? await Task.sleep(for: .seconds(1))
                        }
                        // Ready, or closed first.
                        let outcome = Outcome()
                        guard let socket = try? await BenchSocket.connect(host: host, port: port, path: "/api/v1/events", onText: { bytes in
                            let fields = FrameFields(bytes)
                            if fields.type == "ready" { outcome.settle(true) } else { clock.received(fields, by: member, indexOf: indexOf) }
                        }, onClose: { outcome.settle(false) }) else {
                            logger.debug("connect failed", metadata: ["member": "\(member)"])
                            continue
                        }
                        socket.send("{\"type\":\"auth\",\"token\":\"\(tokens[member])\"}")
                        if await outcome.value {
                            sockets.add(member, socket)
                            await ready.increment(failed: false)
                            return
                        }
                    }
                    await ready.increment(failed: true)
                }
            }
            try await group.waitForAll()
        }
        await ready.waitUntil(users)
        guard await ready.failed == 0 else { throw BenchError("\(await ready.failed) of \(users) sockets failed (ulimit -n?)") }
        report("connected \(users) sockets in \(ContinuousClock.now - connectStart) (\(retries.value) connected again after the gateway closed them before they were ready)")
        // The connect wave: each member coming online is a frame to every contact already
        // online (about half of all contact pairs). Measured as a throughput, and let to end
        // before anything is timed, so no figure below waits behind it.
        let wave = await Self.settle { clock.frames }
        report("connect wave: \(wave.frames) frames delivered in \(wave.took) after the last socket was ready (\(String(format: "%.0f", Double(wave.frames) / max(0.001, Double(wave.took.milliseconds) / 1000))) /s)")
        if let pid = presencePid, let before = memoryBefore {
            let after = try ProcessMemory.residentKiB(pid: pid)
            report("presence RSS: \(before) KiB before, \(after) KiB with \(users) online: \(String(format: "%.2f", Double(after - before) / Double(users))) KiB per online member")
        }

        // 4. Presence changes, one at a time: each must reach every online contact.
        let cpuTime = cpu.isEmpty ? nil : try ProcessCPU(cpu)
        let cpuStart = cpuTime?.sample()
        clock.reset()
        var expected = 0
        // Each change flips its member between online and busy, so every one is seen.
        var busy = Set<Int>()
        for _ in 0..<changes {
            let member = Int.random(in: 0..<users)
            let state = busy.contains(member) ? "online" : "busy"
            if busy.remove(member) == nil { busy.insert(member) }
            expected += contacts[member].count
            clock.expectPresence(of: accounts[member].userId, state: state)
            try await Self.put(presence + "/api/v1/presence", "{\"state\":\"\(state)\"}", token: tokens[member])
            try await Task.sleep(for: .milliseconds(changeGap))
        }
        _ = await Self.settle { clock.frames }
        let presenceLatency = LatencySummary(clock.presenceLatencies())
        report("presence: \(changes) changes, \(presenceLatency.count) of \(expected) deliveries to online contacts; latency \(presenceLatency.text)")
        if let cpuTime, let cpuStart {
            report("  CPU ms per frame delivered (\(clock.frames) frames): " + cpuTime.perMessage(from: cpuStart, to: cpuTime.sample(), messages: max(1, clock.frames),
                                                                          server: Set(cpuTime.processes.map(\.name)).subtracting(["bench"])))
        }

        // 5. Quiet: what each process spends with every member connected and nothing sent
        // (keepalive pings, lease renewals, the session check), to read the typing figures net of it.
        var idle: ProcessCPU.Baseline?
        if let cpuTime {
            let (start, from) = (cpuTime.sample(), ContinuousClock.now)
            try await Task.sleep(for: .seconds(5))
            let baseline = ProcessCPU.Baseline(from: start, to: cpuTime.sample(), over: ContinuousClock.now - from)
            report("  idle, CPU ms per second: " + baseline.describe(cpuTime.processes.map(\.name)))
            idle = baseline
        }

        // 6. Typing at a steady rate, each frame from a different (member, conversation) pair so
        // the per-pair limit (one per 2 s) never drops one.
        clock.reset()
        let typingCPUStart = cpuTime?.sample()
        let typingFrom = ContinuousClock.now
        let pairs = layout.shuffledPairs(upTo: typingRate * typingSeconds)
        let total = pairs.count
        let sendingTook = try await paced(pairs, perSecond: typingRate) { member, conversation in
            clock.expectTyping(from: accounts[member].userId, in: conversationIds[conversation])
            sockets.send(member, "{\"type\":\"typing\",\"data\":{\"conversationId\":\"\(conversationIds[conversation])\",\"state\":\"start\"}}")
        }
        _ = await Self.settle { clock.frames }
        let typingLatency = LatencySummary(clock.typingLatencies())
        report("typing: \(total) frames in \(sendingTook) \(rateText(total, over: sendingTook)), \(typingLatency.count) of \(total * (groupSize - 1)) deliveries; latency \(typingLatency.text)")
        if let cpuTime, let typingCPUStart {
            let end = cpuTime.sample()
            let server = Set(cpuTime.processes.map(\.name)).subtracting(["bench"])
            report("  CPU ms per typing frame sent (\(total)): " + cpuTime.perMessage(from: typingCPUStart, to: end, messages: max(1, total), server: server))
            report("  CPU ms per typing delivery (\(clock.frames)): " + cpuTime.perMessage(from: typingCPUStart, to: end, messages: max(1, clock.frames), server: server))
            if let idle {
                // The same, less what the processes spent per second while quiet, over the
                // phase's length: what the frames themselves added, if the idle work went on
                // unchanged meanwhile.
                let net = idle.subtracted(from: typingCPUStart, over: ContinuousClock.now - typingFrom)
                report("  CPU ms per typing frame sent, net of idle: " + cpuTime.perMessage(from: net, to: end, messages: max(1, total), server: server))
            }
        }
        sockets.closeAll()
    }

    /// Waits until no frame has arrived for two seconds (at most ten minutes); the frames that
    /// arrived meanwhile and how long it took until the last one.
    static func settle(_ frames: () -> Int) async -> (frames: Int, took: Duration) {
        let start = ContinuousClock.now
        let before = frames()
        var seen = before
        var lastChange = start
        while ContinuousClock.now - lastChange < .seconds(2), ContinuousClock.now - start < .seconds(600) {
            try? await Task.sleep(for: .milliseconds(250))
            let now = frames()
            if now != seen { (seen, lastChange) = (now, ContinuousClock.now) }
        }
        return (seen - before, lastChange - start)
    }

    /// Runs `body` for each index with at most `width` at once; results in index order.
    static func inParallel<T: Sendable>(_ indices: Range<Int>, width: Int, _ body: @escaping @Sendable (Int) async throws -> T) async throws -> [T] {
        try await withThrowingTaskGroup(of: (Int, T).self) { group in
            var results = [T?](repeating: nil, count: indices.count)
            var next = indices.lowerBound
            while next < indices.upperBound, next - indices.lowerBound < width {
                let index = next
                group.addTask { (index, try await body(index)) }
                next += 1
            }
            while let (index, value) = try await group.next() {
                results[index - indices.lowerBound] = value
                if next < indices.upperBound {
                    let index = next
                    group.addTask { (index, try await body(index)) }
                    next += 1
                }
            }
            return results.map { $0! }
        }
    }

    /// A group conversation of `members`, created by the first with signed add ops for the rest.
    static func createConversation(_ members: [Int], accounts: [BenchAccount], token: String, at baseURL: String) async throws -> String {
        let creator = accounts[members[0]]
        let creatorIdentity = Array(creator.identity.publicKey.rawRepresentation)
        let now = UInt64(Timestamp.now().millis)
        let genesis = try MembershipOp.genesis(creator: creator.userId, creatorIdentity: creatorIdentity, settings: .init(kind: .group), createdAt: now)
            .sign(with: creator.identity)
        var chain = try MembershipChain(genesis: genesis, creatorIdentity: creatorIdentity)
        var ops: [[String: String]] = []
        for member in members.dropFirst() {
            var op = chain.nextOp(actor: creator.userId, action: .add, createdAt: now)
            op.target = accounts[member].userId
            op.targetFingerprint = IdentityFingerprint.of(Array(accounts[member].identity.publicKey.rawRepresentation))
            op.role = .member
            let signed = try op.sign(with: creator.identity)
            try chain.append(signed, actorIdentity: creatorIdentity)
            ops.append(["op": Base64URL.encode(signed.bytes), "signature": Base64URL.encode(signed.signature)])
        }
        let body: [String: Any] = ["genesis": ["op": Base64URL.encode(genesis.bytes), "signature": Base64URL.encode(genesis.signature)], "ops": ops]
        var request = HTTPClientRequest(url: baseURL + "/api/v1/conversations")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        request.body = .bytes(ByteBuffer(data: try JSONSerialization.data(withJSONObject: body)))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
        let text = String(buffer: try await response.body.collect(upTo: 1 << 20))
        guard response.status.code == 201, let id = (try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])?["conversationId"] as? String else {
            throw BenchError("creating a conversation: \(response.status.code) \(text)")
        }
        return id
    }

    static func put(_ url: String, _ body: String, token: String) async throws {
        var request = HTTPClientRequest(url: url)
        request.method = .PUT
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        request.body = .bytes(ByteBuffer(string: body))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        guard response.status.code == 200 else { throw BenchError("PUT \(url): \(response.status.code)") }
        _ = try await response.body.collect(upTo: 1 << 16)
    }
}

/// Each member's socket, for sending typing frames.
final class SocketSet: Sendable {
    private let sockets = Mutex<[Int: BenchSocket]>([:])

    func add(_ member: Int, _ socket: BenchSocket) { sockets.withLock { $0[member] = socket } }

    func send(_ member: Int, _ text: String) {
        sockets.withLock { $0[member] }?.send(text)
    }

    func closeAll() {
        for socket in sockets.withLock({ $0.values }) { socket.close() }
    }
}

/// Whether a socket became ready before it closed: settled once, awaited once.
final class Outcome: Sendable {
    private let state = Mutex<(value: Bool?, waiter: CheckedContinuation<Bool, Never>?)>((nil, nil))

    func settle(_ value: Bool) {
        let waiter = state.withLock { state -> CheckedContinuation<Bool, Never>? in
            guard state.value == nil else { return nil }
            state.value = value
            defer { state.waiter = nil }
            return state.waiter
        }
        waiter?.resume(returning: value)
    }

    var value: Bool {
        get async {
            await withCheckedContinuation { continuation in
                let settled = state.withLock { state -> Bool? in
                    if state.value == nil { state.waiter = continuation }
                    return state.value
                }
                if let settled { continuation.resume(returning: settled) }
            }
        }
    }
}

/// When each measured change was made, and how long its frames took to arrive.
final class LatencyClock: Sendable {
    private struct State {
        var presence: [String: (state: String, sent: UInt64)] = [:]
        var typing: [String: UInt64] = [:]
        var presenceLatencies: [UInt64] = []
        var typingLatencies: [UInt64] = []
    }

    private let state = Mutex(State())
    private let received = Atomic<Int>(0)

    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Frames of any kind received (ready frames aside) since the last reset.
    var frames: Int { received.load(ordering: .relaxed) }

    func reset() {
        state.withLock { $0 = State() }
        received.store(0, ordering: .relaxed)
    }

    func expectPresence(of userId: String, state presence: String) {
        let sent = Self.now()
        state.withLock { $0.presence[userId] = (presence, sent) }
    }

    func expectTyping(from userId: String, in conversationId: String) {
        let sent = Self.now()
        state.withLock { $0.typing[userId + "/" + conversationId] = sent }
    }

    /// A frame received by a member's socket: a presence or typing frame that was expected.
    func received(_ frame: FrameFields, by member: Int, indexOf: [String: Int]) {
        let arrived = Self.now()
        received.add(1, ordering: .relaxed)
        guard let userId = frame.userId, indexOf[userId] != member else { return }
        if frame.type == "presence", let presence = frame.state {
            state.withLock { state in
                if let expected = state.presence[userId], expected.state == presence { state.presenceLatencies.append(arrived &- expected.sent) }
            }
        } else if frame.type == "typing", let conversation = frame.conversationId {
            state.withLock { state in
                if let sent = state.typing[userId + "/" + conversation] { state.typingLatencies.append(arrived &- sent) }
            }
        }
    }

    func presenceLatencies() -> [UInt64] { state.withLock { $0.presenceLatencies } }
    func typingLatencies() -> [UInt64] { state.withLock { $0.typingLatencies } }
}

/// The string fields of a server frame the benchmark reads (`type`, and `userId`, `state` and
/// `conversationId` of its data), found by one scan of its bytes: the load generator reads every
/// frame on the cores it measures, and a JSON decoder per frame cost it more than the gateway
/// spent delivering it. Server frames are compact JSON whose keys appear once, and these values
/// (ids, states, types) hold no escaped characters.
struct FrameFields {
    var type: String?
    var userId: String?
    var state: String?
    var conversationId: String?

    init(_ buffer: ByteBuffer) {
        buffer.withUnsafeReadableBytes { bytes in
            let quote = UInt8(ascii: "\""), colon = UInt8(ascii: ":")
            var index = 0
            while index < bytes.count {
                guard bytes[index] == quote else { index += 1; continue }
                var end = index + 1
                while end < bytes.count, bytes[end] != quote { end += 1 }
                // A key whose value is a string: "key":"value".
                guard end + 2 < bytes.count, bytes[end + 1] == colon, bytes[end + 2] == quote else { index = end + 1; continue }
                var valueEnd = end + 3
                while valueEnd < bytes.count, bytes[valueEnd] != quote { valueEnd += 1 }
                let key = UnsafeRawBufferPointer(rebasing: bytes[(index + 1)..<end])
                let value = { String(decoding: UnsafeRawBufferPointer(rebasing: bytes[(end + 3)..<min(valueEnd, bytes.count)]), as: UTF8.self) }
                if key.elementsEqual("type".utf8), type == nil { type = value() }
                else if key.elementsEqual("userId".utf8), userId == nil { userId = value() }
                else if key.elementsEqual("state".utf8), state == nil { state = value() }
                else if key.elementsEqual("conversationId".utf8), conversationId == nil { conversationId = value() }
                index = valueEnd + 1
            }
        }
    }
}
