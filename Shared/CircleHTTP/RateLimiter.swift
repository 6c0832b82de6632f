import CircleBus
import CircleConfig
import CircleCore
import Logging
import Metrics

/// Applies the named rate limits (`RateLimitName`) with the values in force, in buckets shared by
/// every replica (Redis in the scaled mode, process memory in the embedded one). A request over
/// its limit gets 429 `rate-limited` with Retry-After and is counted in
/// `circle_rate_limited_total{limit}`.
public struct RateLimiter: Sendable {
    let counters: any ExpiringCounters
    let limits: RateLimits
    let logger: Logger

    public init(counters: any ExpiringCounters, limits: RateLimits, logger: Logger) {
        self.counters = counters
        self.limits = limits
        self.logger = logger
    }

    /// Takes one request from `name`'s bucket for `subject` (a member id or a client address), or
    /// throws 429. When the buckets cannot be reached the request goes on: a limit protects
    /// capacity, and Redis being away should not take the service down with it.
    public func check(_ name: RateLimitName, for subject: String) async throws {
        let limit = limits[name]
        let wait: Duration?
        do {
            wait = try await counters.take("rate:" + name.rawValue + ":" + subject, capacity: limit.capacity, period: limit.period)
        } catch {
            logger.warning("rate limits unavailable", metadata: ["limit": "\(name.rawValue)", "error": "\(error)"])
            return
        }
        guard let wait else { return }
        countRefusal(name)
        throw Problem.rateLimited(name.rawValue, what: name.summary, retryAfterSeconds: Problem.retryAfterSeconds(wait))
    }

    /// The bucket in force for `name`.
    public func limit(_ name: RateLimitName) -> RateLimit { limits[name] }

    /// Counts a refusal made outside `check` (a bucket kept with its subject, such as a socket's).
    public func countRefusal(_ name: RateLimitName) {
        Counter(label: "circle_rate_limited_total", dimensions: [("limit", name.rawValue)]).increment()
    }
}

/// A token bucket kept by its one user (a socket's frames): `capacity` at once, refilled evenly
/// over `period`. Not shared, so no locking and no bus.
public struct LocalBucket: Sendable {
    private let capacity: Double
    private let perSecond: Double
    private var tokens: Double
    private var counted: ContinuousClock.Instant

    public init(_ limit: RateLimit, now: ContinuousClock.Instant = .now) {
        capacity = Double(limit.capacity)
        perSecond = Double(limit.capacity) / (Double(limit.period.components.seconds) + Double(limit.period.components.attoseconds) / 1e18)
        tokens = capacity
        counted = now
    }

    /// Takes one token; false when the bucket is empty.
    public mutating func take(now: ContinuousClock.Instant = .now) -> Bool {
        tokens = min(capacity, tokens + (now - counted) / .seconds(1) * perSecond)
        counted = now
        guard tokens >= 1 else { return false }
        tokens -= 1
        return true
    }
}
