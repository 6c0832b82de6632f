import ArgumentParser
import CircleBus
import CircleConfig
import CircleEvents
import Dispatch
import Foundation
import HummingbirdWSClient
import Logging
import NIOCore

/// (b) Events published through Redis to M connected users: delivered per second and the
/// latency from PUBLISH to the client receiving the frame.
struct EventsBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "Publish events through Redis to M users with sockets on a gateway; report delivery rate and latency."
    )

    @Option(help: "The gateway's base URL.") var url = "http://127.0.0.1:8081"
    @Option(help: "The Redis the gateway uses.") var redisURL = "redis://127.0.0.1:6379"
    @Option(help: "The gateway's Redis key prefix.") var redisPrefix = "circle:"
    @Option(help: "Connected users (one socket each).") var users = 100
    @Option(help: "Events per second to publish, spread over the users.") var rate = 5000
    @Option(help: "Seconds to publish for.") var duration = 10
    @Option(help: "Seconds of warm-up before measuring.") var warmup = 2

    func run() async throws {
        ProcessMemory.raiseFileLimit()
        let logger = quietLogger()
        let bus = RedisBus(settings: try RedisSettings.parse(redisURL, prefix: redisPrefix), logger: logger)
        try await bus.preflight()
        let socketURL = url.replacingOccurrences(of: "http://", with: "ws://") + "/api/v1/events"
        var accounts: [(userId: String, token: String)] = []
        for index in 0..<users {
            let account = BenchAccount(username: "ev\(index)x\(UInt32.random(in: 0...UInt32.max))")
            accounts.append((account.userId, try await account.register(at: url)))
        }
        let members = accounts
        let recorder = LatencyRecorder()
        let ready = ReadyCounter()
        let hold = HoldSignal()
        let sockets = Task {
            await withTaskGroup(of: Void.self) { group in
                for (_, token) in members {
                    group.addTask {
                        do {
                            try await WebSocketClient.connect(url: socketURL, configuration: .init(maxFrameSize: 1 << 16, autoPing: .disabled), logger: logger) { inbound, outbound, _ in
                                try await outbound.write(.text("{\"type\":\"auth\",\"token\":\"\(token)\"}"))
                                var accepted = false
                                for try await message in inbound.messages(maxSize: 1 << 16) {
                                    guard case .text(let text) = message else { continue }
                                    let now = DispatchTime.now().uptimeNanoseconds
                                    if !accepted, text.contains("\"ready\"") {
                                        accepted = true
                                        await ready.increment(failed: false)
                                    } else if let sent = Self.sentAt(text) {
                                        recorder.record(now &- sent)
                                    }
                                }
                            }
                        } catch {
                            await ready.increment(failed: true)
                        }
                    }
                }
                await hold.wait()
                group.cancelAll()
            }
        }
        await ready.waitUntil(users)
        guard await ready.failed == 0 else { throw BenchError("some sockets were not accepted") }

        // Publish at a steady pace: one batch per millisecond.
        let perTick = Double(rate) / 1000
        var published = 0
        var measuredFrom = 0
        let start = ContinuousClock.now
        let warmEnd = start + .seconds(warmup)
        let end = warmEnd + .seconds(duration)
        var tick = 0
        var owed = 0.0
        var measuring = false
        while ContinuousClock.now < end {
            if !measuring, ContinuousClock.now >= warmEnd {
                measuring = true
                recorder.reset()
                measuredFrom = published
            }
            owed += perTick
            // This tick's events go out together (pipelined on the bus's connection), so the
            // publisher is not limited by one round trip per event.
            var batch: [String] = []
            while owed >= 1 {
                batch.append(members[published % members.count].userId)
                published += 1
                owed -= 1
            }
            try await withThrowingTaskGroup(of: Void.self) { group in
                for target in batch {
                    group.addTask {
                        // A live frame (no sequence number), in the bus encoding every publisher uses.
                        let body = "{\"type\":\"bench\",\"data\":{\"t\":\(DispatchTime.now().uptimeNanoseconds)}}"
                        try await bus.publish(EventFrame(routing: .init(), body: ByteBuffer(string: body)).encoded(), to: "user.\(target)")
                    }
                }
                try await group.waitForAll()
            }
            tick += 1
            try await Task.sleep(until: start + .milliseconds(tick), clock: .continuous)
        }
        let sentMeasured = published - measuredFrom
        try await Task.sleep(for: .seconds(1))
        let latencies = recorder.snapshot()
        await hold.release()
        sockets.cancel()
        let summary = LatencySummary(latencies)
        report("""
            events: \(users) users, target \(rate)/s for \(duration) s after \(warmup) s warm-up
            published \(sentMeasured), delivered \(summary.count) (\(String(format: "%.0f", Double(summary.count) / Double(duration)))/s)
            publish-to-receive latency: \(summary.text)
            """)
    }

    /// The publish time carried in a bench frame.
    static func sentAt(_ text: String) -> UInt64? {
        guard let range = text.range(of: "\"t\":") else { return nil }
        return UInt64(text[range.upperBound...].prefix { $0.isNumber })
    }
}

/// Latencies from many sockets, kept under a lock (recorded off the cooperative pool's hot path).
final class LatencyRecorder: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [UInt64] = []

    init() { values.reserveCapacity(1 << 20) }

    func record(_ nanos: UInt64) {
        lock.lock()
        values.append(nanos)
        lock.unlock()
    }

    func reset() {
        lock.lock()
        values.removeAll(keepingCapacity: true)
        lock.unlock()
    }

    func snapshot() -> [UInt64] {
        lock.lock()
        defer { lock.unlock() }
        return values
    }
}
