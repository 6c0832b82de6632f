import ArgumentParser
import AsyncHTTPClient
import CircleConfig
import CircleCore
import CircleKit
import CircleStore
import Foundation
import Logging
import NIOCore
import SQLKit

/// Destroying a big account (issue: 100,000 messages and 1 GiB in the vault): how long until
/// nothing the server keeps opens (the answer to the request), how long until everything is
/// gone, and what other members' messages meanwhile cost compared with an idle server.
///
/// The account's history is written straight into the server's database and vault folder (the
/// server treats messages and files as opaque bytes, and writing 100,000 real messages through
/// the API would take longer than the run); the account itself and the members who measure
/// latency are real, through the API.
struct DestructionBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "destruction",
        abstract: "Destroy an account with many messages and files while two members talk; time to unreadable, to gone, and their latency.",
        discussion: "Run on the server's machine: it writes the account's history into the server's database and vault folder. The server must allow open registration."
    )

    @Option(help: "The server's base URL.") var url: String
    @OptionGroup var database: DatabaseOptions
    @Option(name: .customLong("vault-path"), help: "The server's vault folder.") var vaultPath = "./data/vault"
    @Option(help: "Messages the account sent.") var messages = 100_000
    @Option(help: "Bytes of each message's ciphertext.") var messageSize = 600
    @Option(help: "Bytes in the account's vault.") var vaultBytes = 1 << 30
    @Option(help: "Bytes of each file.") var fileSize = 4 << 20
    @Option(help: "Messages sent one at a time to measure the idle latency (a p99 needs about a thousand).") var samples = 1000
    @Option(help: "Processes whose CPU time the destruction costs, as name=pid,... (descendants count with their process; Linux).")
    var cpu = ""

    func run() async throws {
        let tag = String(UInt32.random(in: 0...UInt32.max), radix: 36)
        let victim = BenchAccount(username: "d\(tag)victim")
        let token = try await victim.register(at: url)
        let userId = try await Self.userId(url: url, token: token)
        let settings = try SettingsLoader.loadDatabase(from: ConfigSources.reader(commandLine: database.values))
        var logger = Logger(label: "circle.bench")
        logger.logLevel = .error
        let seeding = Date()
        let plan = Seeding(messages: messages, messageSize: messageSize, files: max(1, vaultBytes / fileSize), fileSize: fileSize, vaultPath: vaultPath)
        let files = try await StoreFactory.withMigratedStore(settings, logger: logger) { store in
            try await plan.seed(store: store, userId: userId)
        }
        report("destruction: \(url): seeded \(messages) messages of \(messageSize) bytes and \(files) files of \(fileSize) bytes in \(f(Date().timeIntervalSince(seeding), 1)) s")

        let (sender, receiver) = try await Self.talkers(url: url, tag: tag)
        let conversation = try await sender.createConversation(.direct, with: [await receiver.username])
        let idle = try await Self.latency(sender, receiver, conversation, count: samples)

        try await Self.post(url + "/api/v1/account/reauthenticate", "{\"authKey\":\"\(Base64URL.encode(victim.authKey))\"}", token: token)
        let cpuTime = cpu.isEmpty ? nil : try ProcessCPU(cpu)
        let cpuStart = cpuTime?.sample()
        let start = DispatchTime.now().uptimeNanoseconds
        let started = try await Self.post(url + "/api/v1/destruction", "{\"kind\":\"account\",\"confirm\":\"destroy my account\"}", token: token)
        let unreadable = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
        guard let object = try JSONSerialization.jsonObject(with: Data(started.utf8)) as? [String: Any],
              let watch = object["watchToken"] as? String, let job = object["job"] as? [String: Any], let path = job["url"] as? String else {
            throw BenchError("unexpected answer: \(started)")
        }
        let finished = StopFlag()
        let steps = StepTimeline()
        async let during = Self.latency(sender, receiver, conversation, count: Int.max, until: { finished.isSet }, timeline: steps)
        while true {
            let step = try await Self.step(url + path, watch: watch)
            steps.enter(step)
            if step == "done" { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        let gone = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        finished.set()
        let cpuEnd = cpuTime?.sample()
        let meanwhile = try await during
        // A p99 over a long window meets more of the machine's rare stalls than one over a short
        // one: the idle latency again, after the job, over as many messages as were sent during it.
        let after = try await Self.latency(sender, receiver, conversation, count: meanwhile.count)
        report("""
              unreadable after \(f(unreadable, 1)) ms (the answer to POST /api/v1/destruction: its transaction shredded the keys, wraps and sessions)
              everything gone after \(f(gone, 2)) s: \(f(Double(messages) / gone, 0)) messages/s and \(f(Double(files) * Double(fileSize) / gone / 1e6, 0)) MB/s of blobs
              other members' send-to-decrypted latency: idle p50 \(f(idle.p50)) ms, p99 \(f(idle.p99)) ms (\(idle.count) messages); \
            during p50 \(f(meanwhile.p50)) ms, p99 \(f(meanwhile.p99)) ms (\(meanwhile.count) messages): \(f(meanwhile.p50 / idle.p50)) x at p50, \(f(meanwhile.p99 / idle.p99)) x at p99
              idle again after the job, as many messages as during: p50 \(f(after.p50)) ms, p99 \(f(after.p99)) ms (\(after.count) messages): \
            during is \(f(meanwhile.p50 / after.p50)) x at p50, \(f(meanwhile.p99 / after.p99)) x at p99
            """)
        report("  by the step running when each was sent: " + steps.summary().map { step in
            "\(step.name) \(f(step.seconds, 1)) s, p99 \(f(step.latency.p99)) ms (\(step.latency.count))"
        }.joined(separator: "; "))
        if let cpuTime, let cpuStart, let cpuEnd {
            let parts = cpuTime.processes.enumerated().map { index, process in
                "\(process.name) \(f(cpuEnd[index] - cpuStart[index], 2)) s"
            }
            let server = cpuTime.processes.enumerated().filter { $0.element.name != "bench" }.map { cpuEnd[$0.offset] - cpuStart[$0.offset] }.reduce(0, +)
            report("  CPU during the destruction (the talkers' messages included): \(parts.joined(separator: ", ")); server \(f(server * 1e6 / Double(messages), 1)) µs per message destroyed")
        }
    }

    static func talkers(url: String, tag: String) async throws -> (ChatClient, ChatClient) {
        async let a = ChatClient.register(server: url, invite: nil, username: "d\(tag)a", password: "bench password a", deviceLabel: "bench", statePath: nil).0
        async let b = ChatClient.register(server: url, invite: nil, username: "d\(tag)b", password: "bench password b", deviceLabel: "bench", statePath: nil).0
        return try await (a, b)
    }

    /// Messages one at a time from `sender` to `receiver`, send to decrypted; stops after `count`
    /// or once `until` says so.
    static func latency(_ sender: ChatClient, _ receiver: ChatClient, _ conversation: String, count: Int,
                 until: (@Sendable () -> Bool)? = nil, timeline: StepTimeline? = nil) async throws -> LatencySummary {
        let recorder = LatencyRecorder()
        let arrivals = AsyncStream.makeStream(of: UInt64.self)
        let follower = MessagesBench.follow(receiver, recorder, arrived: { sent in
            timeline?.record(sent: sent, latency: MessagesBench.now() &- sent)
            arrivals.continuation.yield(sent)
        })
        defer { follower.cancel() }
        var iterator = arrivals.stream.makeAsyncIterator()
        try await sender.send("\(MessagesBench.now()) warm", to: conversation)
        _ = await iterator.next()
        recorder.reset()
        var sent = 0
        while sent < count {
            if let until, until() { break }
            try await sender.send("\(MessagesBench.now()) m", to: conversation)
            _ = await iterator.next()
            sent += 1
        }
        return LatencySummary(recorder.snapshot())
    }

    static func userId(url: String, token: String) async throws -> String {
        let answer = try await request("GET", url + "/api/v1/account/me", nil, headers: ["Authorization": "Bearer \(token)"])
        guard let object = try JSONSerialization.jsonObject(with: Data(answer.utf8)) as? [String: Any], let id = object["userId"] as? String else {
            throw BenchError("unexpected answer: \(answer)")
        }
        return id
    }

    /// The job's current step (`done` once finished).
    static func step(_ url: String, watch: String) async throws -> String {
        let answer = try await request("GET", url, nil, headers: ["Circle-Job-Token": watch])
        guard let object = try JSONSerialization.jsonObject(with: Data(answer.utf8)) as? [String: Any], let step = object["step"] as? String else {
            throw BenchError("unexpected answer: \(answer)")
        }
        return step
    }

    @discardableResult
    static func post(_ url: String, _ body: String, token: String) async throws -> String {
        try await request("POST", url, body, headers: ["Authorization": "Bearer \(token)", "Content-Type": "application/json"])
    }

    static func request(_ method: String, _ url: String, _ body: String?, headers: [String: String]) async throws -> String {
        var request = HTTPClientRequest(url: url)
        request.method = method == "POST" ? .POST : .GET
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let body { request.body = .bytes(ByteBuffer(string: body)) }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
        let text = String(buffer: try await response.body.collect(upTo: 1 << 20))
        guard (200..<300).contains(Int(response.status.code)) else { throw BenchError("\(method) \(url): \(response.status.code) \(text)") }
        return text
    }

    func f(_ value: Double, _ digits: Int = 2) -> String { String(format: "%.\(digits)f", value) }
}

/// What the benchmark writes for the account, straight into the server's storage.
struct Seeding: Sendable {
    let messages: Int
    let messageSize: Int
    let files: Int
    let fileSize: Int
    let vaultPath: String

    /// Writes the account's conversation, messages and files; returns how many files.
    func seed(store: any DatabaseStore, userId: String) async throws -> Int {
        let messages = self.messages, messageSize = self.messageSize, fileSize = self.fileSize
        let conversation = Base64URL.encode(SecureRandom.bytes(16))
        let now = Timestamp.now().millis
        try await store.write { db in
            try await db.raw("""
                INSERT INTO conversations (id, kind, head_n, epoch, disappear_seconds, read_receipts, last_seq, created_at, updated_at)
                VALUES (\(bind: conversation), 1, 0, \(bind: Data(SecureRandom.bytes(32))), 0, 1, \(bind: Int64(messages)), \(bind: now), \(bind: now))
                """).run()
            try await db.raw("""
                INSERT INTO conversation_members (conversation_id, user_id, role, fingerprint, joined_n, receipts)
                VALUES (\(bind: conversation), \(bind: userId), 2, \(bind: Data(SecureRandom.bytes(32))), 0, 1)
                """).run()
        }
        let payload = Data(SecureRandom.bytes(messageSize))
        let header = Data(SecureRandom.bytes(120))
        let signature = Data(SecureRandom.bytes(64))
        for first in stride(from: 1, through: messages, by: 1000) {
            let last = min(messages, first + 999)
            try await store.write { db in
                var query = SQLQueryString("""
                    INSERT INTO messages (conversation_id, id, seq, sender_id, kind, header, ciphertext, signature, expires_at, created_at) VALUES
                    """)
                for seq in first...last {
                    if seq > first { query += "," }
                    query += " (\(bind: conversation), \(bind: Base64URL.encode(SecureRandom.bytes(16))), \(bind: Int64(seq)), \(bind: userId), 0, \(bind: header), \(bind: payload), \(bind: signature), 0, \(bind: now))"
                }
                try await db.raw(query).run()
            }
        }
        let count = files
        let content = Data(SecureRandom.bytes(fileSize))
        for _ in 0..<count {
            let id = SecureRandom.bytes(16)
            let name = Hex.encode(id)
            let folder = "\(vaultPath)/files/\(name.prefix(2))"
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            guard FileManager.default.createFile(atPath: "\(folder)/\(name)", contents: content) else { throw BenchError("cannot write \(folder)/\(name)") }
            try await store.write { db in
                try await db.raw("""
                    INSERT INTO vault_files (id, owner_id, level, conversation_id, meta, wrap, size, sha256, created_at, expires_at, accessed_at)
                    VALUES (\(bind: Base64URL.encode(id)), \(bind: userId), 'private', NULL, \(bind: Data(SecureRandom.bytes(100))), \(bind: Data(SecureRandom.bytes(60))),
                            \(bind: Int64(fileSize)), \(bind: Data(SecureRandom.bytes(32))), \(bind: now), 0, \(bind: now))
                    """).run()
            }
        }
        return count
    }

}

/// When the job entered each step (as polled), and each message's latency by its send time,
/// to tell which step the tail comes from.
final class StepTimeline: @unchecked Sendable {
    private let lock = NSLock()
    private var steps: [(start: UInt64, name: String)] = []
    private var samples: [(sent: UInt64, latency: UInt64)] = []

    func enter(_ step: String) {
        lock.withLock { if steps.last?.name != step { steps.append((MessagesBench.now(), step)) } }
    }

    func record(sent: UInt64, latency: UInt64) {
        lock.withLock { samples.append((sent, latency)) }
    }

    /// Each step (but `done`) with its duration and the latency of messages sent during it.
    func summary() -> [(name: String, seconds: Double, latency: LatencySummary)] {
        lock.withLock {
            steps.indices.compactMap { index in
                let step = steps[index]
                guard step.name != "done" else { return nil }
                let end = index + 1 < steps.count ? steps[index + 1].start : UInt64.max
                let during = samples.filter { $0.sent >= step.start && $0.sent < end }.map(\.latency)
                let seconds = end == .max ? 0 : Double(end - step.start) / 1e9
                return (step.name, seconds, LatencySummary(during))
            }
        }
    }
}

/// Set once, read by another task.
final class StopFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false

    var isSet: Bool { lock.withLock { value } }
    func set() { lock.withLock { value = true } }
}
