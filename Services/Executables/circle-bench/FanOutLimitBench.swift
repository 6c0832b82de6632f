import ArgumentParser
import CircleBus
import Foundation
import Synchronization

/// The machine's limit for the typing benchmark: the same fan-out (N connected members, each in
/// K conversations of G members, R frames a second each to a conversation's other members), done
/// by Redis pub/sub in place of Circle. Redis is a single-threaded C server that does nothing
/// else: each member is a connection subscribed to its conversations' channels, and a publisher
/// sends each frame stamped with when it was sent. What it reaches on this machine, with this
/// load generator beside it, bounds what Circle's gateway can (BENCHMARKS.md).
struct FanOutLimitBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fanout-limit",
        abstract: "The typing benchmark's fan-out done by Redis pub/sub alone: the machine's limit for it.",
        discussion: "Uses channels under --prefix and raises the server's maxclients to fit the members. Bounded: it sends rate x seconds frames and stops."
    )

    @Option(help: "The Redis server: redis://host:port.") var redis = "redis://127.0.0.1:6379"
    @Option(help: "Channel name prefix.") var prefix = "bench:limit:"
    @Option(help: "Members, each one connection.") var users = 10_000
    @Option(help: "Conversations each member is in.") var perUser = 20
    @Option(help: "Members of each conversation.") var groupSize = 50
    @Option(help: "Frames per second.") var rate = 1000
    @Option(help: "Seconds of sending.") var seconds = 10
    @Option(help: "CPU of these processes: name=pid,...") var cpu = ""
    @Option(help: "Connections opened at once while setting up.") var concurrency = 256

    func run() async throws {
        ProcessMemory.raiseFileLimit()
        guard let address = URL(string: redis), address.scheme == "redis", let host = address.host, let port = address.port else {
            throw BenchError("--redis wants redis://host:port: \(redis)")
        }
        guard groupSize >= 2, users >= groupSize, perUser >= 1, rate >= 1, seconds >= 1 else {
            throw BenchError("needs --group-size of at least 2, --users of at least --group-size, and --per-user, --rate and --seconds of at least 1")
        }
        let layout = ConversationLayout(users: users, perUser: perUser, groupSize: groupSize)
        let pairs = layout.shuffledPairs(upTo: rate * seconds)
        let clock = FanOutClock(expected: pairs.count * groupSize)
        let receivers = Atomic<Int>(0)
        // The first reply is CONFIG SET's; the others are PUBLISH's receiver counts.
        let configured = Outcome()
        let publisher = try await BenchRedisConnection.connect(host: host, port: port, onReply: { reply in
            if case .integer(let count) = reply { receivers.add(count, ordering: .relaxed) }
            configured.settle(reply != .error)
        }, onClose: { configured.settle(false) })
        // One connection per member, and one for publishing: more than Redis's default 10,000.
        publisher.send(["CONFIG", "SET", "maxclients", String(users + 1000)])
        guard await configured.value else { throw BenchError("Redis refused CONFIG SET maxclients \(users + 1000) (its open-file limit?)") }

        let connectStart = ContinuousClock.now
        let members = try await PresenceBench.inParallel(0..<users, width: concurrency) { [prefix] member -> BenchRedisConnection in
            let channels = layout.conversationsOf[member].map { "\(prefix)\($0)" }
            let subscribed = Outcome()
            let connection = try await BenchRedisConnection.connect(host: host, port: port, onReply: { reply in
                switch reply {
                case .message(let sent, let sender): clock.received(sent: sent, from: sender, by: member)
                case .subscribed(let count) where count == channels.count: subscribed.settle(true)
                case .error: subscribed.settle(false)
                default: break
                }
            }, onClose: { subscribed.settle(false) })
            connection.send(["SUBSCRIBE"] + channels)
            guard await subscribed.value else { throw BenchError("member \(member)'s connection was refused or closed before it subscribed (ulimit -n, maxclients?)") }
            return connection
        }
        report("fan-out limit: \(users) connections to Redis, each subscribed to its \(perUser) of \(layout.groups.count) conversations of \(groupSize), in \(ContinuousClock.now - connectStart)")

        let cpuTime = cpu.isEmpty ? nil : try ProcessCPU(cpu)
        let cpuStart = cpuTime?.sample()
        let total = pairs.count
        let sendingTook = try await paced(pairs, perSecond: rate) { member, conversation in
            publisher.send(["PUBLISH", "\(prefix)\(conversation)", "\(LatencyClock.now()) \(member)"])
        }
        _ = await PresenceBench.settle { clock.frames }
        let latency = LatencySummary(clock.latencies())
        report("fan-out limit: \(total) frames in \(sendingTook) \(rateText(total, over: sendingTook)), \(latency.count) of \(total * (groupSize - 1)) deliveries to other members (Redis wrote \(receivers.load(ordering: .relaxed)), the sender's own included); latency \(latency.text)")
        if let cpuTime, let cpuStart {
            report("  CPU ms per frame sent (\(total)): " + cpuTime.perMessage(from: cpuStart, to: cpuTime.sample(), messages: max(1, total),
                                                                     server: Set(cpuTime.processes.map(\.name)).subtracting(["bench"])))
        }
        for member in members { member.close() }
        publisher.close()
    }
}

/// When each frame of the fan-out limit was sent (stamped in it) and how long it took to arrive.
final class FanOutClock: Sendable {
    private let arrivals: Mutex<[UInt64]>
    private let received = Atomic<Int>(0)

    /// Room for `expected` arrivals up front: the array is not copied to grow while frames arrive.
    init(expected: Int) {
        var arrivals: [UInt64] = []
        arrivals.reserveCapacity(expected)
        self.arrivals = Mutex(arrivals)
    }

    /// Frames received, the senders' own included.
    var frames: Int { received.load(ordering: .relaxed) }

    /// A frame sent at `sent` by `sender` arrived at `member`: timed unless it is the sender's own.
    func received(sent: UInt64, from sender: Int, by member: Int) {
        let arrived = LatencyClock.now()
        received.add(1, ordering: .relaxed)
        guard sender != member else { return }
        arrivals.withLock { $0.append(arrived &- sent) }
    }

    func latencies() -> [UInt64] { arrivals.withLock { $0 } }
}
