import CircleBus
import CircleCore
import CircleStore
import Hummingbird

/// `/healthz` (the process is alive) and `/readyz` (its database and bus answer).
public struct HealthController: Sendable {
    let store: any DatabaseStore
    let bus: any MessageBus
    let timeout: Duration

    public init(store: any DatabaseStore, bus: any MessageBus, timeout: Duration = .seconds(2)) {
        self.store = store
        self.bus = bus
        self.timeout = timeout
    }

    struct Status: Codable, Sendable {
        let status: String
        var database: String?
        var bus: String?
    }

    public func addRoutes(to router: Router<CircleRequestContext>) {
        router.get("/healthz") { _, _ in
            JSONResponse(Status(status: "ok"))
        }
        router.get("/readyz") { _, context in
            async let database = check { try await store.ping() }
            async let bus = check { try await self.bus.ping() }
            let (databaseError, busError) = await (database, bus)
            if databaseError == nil, busError == nil {
                return JSONResponse(Status(status: "ready", database: "ok", bus: "ok"))
            }
            let failing = [databaseError.map { "database: \($0)" }, busError.map { "bus: \($0)" }].compactMap { $0 }
            context.logger.warning("not ready", metadata: ["failing": "\(failing.joined(separator: "; "))"])
            throw Problem.unavailable("Not ready: " + failing.joined(separator: "; ") + ".")
        }
    }

    /// Runs a probe with a deadline; returns a short reason on failure.
    private func check(_ probe: @escaping @Sendable () async throws -> Void) async -> String? {
        await withTaskGroup(of: String?.self) { group in
            group.addTask {
                do {
                    try await probe()
                    return nil
                } catch {
                    return "unreachable"
                }
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return "no answer within \(timeout)"
            }
            let first = await group.next()!
            group.cancelAll()
            return first
        }
    }
}
