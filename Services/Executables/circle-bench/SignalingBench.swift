import ArgumentParser
import AsyncHTTPClient
import CircleCore
import CircleKit
import CircleProtocol
import Crypto
import Foundation
import HummingbirdWSClient
import NIOCore
import Synchronization

/// Call signaling through one or more signaling replicas: `calls` pairs of members each start a
/// call (on the first replica), answer it (on the next), and relay `signals` sealed signals of a
/// realistic size from the callee's device to the caller's, one at a time, alternating replicas.
/// Measures each signal from its POST to its arrival on the caller's socket, and the floor of
/// that path on this machine: a plain HTTP round trip to the same replicas.
struct SignalingBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "signaling",
        abstract: "Signal relay latency (POST to the recipient device's socket) over N calls, through one or more signaling replicas.",
        discussion: "Needs open registration. The URLs may all be one server (circle serve) or separate services."
    )

    @Option(help: "The gateway's base URL (registration, sockets).") var url = "http://127.0.0.1:8080"
    @Option(help: "The messaging service's base URL (default: --url).") var messagingURL: String?
    @Option(name: .customLong("signaling-urls"), help: "Signaling replicas' base URLs, separated by commas (default: --url); calls start on the first, are answered on the next, and signals alternate.")
    var signalingURLs: String?
    @Option(help: "Calls (each between two new members).") var calls = 50
    @Option(help: "Signals relayed per call, one at a time (an offer, an answer and candidates).") var signals = 20
    @Option(help: "Calls relaying at the same time.") var parallel = 5
    @Option(help: "Bytes of each signal's plaintext (an SDP offer is 3 to 6 KB).") var payloadBytes = 4000
    @Option(help: "CPU of these processes over the relay phase: name=pid,...") var cpu = ""

    func run() async throws {
        ProcessMemory.raiseFileLimit()
        let messaging = messagingURL ?? url
        let replicas = (signalingURLs ?? url).split(separator: ",").map(String.init)
        let accounts = (0..<(calls * 2)).map { BenchAccount(username: "s\($0)x\(UInt16.random(in: 0...UInt16.max))") }
        let tokens = try await PresenceBench.inParallel(accounts.indices, width: 32) { index in try await accounts[index].register(at: url) }
        let conversations = try await PresenceBench.inParallel(0..<calls, width: 16) { call in
            try await PresenceBench.createConversation([call * 2, call * 2 + 1], accounts: accounts, token: tokens[call * 2], at: messaging)
        }
        let devices = accounts.map { _ in Base64URL.encode(SecureRandom.bytes(16)) }
        report("setup: \(calls * 2) members, \(calls) conversations, \(replicas.count) signaling replica(s)")

        // The callers' sockets, naming their devices: each signal is timed to its arrival there.
        let arrivals = SignalArrivals()
        let socketURL = url.replacingOccurrences(of: "http://", with: "ws://") + "/api/v1/events"
        let ready = ReadyCounter()
        let hold = HoldSignal()
        let logger = quietLogger()
        // A child of this command's task (async let): the sockets close when `hold` is released
        // at the end, or with the command if it throws first.
        async let sockets: Void = withThrowingTaskGroup(of: Void.self) { group in
            for call in 0..<calls {
                let caller = call * 2
                group.addTask {
                    do {
                        try await WebSocketClient.connect(url: socketURL, configuration: .init(maxFrameSize: 1 << 20, autoPing: .disabled), logger: logger) { inbound, outbound, _ in
                            try await outbound.write(.text("{\"type\":\"auth\",\"token\":\"\(tokens[caller])\",\"device\":\"\(devices[caller])\"}"))
                            for try await message in inbound.messages(maxSize: 1 << 20) {
                                guard case .text(let text) = message else { continue }
                                if text.contains("\"type\":\"ready\"") {
                                    await ready.increment(failed: false)
                                } else if text.contains("\"type\":\"call.signal\"") {
                                    arrivals.arrived(text)
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
        do {
            await ready.waitUntil(calls)
            guard await ready.failed == 0 else { throw BenchError("\(await ready.failed) of \(calls) sockets failed") }

            // The floor: plain HTTP round trips to the replicas, same client, same loopback.
            var floor: [UInt64] = []
            for index in 0..<500 {
                let start = LatencyClock.now()
                _ = try await Self.request("GET", replicas[index % replicas.count] + "/healthz", token: nil, body: nil, expect: 200)
                floor.append(LatencyClock.now() &- start)
            }
            let floorSummary = LatencySummary(floor)
            report("floor: HTTP GET /healthz round trip p50 \(String(format: "%.2f", floorSummary.p50)) ms, p99 \(String(format: "%.2f", floorSummary.p99)) ms")

            let cpuTime = cpu.isEmpty ? nil : try ProcessCPU(cpu)
            let cpuStart = cpuTime?.sample()
            let started = ContinuousClock.now
            let plaintext = Array(String(repeating: "a=candidate:1 1 udp 2122260223 192.0.2.1 50000 typ host\r\n", count: payloadBytes / 58 + 1).utf8.prefix(payloadBytes))
            let setupLatencies = Mutex<[UInt64]>([])
            _ = try await PresenceBench.inParallel(0..<calls, width: parallel) { call in
                let caller = call * 2, callee = call * 2 + 1
                let startReply = try await Self.request("POST", replicas[0] + "/api/v1/calls", token: tokens[caller],
                                                        body: "{\"conversationId\":\"\(conversations[call])\",\"media\":\"video\",\"deviceId\":\"\(devices[caller])\"}", expect: 201)
                guard let callId = (try? JSONSerialization.jsonObject(with: Data(startReply.utf8)) as? [String: Any])?["id"] as? String else {
                    throw BenchError("no call id in \(startReply)")
                }
                let answered = LatencyClock.now()
                _ = try await Self.request("POST", replicas[1 % replicas.count] + "/api/v1/calls/\(callId)/join", token: tokens[callee],
                                           body: "{\"deviceId\":\"\(devices[callee])\",\"media\":\"video\"}", expect: 200)
                setupLatencies.withLock { $0.append(LatencyClock.now() &- answered) }
                var seq = UInt64(Timestamp.now().millis) * 1000
                for index in 0..<signals {
                    seq += 1
                    let address = CallSignalAddress(callId: Array(Base64URL.decode(callId)!), sender: accounts[callee].userId,
                                                    senderDevice: Array(Base64URL.decode(devices[callee])!), recipient: accounts[caller].userId,
                                                    recipientDevice: Array(Base64URL.decode(devices[caller])!), seq: seq)
                    let wire = try CallSignalWire.seal(plaintext, to: Array(accounts[caller].agreement.publicKey.rawRepresentation), address: address,
                                                       signer: accounts[callee].identity)
                    let payload = Base64URL.encode(wire.bytes)
                    let body = "{\"fromDevice\":\"\(devices[callee])\",\"toUser\":\"\(accounts[caller].userId)\",\"toDevice\":\"\(devices[caller])\",\"payload\":\"\(payload)\"}"
                    let arrival = arrivals.expect(payload)
                    _ = try await Self.request("POST", replicas[(index + 1) % replicas.count] + "/api/v1/calls/\(callId)/signal", token: tokens[callee], body: body, expect: 202)
                    try await arrival.wait(timeout: .seconds(10))
                }
                _ = try await Self.request("POST", replicas[0] + "/api/v1/calls/\(callId)/leave", token: tokens[caller], body: nil, expect: 200)
                return ()
            }
            let took = ContinuousClock.now - started
            let latency = LatencySummary(arrivals.latencies())
            let answers = LatencySummary(setupLatencies.withLock { $0 })
            report("relay: \(latency.count) signals of \(plaintext.count + CallSignalWire.overhead) bytes over \(calls) calls (\(parallel) at once) in \(took); POST to arrival p50 \(String(format: "%.2f", latency.p50)) ms, p99 \(String(format: "%.2f", latency.p99)) ms, max \(String(format: "%.2f", latency.max)) ms")
            report("answer (POST join): p50 \(String(format: "%.2f", answers.p50)) ms, p99 \(String(format: "%.2f", answers.p99)) ms")
            if let cpuTime, let cpuStart {
                report("  CPU ms per signal (start, answer and leave included): " + cpuTime.perMessage(from: cpuStart, to: cpuTime.sample(), messages: max(1, latency.count),
                                                                                                      server: Set(cpuTime.processes.map(\.name)).subtracting(["bench"])))
            }
        } catch {
            // The sockets end with the run, also when it fails.
            await hold.release()
            await sockets
            throw error
        }
        await hold.release()
        await sockets
    }

    /// One request; the body's text, after checking the status.
    static func request(_ method: String, _ url: String, token: String?, body: String?, expect: Int) async throws -> String {
        var request = HTTPClientRequest(url: url)
        request.method = .RAW(value: method)
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(string: body))
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let text = String(buffer: try await response.body.collect(upTo: 1 << 20))
        guard Int(response.status.code) == expect else { throw BenchError("\(method) \(url): \(response.status.code) \(text)") }
        return text
    }
}

/// When each signal was sent and when it arrived (matched by its payload, which is unique).
/// The arrival time is taken when the frame is read, so waiting by polling costs no accuracy.
final class SignalArrivals: Sendable {
    private struct State {
        var sent: [String: UInt64] = [:]
        var arrived: Set<String> = []
        var latencies: [UInt64] = []
    }

    private let state = Mutex(State())

    /// A signal about to be sent; `wait` returns once it arrived.
    struct Arrival: Sendable {
        let payload: String
        let arrivals: SignalArrivals

        func wait(timeout: Duration) async throws {
            let deadline = ContinuousClock.now + timeout
            while !arrivals.state.withLock({ $0.arrived.remove(payload) != nil }) {
                guard ContinuousClock.now < deadline else { throw BenchError("a signal did not arrive within \(timeout)") }
                try await Task.sleep(for: .microseconds(500))
            }
        }
    }

    func expect(_ payload: String) -> Arrival {
        let sent = LatencyClock.now()
        state.withLock { $0.sent[payload] = sent }
        return Arrival(payload: payload, arrivals: self)
    }

    func arrived(_ text: String) {
        let now = LatencyClock.now()
        guard let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
              let data = object["data"] as? [String: Any], let payload = data["payload"] as? String else { return }
        state.withLock { state in
            guard let sent = state.sent.removeValue(forKey: payload) else { return }
            state.latencies.append(now &- sent)
            state.arrived.insert(payload)
        }
    }

    func latencies() -> [UInt64] { state.withLock { $0.latencies } }
}
