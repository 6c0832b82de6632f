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

    /// Throws 429 with Retry-After when either key is waiting out a backoff.
    package func check(username: String, address: String) async throws {
        var wait: Duration = .zero
        for key in [nameKey(username, address), addressKey(address)].map(blockKey) {
            if let left = try await counters.remaining(key) { wait = max(wait, left) }
        }
        if wait > .zero {
            let seconds = Int((wait.components.seconds)) + (wait.components.attoseconds > 0 ? 1 : 0)
            throw Problem.tooManyRequests(retryAfterSeconds: max(1, seconds))
        }
    }

    /// Counts a failure and, past the free ones, starts a doubling backoff; says which keys
    /// started (or lengthened) a wait.
    @discardableResult
    package func failed(username: String, address: String) async -> (name: Bool, address: Bool) {
        var blocked = (name: false, address: false)
        do {
            let byName = try await counters.increment(nameKey(username, address), window: window)
            if byName > freeFailuresPerName {
                try await counters.block(blockKey(nameKey(username, address)), for: backoff(byName - freeFailuresPerName))
                blocked.name = true
            }
            let byAddress = try await counters.increment(addressKey(address), window: window)
            if byAddress > freeFailuresPerAddress {
                try await counters.block(blockKey(addressKey(address)), for: backoff(byAddress - freeFailuresPerAddress))
                blocked.address = true
            }
        } catch {
            logger.warning("login throttle unavailable", metadata: ["error": "\(error)"])
        }
        if blocked.name || blocked.address { Counter(label: "circle_throttled_total").increment() }
        return blocked
    }

    /// Failed sign-ins of one account since its last success, for the owner's alert (five in a
    /// row); nil when the counters cannot be reached.
    package func failedInARow(userId: String) async -> Int? {
        try? await counters.increment("login:row:" + userId, window: .seconds(7 * 86_400))
    }

    /// A success clears the name's failures from that address (not the address's own) and the
    /// account's run of them.
    package func succeeded(username: String, userId: String, address: String) async {
        try? await counters.reset([nameKey(username, address), blockKey(nameKey(username, address)), "login:row:" + userId])
    }

    package func backoff(_ excess: Int) -> Duration {
        let seconds = 1 << min(excess - 1, 20)
        return min(.seconds(seconds), maximumWait)
    }

    private func nameKey(_ username: String, _ address: String) -> String { "login:name:" + username + "|" + address }
    private func addressKey(_ address: String) -> String { "login:addr:" + address }
    private func blockKey(_ key: String) -> String { key + ":wait" }
}
