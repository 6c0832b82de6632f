import CircleBus
import CircleCore
import Logging
import Metrics

/// Throttles what fails when guessed (a password, a share link's access value): each attempt is
/// counted when it arrives, before it is checked, against its limits at once and atomically
/// across replicas (`ExpiringCounters.attempt`), and given back when it turns out right. So the
/// counts are failures, concurrent attempts cannot slip past them together, and past a limit's
/// free failures each attempt makes the next one from that key wait (doubling, capped): never a
/// lockout, since waiting always lets the next attempt through.
public struct FailureThrottle: Sendable {
    public let counters: any ExpiringCounters
    public let logger: Logger

    public init(counters: any ExpiringCounters, logger: Logger) {
        self.counters = counters
        self.logger = logger
    }

    /// One admitted attempt: its limits and which of them it started a wait for.
    public struct Attempt: Sendable {
        public let limits: [AttemptLimit]
        public let waitStarted: [Bool]

        /// Whether the attempt started a wait for the limit whose key is `key`.
        public func startedWait(_ key: String) -> Bool {
            zip(limits, waitStarted).contains { $0.key == key && $1 }
        }
    }

    /// Counts the attempt, or throws 429 with Retry-After (counting nothing) while a wait runs.
    /// When the counters cannot be reached the attempt goes on: the check behind the throttle is
    /// what protects, and nobody should be kept out by an unreachable Redis.
    public func admit(_ limits: [AttemptLimit]) async throws -> Attempt {
        let outcome: AttemptOutcome
        do {
            outcome = try await counters.attempt(limits)
        } catch {
            logger.warning("throttle unavailable", metadata: ["error": "\(error)"])
            return Attempt(limits: limits, waitStarted: limits.map { _ in false })
        }
        switch outcome {
        case .refused(let wait):
            Counter(label: "circle_throttled_total").increment()
            throw Problem.tooManyRequests(retryAfterSeconds: Problem.retryAfterSeconds(wait))
        case .admitted(let started):
            return Attempt(limits: limits, waitStarted: started)
        }
    }

    /// The attempt was right: it is taken back from every count, and waits it started end.
    /// `resetting` names keys whose whole count ends too (a member's own name from an address).
    public func succeeded(_ attempt: Attempt, resetting: Set<String> = [], alsoRemoving extra: [String] = []) async {
        var removed = extra
        for (limit, started) in zip(attempt.limits, attempt.waitStarted) {
            if resetting.contains(limit.key) {
                removed += [limit.key, limit.waitKey]
            } else {
                if started { removed.append(limit.waitKey) }
                try? await counters.decrement(limit.key)
            }
        }
        try? await counters.reset(removed)
    }
}
