import ArgumentParser
import CircleKit
import CircleProtocol
import Foundation

/// End-to-end messages: sent over HTTP, persisted, delivered over the WebSocket, verified and
/// decrypted by the receiver, all through CircleKit (ephemeral devices: state kept in memory).
struct MessagesBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "messages",
        abstract: "End-to-end messages per second and latency: 1:1 pairs under load, idle latency, and a group.",
        discussion: "The server must allow open registration. Every scenario is bounded in time and count."
    )

    @Option(help: "The server's base URL (circle serve, or nginx in front of the services).") var url: String
    @Option(help: "Sender/receiver pairs in 1:1 conversations.") var pairs = 20
    @Option(help: "Messages in flight per sender.") var inflight = 4
    @Option(help: "Measured seconds of the pairs scenario.") var duration = 20
    @Option(help: "Warm-up seconds before measuring.") var warmup = 3
    @Option(help: "Messages sent one at a time for the idle latency (0 skips).") var idle = 500
    @Option(help: "Members of the group scenario, sender included (0 skips).") var groupSize = 50
    @Option(help: "Messages per second sent to the group.") var groupRate = 20
    @Option(help: "Seconds of the group scenario.") var groupDuration = 20
    @Option(help: "Processes whose CPU time per message to report for the pairs scenario, as name=pid,... (descendants count with their process; Linux).")
    var cpu = ""

    func run() async throws {
        let tag = String(UInt32.random(in: 0...UInt32.max), radix: 36)
        var index = 0
        func makeUsers(_ count: Int) async throws -> [ChatClient] {
            let base = index
            index += count
            return try await withThrowingTaskGroup(of: (Int, ChatClient).self) { group in
                var made: [(Int, ChatClient)] = []
                for slot in 0..<count {
                    if slot >= 2 { made.append(try await group.next()!) }
                    group.addTask {
                        let client = try await ChatClient.register(server: url, invite: nil, username: "b\(tag)\(base + slot)", password: "bench password \(slot)",
                                                                   deviceLabel: "bench", statePath: nil).0
                        return (slot, client)
                    }
                }
                while let next = try await group.next() { made.append(next) }
                return made.sorted { $0.0 < $1.0 }.map(\.1)
            }
        }
        report("messages: \(url)")
        if idle > 0 { try await idleLatency(try await makeUsers(2)) }
        if pairs > 0 { try await pairsScenario(try await makeUsers(pairs * 2)) }
        if groupSize > 1 { try await groupScenario(try await makeUsers(groupSize)) }
        report("receivers refused \(Self.problems.value) messages; sockets reconnected \(Self.reconnects.value) times")
    }

    static func stamp(_ text: String) -> UInt64? { UInt64(text.split(separator: " ").first ?? "") }
    static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Follows `client`'s socket in the background, recording each message's latency.
    static func follow(_ client: ChatClient, _ recorder: LatencyRecorder, from: UInt64 = 0, arrived: (@Sendable (UInt64) -> Void)? = nil) -> Task<Void, any Error> {
        Task {
            try await client.watch { event in
                switch event {
                case .message(let message):
                    if let sent = stamp(message.text) {
                        let delay = now() &- sent
                        if sent >= from { recorder.record(delay) }
                        arrived?(sent)
                    }
                case .refused(_, let seq, let reason):
                    problems.add()
                    if problems.value <= 3 { report("  refused message \(seq): \(reason)") }
                case .connection(false):
                    // A follower stopped at the end of its scenario is not a reconnection.
                    if !Task.isCancelled {
                        reconnects.add()
                        if reconnects.value <= 60 { report("  socket down: \(await client.lastDisconnect ?? "?")") }
                    }
                default:
                    break
                }
                return !Task.isCancelled
            }
        }
    }

    /// Messages refused by receivers and socket reconnections, over the whole run.
    static let problems = Tally()
    static let reconnects = Tally()

    func idleLatency(_ users: [ChatClient]) async throws {
        let (sender, receiver) = (users[0], users[1])
        let conversation = try await sender.createConversation(.direct, with: [await receiver.username])
        let recorder = LatencyRecorder()
        let arrivals = AsyncStream.makeStream(of: UInt64.self)
        let follower = Self.follow(receiver, recorder, arrived: { arrivals.continuation.yield($0) })
        var iterator = arrivals.stream.makeAsyncIterator()
        try await sender.send("\(Self.now()) warm", to: conversation)
        _ = await iterator.next()
        recorder.reset()
        let calls = LatencyRecorder()
        for _ in 0..<idle {
            let start = Self.now()
            try await sender.send("\(start) idle", to: conversation)
            calls.record(Self.now() - start)
            _ = await iterator.next()
        }
        follower.cancel()
        // The floor under the send call: the same HTTP client and path to the server for a call
        // that does nothing (GET /api/v1/server, answered by the gateway from memory).
        let api = CircleAPI(baseURL: url)
        let floor = LatencyRecorder()
        for _ in 0..<idle {
            let start = Self.now()
            _ = try await api.call(.GET, "/api/v1/server", as: APITypes.ServerInfo.self)
            floor.record(Self.now() - start)
        }
        let summary = LatencySummary(recorder.snapshot())
        let call = LatencySummary(calls.snapshot())
        let bare = LatencySummary(floor.snapshot())
        report("""
            idle: \(summary.count) messages one at a time: send-to-decrypted latency p50 \(f(summary.p50)) ms, p99 \(f(summary.p99)) ms, max \(f(summary.max)) ms
              of which the send call (seal, POST, stored, answered): p50 \(f(call.p50)) ms, p99 \(f(call.p99)) ms
              floor: the same client's call that does nothing (GET /api/v1/server): p50 \(f(bare.p50)) ms, p99 \(f(bare.p99)) ms
            """)
    }

    func pairsScenario(_ users: [ChatClient]) async throws {
        var conversations: [(ChatClient, String)] = []
        var followers: [Task<Void, any Error>] = []
        let recorder = LatencyRecorder()
        let start = Self.now()
        let measureFrom = start + UInt64(warmup) * 1_000_000_000
        let measureUntil = measureFrom + UInt64(duration) * 1_000_000_000
        for pair in 0..<pairs {
            let (sender, receiver) = (users[2 * pair], users[2 * pair + 1])
            conversations.append((sender, try await sender.createConversation(.direct, with: [await receiver.username])))
            followers.append(Self.follow(receiver, recorder, from: measureFrom))
        }
        try await Task.sleep(for: .milliseconds(500))
        let sent = Tally()
        let failures = Tally()
        let cpuTime = cpu.isEmpty ? nil : try ProcessCPU(cpu)
        let cpuSamples = CPUSamples()
        await withTaskGroup(of: Void.self) { group in
            if let cpuTime {
                group.addTask {
                    try? await Task.sleep(for: .nanoseconds(measureFrom &- Self.now()))
                    let first = cpuTime.sample()
                    try? await Task.sleep(for: .nanoseconds(measureUntil &- Self.now()))
                    cpuSamples.set(first, cpuTime.sample(), sent.value)
                }
            }
            for (sender, conversation) in conversations {
                for _ in 0..<inflight {
                    group.addTask {
                        while Self.now() < measureUntil {
                            let at = Self.now()
                            do {
                                try await sender.send("\(at) pair", to: conversation)
                                if at >= measureFrom { sent.add() }
                            } catch {
                                failures.add()
                            }
                        }
                    }
                }
            }
        }
        try await Task.sleep(for: .seconds(2))
        followers.forEach { $0.cancel() }
        let delivered = recorder.snapshot().filter { _ in true }
        let summary = LatencySummary(delivered)
        var resent = 0
        for (sender, _) in conversations { resent += await sender.resent }
        report("""
            pairs: \(pairs) sender/receiver pairs, \(inflight) in flight each, \(duration) s after \(warmup) s warm-up
            sent \(sent.value) (\(f(Double(sent.value) / Double(duration), 0))/s), delivered and decrypted \(summary.count) (\(f(Double(summary.count) / Double(duration), 0))/s), failed sends \(failures.value), sent again from an outbox \(resent)
            send-to-decrypted latency: p50 \(f(summary.p50)) ms, p99 \(f(summary.p99)) ms, max \(f(summary.max)) ms
            """)
        if let cpuTime, let (first, last, count) = cpuSamples.value {
            report("  CPU ms per message sent in the measured window: " + cpuTime.perMessage(from: first, to: last, messages: count, server: Set(cpuTime.processes.map(\.name)).subtracting(["bench"])))
        }
    }

    func groupScenario(_ users: [ChatClient]) async throws {
        let sender = users[0]
        var names: [String] = []
        for user in users.dropFirst() { names.append(await user.username) }
        let conversation = try await sender.createConversation(.group, with: names)
        let recorder = LatencyRecorder()
        let followers = users.dropFirst().map { Self.follow($0, recorder) }
        try await sender.send("\(Self.now()) warm", to: conversation)
        try await Task.sleep(for: .seconds(2))
        recorder.reset()
        let total = groupRate * groupDuration
        let start = ContinuousClock.now
        for message in 0..<total {
            try await sender.send("\(Self.now()) group", to: conversation)
            try await Task.sleep(until: start + .milliseconds(1000 * (message + 1) / groupRate), clock: .continuous)
        }
        try await Task.sleep(for: .seconds(2))
        followers.forEach { $0.cancel() }
        let summary = LatencySummary(recorder.snapshot())
        report("""
            group: \(users.count) members, \(groupRate) messages/s for \(groupDuration) s: \(total) sent, \(summary.count) of \(total * (users.count - 1)) deliveries decrypted
            send-to-decrypted latency per delivery: p50 \(f(summary.p50)) ms, p99 \(f(summary.p99)) ms, max \(f(summary.max)) ms
            """)
    }

    func f(_ value: Double, _ digits: Int = 2) -> String { String(format: "%.\(digits)f", value) }
}

/// The CPU samples taken at the start and end of the measured window, with the messages sent in it.
final class CPUSamples: @unchecked Sendable {
    private let lock = NSLock()
    private var samples: ([Double], [Double], Int)?
    func set(_ first: [Double], _ last: [Double], _ sentAtEnd: Int) {
        lock.lock()
        samples = (first, last, sentAtEnd)
        lock.unlock()
    }
    var value: ([Double], [Double], Int)? {
        lock.lock()
        defer { lock.unlock() }
        return samples
    }
}

/// A counter shared by tasks.
final class Tally: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func add() {
        lock.lock()
        count += 1
        lock.unlock()
    }
    var value: Int {
        lock.lock()
        defer { lock.unlock() }
        return count
    }
}
