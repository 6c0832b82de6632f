import CircleCore
import CircleStore
import GatewayStore
import Logging

/// Records when and from where each session was last used, at most once a minute per session,
/// so the session list is useful without a write on every request.
package actor SessionActivity {
    private let store: any DatabaseStore
    private let clock: any WallClock
    private let logger: Logger
    private var recorded: [String: (at: Int64, ip: String)] = [:]
    private let interval: Int64 = 60_000

    package init(store: any DatabaseStore, clock: any WallClock, logger: Logger) {
        self.store = store
        self.clock = clock
        self.logger = logger
    }

    package func seen(sessionId: String, ip: String) async {
        let now = clock.now()
        if let last = recorded[sessionId], last.ip == ip, now.millis - last.at < interval { return }
        recorded[sessionId] = (now.millis, ip)
        if recorded.count > 50_000 { recorded = recorded.filter { now.millis - $0.value.at < interval } }
        do {
            try await store.write { db in try await AccountRepository.touchSession(id: sessionId, ip: ip, at: now, in: db) }
        } catch {
            logger.debug("recording session activity failed", metadata: ["error": "\(error)"])
        }
    }
}
