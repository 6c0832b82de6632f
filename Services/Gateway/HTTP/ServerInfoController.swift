import CircleHTTP
import CircleStore
import GatewayCore
import GatewayStore
import Hummingbird

/// `GET /api/v1/server`: what a client must know before it derives keys (PROTOCOL 2).
///
/// The id is read on first use (the database pool only serves once the service group runs)
/// and then kept: it never changes.
struct ServerInfoController: Sendable {
    let serverID: ServerIDCache
    let mode: String

    struct ServerInfo: Codable, Sendable {
        let serverId: String
        let protocolVersion: Int
        let mode: String
    }

    func addRoutes(to router: Router<CircleRequestContext>) {
        router.get("/api/v1/server") { _, _ in
            JSONResponse(ServerInfo(serverId: try await serverID.value(), protocolVersion: 1, mode: mode))
        }
    }
}
