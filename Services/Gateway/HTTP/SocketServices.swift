import CircleBus
import GatewayCore

/// What every realtime socket of this replica shares, held once by reference: a socket keeps
/// one pointer to it instead of its own copy of the gateway's state (whose settings alone are
/// hundreds of bytes), which at 10,000 sockets is megabytes (BENCHMARKS.md, gateway memory).
final class SocketServices: Sendable {
    let state: GatewayState
    let bus: any MessageBus
    let registry: SocketRegistry
    let typing: TypingRelay
    let fanOut: FanOutDelivery

    init(state: GatewayState, bus: any MessageBus, registry: SocketRegistry, typing: TypingRelay, fanOut: FanOutDelivery) {
        self.state = state
        self.bus = bus
        self.registry = registry
        self.typing = typing
        self.fanOut = fanOut
    }
}
