import CircleHTTP
import GatewayCore
import GatewayStore
import Hummingbird
import HummingbirdWebSocket

/// `GET /api/v1/events` upgraded to the realtime WebSocket. The token travels in the first
/// frame, never in the URL (browsers cannot set headers on a WebSocket).
struct EventSocketController: Sendable {
    let services: SocketServices

    func addWebSocketRoutes(to router: Router<CircleRequestContext>) {
        // The closure holds one reference (its async frame stays with the socket's task for the
        // socket's life, so it is kept small: BENCHMARKS.md, gateway memory).
        let services = services
        router.ws("/api/v1/events") { inbound, outbound, context in
            let address = context.requestContext.clientAddress(context.request, trustForwardedFor: services.state.settings.trustForwardedFor)
            try await EventSocket(
                services: services, outbound: outbound, address: address, channel: context.requestContext.channel, logger: context.logger
            ).run(inbound)
        }
    }
}
