import CircleBus
import CircleCore
import GatewayStore
import Logging
import Metrics

/// Backoff for failed logins, per (username, client address) and per client address, shared by
/// every replica (ARCHITECTURE 7). Never a lockout: after a few free failures each further one makes
/// the next attempt from that address wait longer, up to a cap, and waiting always lets the owner
/// in again. Failures from one address never make another address wait, so nobody can lock a
/// member out by failing on purpose; the member is alerted instead (five failures in a row).
/// Guessing from many addresses stays slow: each guess costs the guesser a 600,000-round PBKDF2.
package struct LoginThrottle: Sendable {
    package let counters: any ExpiringCounters
    package let logger: Logger
    package var freeFailuresPerName = 5
    package var freeFailuresPerAddress = 20
    package var window: Duration = .seconds(3600)
    package var maximumWait: Duration = .seconds(900)

    package init(counters: any ExpiringCounters, logger: Logger, window: Duration = .seconds(3600), maximumWait: Duration = .seconds(900)) {
        self.counters = counters
        self.logger = logger
        self.window = window
        self.maximumWait = maximumWait
    }

    /// Counts an attempt before its key is checked, against the (name, address) and the address
    /// limits at once, atomically across replicas; throws 429 with Retry-After (counting
    /// nothing) while either is waiting. Concurrent attempts cannot pass together: past the free
    /// ones, the attempt that starts a wait is the only one admitted until it ends.
    package func admit(username: String, address: String) async throws -> LoginAttempt {
        let attempt = LoginAttempt(username: username, address: address)
        let outcome: AttemptOutcome
        do {
            outcome = try await counters.attempt([limit(attempt.nameKey, free: freeFailuresPerName), limit(attempt.addressKey, free: freeFailuresPerAddress)])
        } catch {
            // The counters are unreachable: the attempt goes on (PBKDF2 still slows guessing)
            // rather than nobody signing in.
            logger.warning("login throttle unavailable", metadata: ["error": "\(error)"])
            return attempt
        }
        switch outcome {
        case .refused(let wait):
            Counter(label: "circle_throttled_total").increment()
            let seconds = Int(wait.components.seconds) + (wait.components.attoseconds > 0 ? 1 : 0)
            throw Problem.tooManyRequests(retryAfterSeconds: max(1, seconds))
        case .admitted(let started):
            var admitted = attempt
            admitted.startedWait = (name: started.first ?? false, address: started.dropFirst().first ?? false)
            return admitted
        }
    }

    /// Failed sign-ins of one account since its last success, for the owner's alert (five in a
    /// row); nil when the counters cannot be reached.
    package func failedInARow(userId: String) async -> Int? {
        try? await counters.increment("login:row:" + userId, window: .seconds(7 * 86_400))
    }

    /// A success clears the name's failures from that address and the account's run of them,
    /// and takes the attempt back from the address's count (which counts failures), lifting a
    /// wait this attempt started there.
    package func succeeded(_ attempt: LoginAttempt, userId: String) async {
        let name = limit(attempt.nameKey, free: freeFailuresPerName)
        let address = limit(attempt.addressKey, free: freeFailuresPerAddress)
        try? await counters.reset([name.key, name.waitKey, "login:row:" + userId] + (attempt.startedWait.address ? [address.waitKey] : []))
        try? await counters.decrement(address.key)
    }

    private func limit(_ key: String, free: Int) -> AttemptLimit {
        AttemptLimit(key: key, free: free, window: window, maximumWait: maximumWait)
    }
}

/// One admitted sign-in attempt (a password, a recovery key, a re-authentication).
package struct LoginAttempt: Sendable {
    let nameKey: String
    let addressKey: String
    /// Whether admitting it started a wait for its (name, address) and for its address (a
    /// failure counted when admitted: the server's activity chain records the wait).
    package var startedWait = (name: false, address: false)

    init(username: String, address: String) {
        nameKey = "login:name:" + username + "|" + address
        addressKey = "login:addr:" + address
    }
}
