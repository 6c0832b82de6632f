import CircleCore
/// Small shared counters and flags that expire: rate limits and backoff shared by every
/// replica (ARCHITECTURE 9). Redis in the scaled mode, process memory in the embedded one.
public protocol ExpiringCounters: Sendable {
    /// Adds one to `key` and returns the new value; a new key lives for `window`.
    func increment(_ key: String, window: Duration) async throws -> Int
    /// Sets a flag that disappears after `duration`.
    func block(_ key: String, for duration: Duration) async throws
    /// How long the flag `key` still lives, or nil when it is not set.
    func remaining(_ key: String) async throws -> Duration?
    /// Removes keys.
    func reset(_ keys: [String]) async throws
}

extension RedisBus: ExpiringCounters {
    private static let incrementScript = """
        local n = redis.call('INCR', KEYS[1])
        if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
        return n
        """

    public func increment(_ key: String, window: Duration) async throws -> Int {
        let reply = try await command(["EVAL", Self.incrementScript, "1", counterKey(key), String(window.milliseconds)])
        guard let value = reply.integer else { throw RedisBusError.unexpectedReply("EVAL INCR") }
        return Int(value)
    }

    public func block(_ key: String, for duration: Duration) async throws {
        try await command(["SET", counterKey(key), "1", "PX", String(max(1, duration.milliseconds))])
    }

    public func remaining(_ key: String) async throws -> Duration? {
        guard let ttl = try await command(["PTTL", counterKey(key)]).integer, ttl > 0 else { return nil }
        return .milliseconds(ttl)
    }

    public func reset(_ keys: [String]) async throws {
        guard !keys.isEmpty else { return }
        try await command(["DEL"] + keys.map(counterKey))
    }

    private func counterKey(_ key: String) -> String { settings.prefix + "counter:" + key }
}

extension LocalBus: ExpiringCounters {
    public func increment(_ key: String, window: Duration) -> Int {
        let now = ContinuousClock.now
        if let entry = counters[key], entry.until > now {
            counters[key] = (entry.value + 1, entry.until)
            return entry.value + 1
        }
        counters[key] = (1, now + window)
        if counters.count > 100_000 { counters = counters.filter { $0.value.until > now } }
        return 1
    }

    public func block(_ key: String, for duration: Duration) {
        counters[key] = (1, ContinuousClock.now + duration)
    }

    public func remaining(_ key: String) -> Duration? {
        guard let entry = counters[key] else { return nil }
        let left = entry.until - ContinuousClock.now
        return left > .zero ? left : nil
    }

    public func reset(_ keys: [String]) {
        for key in keys { counters[key] = nil }
    }
}
