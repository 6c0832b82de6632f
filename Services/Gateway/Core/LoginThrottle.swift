import CircleBus
import CircleCore
import CircleHTTP
import GatewayStore
import Logging

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
    /// limits at once (`FailureThrottle`); throws 429 with Retry-After while either is waiting.
    package func admit(username: String, address: String) async throws -> LoginAttempt {
        let attempt = try await FailureThrottle(counters: counters, logger: logger).admit([
            limit("login:name:" + username + "|" + address, free: freeFailuresPerName),
            limit("login:addr:" + address, free: freeFailuresPerAddress),
        ])
        return LoginAttempt(attempt: attempt)
    }

    /// Failed sign-ins of one account since its last success, for the owner's alert (five in a
    /// row); nil when the counters cannot be reached.
    package func failedInARow(userId: String) async -> Int? {
        try? await counters.increment("login:row:" + userId, window: .seconds(7 * 86_400))
    }

    /// A success clears the name's failures from that address and the account's run of them,
    /// and takes the attempt back from the address's count (which counts failures).
    package func succeeded(_ attempt: LoginAttempt, userId: String) async {
        await FailureThrottle(counters: counters, logger: logger).succeeded(
            attempt.attempt, resetting: [attempt.attempt.limits[0].key], alsoRemoving: ["login:row:" + userId]
        )
    }

    private func limit(_ key: String, free: Int) -> AttemptLimit {
        AttemptLimit(key: key, free: free, window: window, maximumWait: maximumWait)
    }
}

/// One admitted sign-in attempt (a password, a recovery key, a re-authentication).
package struct LoginAttempt: Sendable {
    let attempt: FailureThrottle.Attempt

    /// Whether admitting it started a wait for its (name, address) and for its address (a
    /// failure counted when admitted: the server's activity chain records the wait).
    package var startedWait: (name: Bool, address: Bool) {
        (attempt.waitStarted[0], attempt.waitStarted[1])
    }
}
