import Foundation
import HummingbirdWSClient
import Logging
import NIOCore
import NIOWebSocket

/// A real WebSocket client for tests: frames received arrive in order on `next()`, and the
/// close code the server sent is kept.
public final class TestSocket: Sendable {
    private let frames: FrameQueue
    private let outgoing: AsyncStream<String>.Continuation
    private let task: Task<WebSocketCloseFrame?, any Error>

    private init(frames: FrameQueue, outgoing: AsyncStream<String>.Continuation, task: Task<WebSocketCloseFrame?, any Error>) {
        self.frames = frames
        self.outgoing = outgoing
        self.task = task
    }

    /// Connects to `url` (ws://host:port/path).
    public static func connect(_ url: String) async throws -> TestSocket {
        let frames = FrameQueue()
        let (outgoingStream, outgoing) = AsyncStream.makeStream(of: String.self)
        var logger = Logger(label: "test.socket")
        logger.logLevel = .critical
        let task = Task {
            try await WebSocketClient.connect(url: url, configuration: .init(maxFrameSize: 1 << 20), logger: logger) { inbound, outbound, _ in
                defer { Task { await frames.finish() } }
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        for await text in outgoingStream { try await outbound.write(.text(text)) }
                    }
                    do {
                        for try await message in inbound.messages(maxSize: 1 << 20) {
                            if case .text(let text) = message { await frames.push(text) }
                        }
                    } catch {}
                    await frames.finish()
                    group.cancelAll()
                }
            }
        }
        return TestSocket(frames: frames, outgoing: outgoing, task: task)
    }

    /// Connects and authenticates; returns the socket and the `ready` frame's lastSeq.
    public static func authenticated(_ url: String, token: String, since: Int64? = nil, device: String? = nil) async throws -> (TestSocket, Int64) {
        let socket = try await connect(url)
        socket.send(authFrame(token: token, since: since, device: device))
        var frame = try await socket.next()
        // Catch-up frames come before `ready`; callers wanting them use `connect` directly.
        var skipped: [String] = []
        while let current = frame, !current.contains("\"type\":\"ready\"") {
            skipped.append(current)
            frame = try await socket.next()
        }
        guard let ready = frame, let seq = TestJSON.int(ready, path: ["data", "lastSeq"]) else {
            throw TestSupportError("no ready frame (got \(skipped), closed with \(String(describing: try? await socket.closeCode())))")
        }
        return (socket, Int64(seq))
    }

    public static func authFrame(token: String, since: Int64? = nil, device: String? = nil) -> String {
        var frame = "{\"type\":\"auth\",\"token\":\"\(token)\""
        if let since { frame += ",\"since\":\(since)" }
        if let device { frame += ",\"device\":\"\(device)\"" }
        return frame + "}"
    }

    public func send(_ text: String) { outgoing.yield(text) }

    /// Live-only frames about other things than the test's events (presence, typing, the
    /// security activity list), which `next` skips.
    public static let ambient: Set<String> = ["presence", "typing", "activity.new"]

    /// The next text frame that is not ambient (see `ambient`); nil once the socket closed.
    /// Fails after `timeout` (the frames still to come stay queued).
    public func next(timeout: Duration = .seconds(30)) async throws -> String? {
        let deadline = ContinuousClock.now + timeout
        while true {
            guard let frame = try await frames.next(timeout: max(.zero, deadline - ContinuousClock.now)) else { return nil }
            if let type = TestJSON.string(frame, path: ["type"]), Self.ambient.contains(type) { continue }
            return frame
        }
    }

    /// The next text frame of any kind.
    public func nextFrame(timeout: Duration = .seconds(30)) async throws -> String? {
        try await frames.next(timeout: timeout)
    }

    /// The next frame of `type` (others are skipped); nil once the socket closed.
    public func next(ofType type: String, timeout: Duration = .seconds(30)) async throws -> String? {
        let deadline = ContinuousClock.now + timeout
        while true {
            guard let frame = try await frames.next(timeout: max(.zero, deadline - ContinuousClock.now)) else { return nil }
            if TestJSON.string(frame, path: ["type"]) == type { return frame }
        }
    }

    /// Waits for the server to close; returns its close code.
    public func closeCode(timeout: Duration = .seconds(40)) async throws -> UInt16? {
        let task = self.task
        let frame = try await withThrowingTaskGroup(of: WebSocketCloseFrame?.self) { group in
            group.addTask { try await task.value }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw TestSupportError("the socket stayed open for \(timeout)")
            }
            let first = try await group.next()!
            group.cancelAll()
            return first
        }
        return frame.map { UInt16(webSocketErrorCode: $0.closeCode) }
    }

    /// Closes from the client side.
    public func close() {
        outgoing.finish()
        task.cancel()
    }
}

/// Frames received and not yet read, with waits that time out without losing anything.
actor FrameQueue {
    private var frames: [String] = []
    private var finished = false
    private var waiter: (id: UInt64, continuation: CheckedContinuation<Void, Never>)?
    private var nextWaiter: UInt64 = 0

    func push(_ frame: String) {
        frames.append(frame)
        wake()
    }

    func finish() {
        finished = true
        wake()
    }

    private func wake() {
        waiter?.continuation.resume()
        waiter = nil
    }

    func next(timeout: Duration) async throws -> String? {
        let deadline = ContinuousClock.now + timeout
        while frames.isEmpty, !finished {
            guard ContinuousClock.now < deadline else { throw TestSupportError("no frame within \(timeout)") }
            nextWaiter += 1
            let id = nextWaiter
            Task {
                try? await Task.sleep(until: deadline, clock: .continuous)
                self.timeOut(id)
            }
            await withCheckedContinuation { waiter = (id, $0) }
        }
        return frames.isEmpty ? nil : frames.removeFirst()
    }

    private func timeOut(_ id: UInt64) {
        if waiter?.id == id { wake() }
    }
}

/// Moves a non-Sendable value into a child task that alone uses it.
final class UncheckedBox<T>: @unchecked Sendable {
    var value: T
    init(_ value: T) { self.value = value }
}

/// Tiny JSON helpers for assertions.
public enum TestJSON {
    public static func object(_ text: String) -> [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any]
    }

    public static func value(_ text: String, path: [String]) -> Any? {
        var current: Any? = object(text)
        for key in path { current = (current as? [String: Any])?[key] }
        return current
    }

    public static func string(_ text: String, path: [String]) -> String? { value(text, path: path) as? String }
    public static func int(_ text: String, path: [String]) -> Int? { (value(text, path: path) as? NSNumber)?.intValue }
}
