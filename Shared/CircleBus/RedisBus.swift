import CircleCore
import CircleConfig
import Logging
import NIOCore
import ServiceLifecycle

/// The bus of the scaled mode: Redis pub/sub and streams, over SwiftNIO with hiredis's parser.
///
/// Three kinds of connection: one pipelined command connection (PUBLISH, XADD, XACK, ...),
/// one subscriber connection kept alive by `run()`, and a small pool for blocking stream reads.
/// All of them reconnect by themselves after Redis restarts. No call blocks a thread.
public final class RedisBus: MessageBus, Service {
    public let settings: RedisSettings
    private let logger: Logger
    private let commands: ConnectionSlot
    private let blocking: BlockingPool
    private let subscriber: RedisSubscriber

    public init(settings: RedisSettings, logger: Logger) {
        self.settings = settings
        self.logger = logger
        self.commands = ConnectionSlot(settings: settings)
        self.blocking = BlockingPool(settings: settings)
        self.subscriber = RedisSubscriber(settings: settings, logger: logger)
    }

    /// Connects once and pings, failing with a line naming `redis.url` when Redis is unreachable.
    public func preflight() async throws {
        do {
            try await ping()
        } catch {
            throw ConfigError(.redisURL, "cannot reach Redis at \(settings): \(error)")
        }
    }

    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await self.subscriber.run()
        }
        await commands.close()
        await blocking.close()
    }

    private func key(_ name: String) -> String { settings.prefix + name }

    @discardableResult
    func command(_ arguments: [ByteBuffer]) async throws -> RESPValue {
        try await commands.connection().send(arguments)
    }

    @discardableResult
    func command(_ arguments: [String]) async throws -> RESPValue {
        try await command(arguments.map { ByteBuffer(string: $0) })
    }

    public func publish(_ payload: ByteBuffer, to channel: String) async throws {
        try await command([ByteBuffer(string: "PUBLISH"), ByteBuffer(string: key(channel)), payload])
    }

    public func publish(_ messages: [(payload: ByteBuffer, channel: String)]) async -> [Bool] {
        guard !messages.isEmpty else { return [] }
        let connection: RedisConnection
        do {
            connection = try await commands.connection()
        } catch {
            return Array(repeating: false, count: messages.count)
        }
        let publish = ByteBuffer(string: "PUBLISH")
        var accepted: [Bool] = []
        accepted.reserveCapacity(messages.count)
        // In slices, so a huge batch (a large group) does not sit in memory all at once.
        for start in stride(from: 0, to: messages.count, by: Self.publishSlice) {
            let slice = messages[start..<min(start + Self.publishSlice, messages.count)]
            accepted += await connection.sendAll(slice.map { [publish, ByteBuffer(string: key($0.channel)), $0.payload] })
        }
        return accepted
    }

    /// The most publishes written before waiting for their replies.
    static let publishSlice = 1_000

    public func subscribe(to channel: String) async throws -> BusSubscription {
        let (stream, sink) = BusSink.makeStream()
        return await subscriber.subscribe(channel: key(channel), logicalName: channel, sink: sink, events: stream)
    }

    public func subscribe(to channel: String, handler: @escaping @Sendable (BusEvent) -> Void) async throws -> BusSubscription {
        await subscriber.subscribe(channel: key(channel), logicalName: channel, sink: .handler(handler), events: BusSink.noEvents)
    }

    public func createGroup(stream: String, group: String) async throws {
        do {
            try await command(["XGROUP", "CREATE", key(stream), group, "0", "MKSTREAM"])
        } catch RedisBusError.server(let message) where message.hasPrefix("BUSYGROUP") {
            // Already there: creating is idempotent.
        }
    }

    public func add(to stream: String, fields: [String: String], maxLength: Int?) async throws -> String {
        var arguments = ["XADD", key(stream)]
        // "~": Redis trims whole nodes of its radix tree, so a little more than maxLength stays.
        if let maxLength { arguments += ["MAXLEN", "~", String(maxLength)] }
        arguments.append("*")
        for (name, value) in fields.sorted(by: { $0.key < $1.key }) { arguments += [name, value] }
        guard let id = try await command(arguments).string else { throw RedisBusError.unexpectedReply("XADD returned no id") }
        return id
    }

    public func readGroup(stream: String, group: String, consumer: String, count: Int, block: Duration?) async throws -> [StreamEntry] {
        var arguments = ["XREADGROUP", "GROUP", group, consumer, "COUNT", String(count)]
        if let block { arguments += ["BLOCK", String(max(1, block.milliseconds))] }
        arguments += ["STREAMS", key(stream), ">"]
        let reply: RESPValue
        let command = arguments
        if block == nil {
            reply = try await self.command(command)
        } else {
            // A blocking read holds its connection; it gets one of its own.
            reply = try await blocking.withConnection { connection in
                try await withTaskCancellationHandler {
                    try await connection.command(command)
                } onCancel: {
                    connection.close()
                }
            }
        }
        guard case .array(let streams) = reply, let first = streams.first?.array, first.count == 2 else { return [] }
        return Self.entries(first[1])
    }

    public func ack(stream: String, group: String, ids: [String]) async throws {
        guard !ids.isEmpty else { return }
        try await command(["XACK", key(stream), group] + ids)
    }

    public func claimIdle(stream: String, group: String, consumer: String, minIdle: Duration, count: Int) async throws -> [StreamEntry] {
        let reply = try await command(["XAUTOCLAIM", key(stream), group, consumer, String(minIdle.milliseconds), "0-0", "COUNT", String(count)])
        guard let parts = reply.array, parts.count >= 2 else { throw RedisBusError.unexpectedReply("XAUTOCLAIM") }
        return Self.entries(parts[1])
    }

    public func ping() async throws {
        try await command(["PING"])
    }

    /// Decodes `[[id, [field, value, ...]], ...]`, skipping entries deleted meanwhile.
    static func entries(_ value: RESPValue) -> [StreamEntry] {
        guard let items = value.array else { return [] }
        return items.compactMap { item in
            guard let pair = item.array, pair.count == 2, let id = pair[0].string, let flat = pair[1].array else { return nil }
            var fields: [String: String] = [:]
            var index = 0
            while index + 1 < flat.count {
                if let name = flat[index].string { fields[name] = flat[index + 1].string ?? "" }
                index += 2
            }
            return StreamEntry(id: id, fields: fields)
        }
    }
}

/// Holds the shared command connection, reconnecting on demand (one connect at a time).
actor ConnectionSlot {
    private let settings: RedisSettings
    private var current: RedisConnection?
    private var connecting: Task<RedisConnection, any Error>?

    init(settings: RedisSettings) { self.settings = settings }

    func connection() async throws -> RedisConnection {
        if let current, current.isActive { return current }
        if let connecting { return try await connecting.value }
        let settings = self.settings
        let task = Task { try await RedisConnection.connect(settings) }
        connecting = task
        defer { connecting = nil }
        let connection = try await task.value
        current = connection
        return connection
    }

    func close() {
        current?.close()
        current = nil
    }
}

/// Idle connections for blocking reads, reused while alive.
actor BlockingPool {
    private let settings: RedisSettings
    private var idle: [RedisConnection] = []
    private var closed = false

    init(settings: RedisSettings) { self.settings = settings }

    private func checkout() async throws -> RedisConnection {
        while let connection = idle.popLast() {
            if connection.isActive { return connection }
        }
        return try await RedisConnection.connect(settings)
    }

    private func checkin(_ connection: RedisConnection) {
        if closed || !connection.isActive || idle.count >= 8 {
            connection.close()
        } else {
            idle.append(connection)
        }
    }

    nonisolated func withConnection<R: Sendable>(_ body: @Sendable (RedisConnection) async throws -> R) async throws -> R {
        let connection = try await checkout()
        do {
            let result = try await body(connection)
            await checkin(connection)
            return result
        } catch {
            connection.close()
            throw error
        }
    }

    func close() {
        closed = true
        for connection in idle { connection.close() }
        idle = []
    }
}
