import CircleCore
import Hummingbird
import HummingbirdWebSocket
import Logging
import NIOCore

/// The request context of every Circle service.
///
/// `bodyLimit` is set per application by `BodyLimitMiddleware`; Hummingbird's own decoding
/// honours it through `maxUploadSize`.
public struct CircleRequestContext: RequestContext, WebSocketRequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?
    /// The connection, for the rare handler that must drop it (a realtime socket that stopped reading).
    public let channel: any Channel
    public let webSocket: WebSocketHandlerReference<CircleRequestContext>
    public var bodyLimit: Int = 1 << 20
    /// The caller, when the request carried a valid session token.
    public var identity: Identity?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.remoteAddress = source.channel.remoteAddress
        self.channel = source.channel
        self.webSocket = .init()
    }

    public var maxUploadSize: Int { bodyLimit }

    /// The caller, or a 401 problem for requests without a valid session token.
    public func requireIdentity() throws -> Identity {
        guard let identity else { throw Problem.unauthorized() }
        return identity
    }

    /// The client's address: the peer, or the first X-Forwarded-For hop when configured to trust it.
    public func clientAddress(_ request: Request, trustForwardedFor: Bool) -> String {
        if trustForwardedFor, let forwarded = request.headers[.init("X-Forwarded-For")!]?.split(separator: ",").first {
            return forwarded.trimmingCharacters(in: .whitespaces)
        }
        return remoteAddress?.ipAddress ?? "unknown"
    }
}
