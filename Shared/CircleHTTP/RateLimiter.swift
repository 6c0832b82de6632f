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
