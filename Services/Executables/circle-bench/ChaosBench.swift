import ArgumentParser
import CircleCore
import CircleKit
import Crypto
import Foundation

/// The clients of a chaos run (scripts/chaos.sh starts the servers and the faults): members in a
/// group and in 1:1 pairs send, upload and change presence while replicas die; at the end every
/// message the server acknowledged must have reached every other member, decrypted, once, every
/// acknowledged upload must download intact, and each fault's catch-up time is measured.
struct ChaosBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chaos",
        abstract: "The load of a chaos run: a group and 1:1 pairs of CircleKit clients that check, at the end, that nothing acknowledged was lost or repeated.",
        discussion: """
            The server must allow open registration. Writes `ready` beside --report once every member's \
            socket is caught up (the controller starts its faults then); reads the faults from --faults at \
            the end, one line each: `<unix ms> <what>`. Bounded by --seconds plus at most --settle seconds.
            """
    )

    @Option(help: "The server's base URL (nginx in front of the services).") var url: String
    @Option(help: "Members of the group conversation.") var members = 50
    @Option(help: "1:1 conversations, between group members.") var pairs = 5
    @Option(help: "Seconds of load.") var seconds = 60
    @Option(help: "Messages per second to the group, from random members.") var groupRate = 4.0
    @Option(help: "Seconds between messages in each 1:1 conversation.") var pairInterval = 1.0
    @Option(help: "Seconds between uploads, by random members.") var uploadInterval = 5.0
    @Option(help: "Bytes per upload.") var uploadSize = 300_000
    @Option(help: "Seconds between presence changes, by random members.") var presenceInterval = 2.0
    @Option(help: "Longest wait, after the load, for every delivery.") var settle = 60
    @Option(help: "Where the controller lists its faults.") var faults: String
    @Option(help: "Where the JSON report goes (and `ready` beside it).") var report: String
    @Option(help: "The catch-up a fault may take, in seconds; longer fails the run.") var catchUpLimit = 5.0

    func run() async throws {
        let folder = URL(fileURLWithPath: report).deletingLastPathComponent()
        let tag = String(UInt32.random(in: 0...UInt32.max), radix: 36)
        let ledger = ChaosLedger(members: members)
        let clients = try await registerMembers(tag: tag)
        let names = await clients.asyncMap { await $0.username }
        let group = try await retrying("create the group") { try await clients[0].createConversation(.group, with: Array(names.dropFirst())) }
        var conversations: [(id: String, members: [Int])] = [(group, Array(clients.indices))]
        for pair in 0..<pairs {
            let (a, b) = (1 + 2 * pair, 2 + 2 * pair)
            let id = try await retrying("create a 1:1") { try await clients[a].createConversation(.direct, with: [names[b]]) }
            conversations.append((id, [a, b]))
        }
        for (index, client) in clients.enumerated() { ledger.follow(client, member: index) }
        try await ledger.waitConnected(clients.count, within: .seconds(60))
        // Warm-up, before the faults: each member's first message announces its sender chain to
        // every other member (envelopes, directory reads, pins), a burst the steady load is not.
        let expected = conversations.reduce(into: [String: [Int]]()) { $0[$1.id] = $1.members }
        await withTaskGroup(of: Void.self) { warm in
            for (id, members) in conversations {
                for member in members {
                    warm.addTask { await send("w \(member) \(id.prefix(6))", from: member, clients: clients, to: id, ledger: ledger) }
                }
            }
        }
        let warmed = ContinuousClock.now + .seconds(120)
        while ContinuousClock.now < warmed, !ledger.undelivered(expected).isEmpty { try await Task.sleep(for: .milliseconds(250)) }
        try Data("ready\n".utf8).write(to: folder.appendingPathComponent("ready"))
        summary("chaos: \(clients.count) members, a group and \(pairs) 1:1 conversations, \(seconds) s of load against \(url)")

        let end = ContinuousClock.now + .seconds(seconds)
        let uploads = UploadLedger()
        await withTaskGroup(of: Void.self) { tasks in
            for (id, members) in conversations.dropFirst() {
                tasks.addTask {
                    var sequence = 0
                    while ContinuousClock.now < end {
                        sequence += 1
                        let sender = members[sequence % 2]
                        await send("p \(sender) \(sequence)", from: sender, clients: clients, to: id, ledger: ledger)
                        try? await Task.sleep(for: .seconds(pairInterval))
                    }
                }
            }
            tasks.addTask {
                let states = ["online", "away", "busy", "online"]
                while ContinuousClock.now < end {
                    let member = Int.random(in: clients.indices)
                    var change = ChatClient.PresenceChange()
                    change.state = states.randomElement()!
                    do { _ = try await clients[member].setPresence(change) } catch { ledger.clientError("presence: \(error)") }
                    try? await Task.sleep(for: .seconds(presenceInterval))
                }
            }
            // Group messages and uploads start on a clock of their own, each in its own task, so a
            // send stuck behind a fault does not hold up the next.
            var sequence = 0, uploadSequence = 0
            var nextUpload = ContinuousClock.now
            while ContinuousClock.now < end {
                sequence += 1
                let sender = Int.random(in: clients.indices)
                let text = "g \(sender) \(sequence)"
                tasks.addTask { await send(text, from: sender, clients: clients, to: group, ledger: ledger) }
                if ContinuousClock.now >= nextUpload {
                    nextUpload = nextUpload + .seconds(uploadInterval)
                    uploadSequence += 1
                    let owner = Int.random(in: clients.indices)
                    let path = folder.appendingPathComponent("upload-\(uploadSequence)").path
                    let bytes = SecureRandom.bytes(uploadSize)
                    try? Data(bytes).write(to: URL(fileURLWithPath: path))
                    tasks.addTask { await upload(path, bytes: bytes, owner: owner, client: clients[owner], uploads: uploads, ledger: ledger) }
                }
                try? await Task.sleep(for: .seconds(1 / groupRate))
            }
        }
        summary("load over: \(ledger.ackedCount) messages and \(await uploads.count) uploads acknowledged; waiting for every delivery")

        // Every acknowledged message must reach every other member of its conversation live.
        let settled = ContinuousClock.now + .seconds(settle)
        while ContinuousClock.now < settled, !ledger.undelivered(expected).isEmpty { try await Task.sleep(for: .milliseconds(250)) }
        ledger.stopFollowing()
        let undelivered = ledger.undelivered(expected)

        // And to a new device of a member catching up over REST (the group's creator and the
        // members of the first two pairs): each message there once, decrypted, none refused.
        var missingOnRead: [String] = [], twiceOnRead: [String] = [], refused = 0
        for member in [0, 1, 2, 3, 4] where member < clients.count {
            let reader = try await retrying("sign in a new device") {
                try await ChatClient.login(server: url, username: names[member], password: "chaos password \(member)", deviceLabel: "reader", statePath: nil)
            }
            for (id, members) in conversations where members.contains(member) {
                let acked = Set(ledger.acked(in: id))
                let read = try await retrying("read \(id)") { try await reader.receive(id, markRead: false) }
                refused += read.refused.count
                var seen: [String: Int] = [:]
                for message in read.messages { seen[message.text, default: 0] += 1 }
                missingOnRead += acked.filter { seen[$0] == nil }.map { "\(names[member]) lacks \($0)" }
                twiceOnRead += seen.filter { $0.value > 1 }.map { "\(names[member]) has \($0.key) \($0.value) times" }
            }
        }

        // Every acknowledged upload downloads, decrypts and matches.
        var badUploads: [String] = []
        for (fileId, owner, digest) in await uploads.all {
            let path = folder.appendingPathComponent("download-\(fileId)").path
            do {
                _ = try await retrying("download") { try await clients[owner].vaultGet(fileId, to: path) }
                let back = try Data(contentsOf: URL(fileURLWithPath: path))
                if Array(SHA256.hash(data: back)) != digest { badUploads.append("\(fileId): other bytes") }
            } catch {
                badUploads.append("\(fileId): \(error)")
            }
            try? FileManager.default.removeItem(atPath: path)
        }

        let faultList = (try? String(contentsOfFile: faults, encoding: .utf8)) ?? ""
        let catchUps = faultList.split(separator: "\n").compactMap { line -> (Int64, String, Double)? in
            let parts = line.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, let at = Int64(parts[0]) else { return nil }
            return (at, String(parts[1]), ledger.catchUp(after: at, expected))
        }
        let worst = catchUps.map(\.2).max() ?? 0
        let result = ChaosReport(
            members: clients.count, conversations: conversations.count, seconds: seconds,
            acknowledged: ledger.ackedCount, liveDeliveries: ledger.deliveryCount, undelivered: Array(undelivered.prefix(50)),
            undeliveredCount: undelivered.count, duplicatesLive: ledger.duplicates, missingOnRead: Array(missingOnRead.prefix(50)),
            missingOnReadCount: missingOnRead.count, twiceOnRead: Array(twiceOnRead.prefix(50)), refused: refused + ledger.refusedCount,
            uploads: await uploads.count, badUploads: badUploads,
            faults: catchUps.map { ChaosReport.Fault(at: $0.0, what: $0.1, catchUpSeconds: $0.2) }, worstCatchUpSeconds: worst,
            clientErrors: ledger.errorCount, sampleErrors: ledger.sampleErrors, reconnects: ledger.reconnects)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try encoder.encode(result).write(to: URL(fileURLWithPath: report))
        summary("""
            acknowledged \(result.acknowledged) messages (\(result.liveDeliveries) live deliveries), \(result.uploads) uploads
            undelivered \(result.undeliveredCount), repeated live \(result.duplicatesLive), missing on read \(result.missingOnReadCount), repeated on read \(twiceOnRead.count), refused \(result.refused), bad uploads \(badUploads.count)
            faults \(catchUps.count), worst catch-up \(String(format: "%.2f", worst)) s; client errors \(result.clientErrors), socket reconnections \(result.reconnects)
            """)
        if !result.passed(catchUpLimit: catchUpLimit) { throw ExitCode(1) }
    }

    func registerMembers(tag: String) async throws -> [ChatClient] {
        try await withThrowingTaskGroup(of: (Int, ChatClient).self) { group in
            var made: [(Int, ChatClient)] = []
            for slot in 0..<members {
                if slot >= 4 { made.append(try await group.next()!) }
                group.addTask {
                    let client = try await retrying("register") {
                        try await ChatClient.register(server: url, invite: nil, username: "c\(tag)\(slot)", password: "chaos password \(slot)",
                                                      deviceLabel: "chaos", statePath: nil).0
                    }
                    return (slot, client)
                }
            }
            while let next = try await group.next() { made.append(next) }
            return made.sorted { $0.0 < $1.0 }.map(\.1)
        }
    }
}

/// Sends `text` as `sender` (one send at a time per member, as one person types). After a
/// failure, the member's pending message is sent again byte for byte until the server confirms; a
/// send that failed before its message was sealed (announcing a new chain, say) is simply made
/// again: nothing of it was stored. Acknowledged only once the server confirmed it.
func send(_ text: String, from sender: Int, clients: [ChatClient], to conversation: String, ledger: ChaosLedger) async {
    await ledger.lanes[sender].run {
        do {
            try await clients[sender].send(text, to: conversation)
            ledger.acked(text, in: conversation)
            return
        } catch {
            ledger.clientError("send: \(error)")
        }
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(300))
            do {
                if try await clients[sender].resendPending(in: conversation) == 0 {
                    try await clients[sender].send(text, to: conversation)
                }
                ledger.acked(text, in: conversation)
                return
            } catch {
                ledger.clientError("resend: \(error)")
            }
        }
    }
}

/// Runs one body at a time, in arrival order.
actor Lane {
    private var busy = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    func run(_ body: @Sendable () async -> Void) async {
        if busy {
            await withCheckedContinuation { waiting.append($0) }
        }
        busy = true
        await body()
        if waiting.isEmpty { busy = false } else { waiting.removeFirst().resume() }
    }
}

func upload(_ path: String, bytes: [UInt8], owner: Int, client: ChatClient, uploads: UploadLedger, ledger: ChaosLedger) async {
    for _ in 0..<5 {
        do {
            let fileId = try await client.vaultPut(path: path)
            await uploads.add(fileId, owner: owner, digest: Array(SHA256.hash(data: bytes)))
            try? FileManager.default.removeItem(atPath: path)
            return
        } catch {
            ledger.clientError("upload: \(error)")
            try? await Task.sleep(for: .seconds(1))
        }
    }
}

/// Retries a setup or checking call through the faults (a few seconds at most each time).
func retrying<T: Sendable>(_ what: String, _ body: () async throws -> T) async throws -> T {
    var last: (any Error)?
    for attempt in 0..<20 {
        do { return try await body() } catch {
            last = error
            try await Task.sleep(for: .milliseconds(min(3000, 200 << min(attempt, 4))))
        }
    }
    throw last ?? CancellationError()
}

/// What the run's clients saw, with wall-clock times (unix ms) the controller's faults compare to.
final class ChaosLedger: @unchecked Sendable {
    private let lock = NSLock()
    /// One send at a time per member.
    let lanes: [Lane]

    init(members: Int) { lanes = (0..<members).map { _ in Lane() } }
    /// Acknowledgement time of each message, by conversation and text.
    private var ackedAt: [String: [String: Int64]] = [:]
    /// When each member first received each message live, by conversation and text.
    private var received: [String: [String: [Int: Int64]]] = [:]
    private(set) var duplicates = 0
    private(set) var refusedCount = 0
    private(set) var errorCount = 0
    private(set) var sampleErrors: [String] = []
    private(set) var reconnects = 0
    private var connected: Set<Int> = []
    private var followers: [Task<Void, any Error>] = []

    func locked<T>(_ body: () -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body()
    }

    func follow(_ client: ChatClient, member: Int) {
        // Owned by the ledger: kept in `followers` and cancelled by `stopFollowing()` before the
        // checks (a load generator, not a server; it exits when `run` returns).
        let task = Task {
            try await client.watch { event in
                switch event {
                case .message(let message):
                    self.received(message.text, in: message.conversationId, by: member)
                case .refused:
                    self.locked { self.refusedCount += 1 }
                case .connection(let up):
                    self.locked {
                        if up { self.connected.insert(member) } else { self.reconnects += 1 }
                    }
                default:
                    break
                }
                return !Task.isCancelled
            }
        }
        locked { followers.append(task) }
    }

    func stopFollowing() { locked { followers }.forEach { $0.cancel() } }

    func waitConnected(_ count: Int, within limit: Duration) async throws {
        let deadline = ContinuousClock.now + limit
        while locked({ connected.count }) < count {
            guard ContinuousClock.now < deadline else { throw ValidationError("only \(locked { connected.count }) of \(count) sockets connected") }
            try await Task.sleep(for: .milliseconds(100))
        }
    }

    func acked(_ text: String, in conversation: String) {
        let now = Timestamp.now().millis
        locked { ackedAt[conversation, default: [:]][text] = now }
    }

    func received(_ text: String, in conversation: String, by member: Int) {
        let now = Timestamp.now().millis
        locked {
            if received[conversation, default: [:]][text, default: [:]][member] != nil {
                duplicates += 1
            } else {
                received[conversation, default: [:]][text, default: [:]][member] = now
            }
        }
    }

    func clientError(_ text: String) {
        locked {
            errorCount += 1
            if sampleErrors.count < 20 { sampleErrors.append(text) }
        }
    }

    var ackedCount: Int { locked { ackedAt.values.reduce(0) { $0 + $1.count } } }
    var deliveryCount: Int { locked { received.values.reduce(0) { $0 + $1.values.reduce(0) { $0 + $1.count } } } }

    func acked(in conversation: String) -> [String] { locked { Array(ackedAt[conversation, default: [:]].keys) } }

    /// The sender of a message, from its text ("g <sender> <n>").
    static func sender(_ text: String) -> Int? { text.split(separator: " ").dropFirst().first.flatMap { Int($0) } }

    /// Acknowledged messages some other member has not received live, as "conversation text member".
    func undelivered(_ members: [String: [Int]]) -> [String] {
        locked {
            var out: [String] = []
            for (conversation, texts) in ackedAt {
                for text in texts.keys {
                    let got = received[conversation]?[text] ?? [:]
                    for member in members[conversation] ?? [] where member != Self.sender(text) && got[member] == nil {
                        out.append("\(conversation.prefix(8)) \(text) member \(member)")
                    }
                }
            }
            return out
        }
    }

    /// How long after the fault at `at` (unix ms) the members were caught up: the longest wait,
    /// counted from the fault or from its acknowledgement if later, for a message acknowledged
    /// up to a second after the fault to reach another member; 0 when all had arrived before.
    func catchUp(after at: Int64, _ members: [String: [Int]]) -> Double {
        locked {
            var longest: Int64 = 0
            for (conversation, texts) in ackedAt {
                for (text, acknowledged) in texts where acknowledged <= at + 1000 {
                    let got = received[conversation]?[text] ?? [:]
                    let from = max(at, acknowledged)
                    for member in members[conversation] ?? [] where member != Self.sender(text) {
                        // Never delivered: reported as 9999 s.
                        let time = got[member] ?? from + 9_999_000
                        longest = max(longest, time - from)
                    }
                }
            }
            return Double(longest) / 1000
        }
    }
}

actor UploadLedger {
    private(set) var all: [(String, Int, [UInt8])] = []
    var count: Int { all.count }
    func add(_ fileId: String, owner: Int, digest: [UInt8]) { all.append((fileId, owner, digest)) }
}

struct ChaosReport: Codable {
    struct Fault: Codable {
        let at: Int64
        let what: String
        let catchUpSeconds: Double
    }

    let members: Int
    let conversations: Int
    let seconds: Int
    let acknowledged: Int
    let liveDeliveries: Int
    let undelivered: [String]
    let undeliveredCount: Int
    let duplicatesLive: Int
    let missingOnRead: [String]
    let missingOnReadCount: Int
    let twiceOnRead: [String]
    let refused: Int
    let uploads: Int
    let badUploads: [String]
    let faults: [Fault]
    let worstCatchUpSeconds: Double
    let clientErrors: Int
    let sampleErrors: [String]
    let reconnects: Int

    func passed(catchUpLimit: Double) -> Bool {
        acknowledged > 0 && undeliveredCount == 0 && duplicatesLive == 0 && missingOnReadCount == 0 && twiceOnRead.isEmpty
            && refused == 0 && badUploads.isEmpty && worstCatchUpSeconds <= catchUpLimit
    }
}

func summary(_ text: String) { report(text) }

extension Array {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var out: [T] = []
        for element in self { out.append(try await transform(element)) }
        return out
    }
}
