import ArgumentParser
import Foundation
import HummingbirdWSClient
import Logging
import NIOCore
import NIOPosix

/// (a) Many idle authenticated sockets on one gateway: resident memory per connection.
struct ConnectionsBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "connections",
        abstract: "Open N idle authenticated WebSockets to one gateway and report its resident memory per connection."
    )

    @Option(help: "The gateway's base URL.") var url = "http://127.0.0.1:8081"
    @Option(help: "The gateway's process id (its memory is read from /proc).") var pid: Int32
    @Option(help: "How many sockets.") var count = 10_000
    @Option(help: "How many sessions the sockets share.") var sessions = 10
    @Option(help: "How many sockets connect at once.") var concurrency = 200
    @Option(help: "Seconds to hold the sockets open before measuring.") var settle = 3

    func run() async throws {
        ProcessMemory.raiseFileLimit()
        let account = BenchAccount(username: "bench\(UInt32.random(in: 0...UInt32.max))")
        var tokens = [try await account.register(at: url)]
        while tokens.count < sessions { tokens.append(try await account.logIn(at: url)) }
        let socketURL = url.replacingOccurrences(of: "http://", with: "ws://") + "/api/v1/events"
        // Let the gateway settle after the logins before the baseline.
        try await Task.sleep(for: .seconds(2))
        let before = try ProcessMemory.residentKiB(pid: pid)
        let hold = HoldSignal()
        let ready = ReadyCounter()
        let logger = quietLogger()
        let start = ContinuousClock.now
        let clients = Task {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<count {
                    if index >= concurrency {
                        // Keep at most `concurrency` handshakes in flight.
                        await ready.waitUntil(index - concurrency + 1)
                    }
                    let token = tokens[index % tokens.count]
                    group.addTask {
                        do {
                            try await WebSocketClient.connect(url: socketURL, configuration: .init(maxFrameSize: 1 << 16, autoPing: .disabled), logger: logger) { inbound, outbound, _ in
                                try await outbound.write(.text("{\"type\":\"auth\",\"token\":\"\(token)\"}"))
                                var iterator = inbound.messages(maxSize: 1 << 16).makeAsyncIterator()
                                guard let first = try await iterator.next(), case .text(let text) = first, text.contains("\"ready\"") else {
                                    throw BenchError("a socket was not accepted")
                                }
                                await ready.increment(failed: false)
                                await hold.wait()
                            }
                        } catch {
                            await ready.increment(failed: true)
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        await ready.waitUntil(count)
        let connected = ContinuousClock.now - start
        let failed = await ready.failed
        guard failed == 0 else {
            await hold.release()
            clients.cancel()
            throw BenchError("\(failed) of \(count) sockets were not accepted (file limits? run with ulimit -n 65536)")
        }
        try await Task.sleep(for: .seconds(settle))
        let after = try ProcessMemory.residentKiB(pid: pid)
        await hold.release()
        clients.cancel()
        _ = await clients.result
        let perConnection = Double(after - before) / Double(count)
        report("""
            connections: \(count) idle authenticated sockets sharing \(sessions) sessions, connected in \(connected)
            gateway RSS: \(before) KiB before, \(after) KiB with the sockets open
            per connection: \(String(format: "%.1f", perConnection)) KiB
            """)
    }
}

/// Counts accepted sockets; lets callers wait for a count.
actor ReadyCounter {
    private var value = 0
    private(set) var failed = 0
    private var waiters: [(Int, CheckedContinuation<Void, Never>)] = []

    /// One socket is done connecting, accepted or not.
    func increment(failed didFail: Bool) {
        value += 1
        if didFail { failed += 1 }
        waiters.removeAll { target, continuation in
            if value >= target { continuation.resume(); return true }
            return false
        }
    }

    func waitUntil(_ target: Int) async {
        if value >= target { return }
        await withCheckedContinuation { waiters.append((target, $0)) }
    }
}

/// Holds sockets open until released.
actor HoldSignal {
    private var released = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func wait() async {
        if released { return }
        await withCheckedContinuation { waiters.append($0) }
    }

    func release() {
        released = true
        for waiter in waiters { waiter.resume() }
        waiters = []
    }
}
