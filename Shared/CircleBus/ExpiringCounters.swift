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
    /// Counts one attempt against every limit at once, unless one of them is making attempts
    /// wait: one atomic step across replicas, so concurrent attempts cannot all pass a check
    /// before any of them is counted.
    func attempt(_ limits: [AttemptLimit]) async throws -> AttemptOutcome
    /// Takes one back from a counter that still lives (an attempt that turned out fine).
    func decrement(_ key: String) async throws
    /// Takes one request from the token bucket `key` (`capacity` at most, refilled evenly over
    /// `period`): nil when taken, else how long until one is there (nothing is taken).
    func take(_ key: String, capacity: Int, period: Duration) async throws -> Duration?
}

/// A counter of attempts within a window: past its free ones, each attempt makes the next wait
/// (`firstWait`, doubling, up to a cap). The wait is the flag `key + ":wait"`.
public struct AttemptLimit: Sendable, Equatable {
    public var key: String
    public var free: Int
    public var window: Duration
    public var firstWait: Duration
    public var maximumWait: Duration

    public init(key: String, free: Int, window: Duration, firstWait: Duration = .seconds(1), maximumWait: Duration) {
        self.key = key
        self.free = free
        self.window = window
        self.firstWait = firstWait
        self.maximumWait = maximumWait
    }

    public var waitKey: String { key + ":wait" }

    /// The wait attempt number `count` starts (nil while free).
    public func wait(afterAttempt count: Int) -> Duration? {
        guard count > free else { return nil }
        return min(firstWait * (1 << min(count - free - 1, 20)), maximumWait)
    }
}

/// What `attempt` decided.
public enum AttemptOutcome: Sendable, Equatable {
    /// Counted; `waitStarted[i]` says the attempt passed limit i's free ones and started a wait.
    case admitted(waitStarted: [Bool])
    /// Not counted: a wait is running for this long.
    case refused(wait: Duration)
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

    /// KEYS: per limit its counter and its wait flag; ARGV: per limit window, free, first and
    /// maximum wait (durations in milliseconds). Returns {0, wait} when refused, else {1,
    /// started...}. The wait follows `AttemptLimit.wait(afterAttempt:)`.
    private static let attemptScript = """
        local limits = #KEYS / 2
        local longest = 0
        for i = 1, limits do
          local ttl = redis.call('PTTL', KEYS[2 * i])
          if ttl > longest then longest = ttl end
        end
        if longest > 0 then return {0, longest} end
        local reply = {1}
        for i = 1, limits do
          local n = redis.call('INCR', KEYS[2 * i - 1])
          if n == 1 then redis.call('PEXPIRE', KEYS[2 * i - 1], ARGV[4 * i - 3]) end
          local free = tonumber(ARGV[4 * i - 2])
          if n > free then
            local wait = math.min(tonumber(ARGV[4 * i - 1]) * 2 ^ math.min(n - free - 1, 20), tonumber(ARGV[4 * i]))
            redis.call('SET', KEYS[2 * i], '1', 'PX', math.max(1, math.floor(wait)))
            reply[#reply + 1] = 1
          else
            reply[#reply + 1] = 0
          end
        end
        return reply
        """

    private static let decrementScript = """
        if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('DECR', KEYS[1]) end
        return 0
        """

    public func attempt(_ limits: [AttemptLimit]) async throws -> AttemptOutcome {
        guard !limits.isEmpty else { return .admitted(waitStarted: []) }
        let keys = limits.flatMap { [counterKey($0.key), counterKey($0.waitKey)] }
        let arguments = limits.flatMap { [String($0.window.milliseconds), String($0.free), String($0.firstWait.milliseconds), String($0.maximumWait.milliseconds)] }
        let reply = try await command(["EVAL", Self.attemptScript, String(keys.count)] + keys + arguments)
        guard let values = reply.array?.compactMap(\.integer), let first = values.first else { throw RedisBusError.unexpectedReply("EVAL attempt") }
        if first == 0 { return .refused(wait: .milliseconds(values.count > 1 ? values[1] : 1)) }
        guard values.count == limits.count + 1 else { throw RedisBusError.unexpectedReply("EVAL attempt") }
        return .admitted(waitStarted: values.dropFirst().map { $0 == 1 })
    }

    public func decrement(_ key: String) async throws {
        try await command(["EVAL", Self.decrementScript, "1", counterKey(key)])
    }

    /// KEYS: the bucket (a hash of tokens and when they were counted, by Redis's clock); ARGV:
    /// capacity and period in milliseconds. Returns 0 when a token was taken, else the
    /// milliseconds until one is there.
    private static let takeScript = """
        local capacity = tonumber(ARGV[1])
        local period = tonumber(ARGV[2])
        local clock = redis.call('TIME')
        local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
        local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
        local tokens = tonumber(state[1]) or capacity
        local at = tonumber(state[2]) or now
        tokens = math.min(capacity, tokens + math.max(0, now - at) * capacity / period)
        if tokens < 1 then return math.max(1, math.ceil((1 - tokens) * period / capacity)) end
        redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - 1), 'at', tostring(now))
        redis.call('PEXPIRE', KEYS[1], period)
        return 0
        """

    public func take(_ key: String, capacity: Int, period: Duration) async throws -> Duration? {
        let reply = try await command(["EVAL", Self.takeScript, "1", counterKey(key), String(capacity), String(max(1, period.milliseconds))])
        guard let wait = reply.integer else { throw RedisBusError.unexpectedReply("EVAL take") }
        return wait == 0 ? nil : .milliseconds(wait)
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

    public func attempt(_ limits: [AttemptLimit]) -> AttemptOutcome {
        let longest = limits.compactMap { remaining($0.waitKey) }.max()
        if let longest { return .refused(wait: longest) }
        return .admitted(waitStarted: limits.map { limit in
            let count = increment(limit.key, window: limit.window)
            guard let wait = limit.wait(afterAttempt: count) else { return false }
            block(limit.waitKey, for: wait)
            return true
        })
    }

    public func decrement(_ key: String) {
        guard let entry = counters[key], entry.until > ContinuousClock.now else { return }
        counters[key] = (entry.value - 1, entry.until)
    }

    public func take(_ key: String, capacity: Int, period: Duration) -> Duration? {
        let now = ContinuousClock.now
        var bucket = buckets[key] ?? TokenBucket(capacity: capacity, period: period, now: now)
        let wait = bucket.take(now: now)
        buckets[key] = bucket
        if buckets.count > 100_000 { buckets = buckets.filter { now - $0.value.counted < period } }
        return wait
    }
}

/// A token bucket: `capacity` at once, refilled evenly over `period`. The in-process bus keeps
/// one per key; a realtime socket keeps its own for its frames.
public struct TokenBucket: Sendable {
    private let capacity: Double
    private let perToken: Duration
    private var tokens: Double
    /// When the bucket was last counted.
    private(set) var counted: ContinuousClock.Instant

    public init(capacity: Int, period: Duration, now: ContinuousClock.Instant = .now) {
        self.capacity = Double(capacity)
        perToken = period / capacity
        tokens = Double(capacity)
        counted = now
    }

    /// Takes one token: nil when there was one, else how long until there is.
    public mutating func take(now: ContinuousClock.Instant = .now) -> Duration? {
        tokens = min(capacity, tokens + (now - counted) / perToken)
        counted = now
        guard tokens >= 1 else { return perToken * (1 - tokens) }
        tokens -= 1
        return nil
    }
}
