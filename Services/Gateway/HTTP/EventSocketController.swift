import CircleBus
import CircleHTTP
import GatewayCore
import GatewayStore
import Hummingbird
import HummingbirdWebSocket

/// `GET /api/v1/events` upgraded to the realtime WebSocket. The token travels in the first
/// frame, never in the URL (browsers cannot set headers on a WebSocket).
struct EventSocketController: Sendable {
    let state: GatewayState
    let bus: any MessageBus
    let registry: SocketRegistry
    let typing: TypingRelay
    let fanOut: FanOutDelivery

    func addWebSocketRoutes(to router: Router<CircleRequestContext>) {
        router.ws("/api/v1/events") { inbound, outbound, context in
            let address = context.requestContext.clientAddress(context.request, trustForwardedFor: state.settings.trustForwardedFor)
            try await EventSocket(
                state: state, bus: bus, registry: registry, typing: typing, fanOut: fanOut, outbound: outbound,
                address: address, channel: context.requestContext.channel, logger: context.logger
            ).run(inbound)
        }
    }
}
