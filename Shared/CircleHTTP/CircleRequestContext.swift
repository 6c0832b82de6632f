import CircleCore
import Hummingbird
import HTTPTypes
import HummingbirdWebSocket
import Logging
import NIOCore

/// What every Circle request context offers a handler, signed in or not.
public protocol CircleContext: RequestContext {
    /// The peer's address.
    var remoteAddress: SocketAddress? { get }
    /// The connection, for the rare handler that must read from or drop it.
    var channel: any Channel { get }
    /// The largest body this request may have.
    var bodyLimit: Int { get }
}

extension CircleContext {
    /// The client's address: the peer, or the first X-Forwarded-For hop when configured to trust it.
    public func clientAddress(_ request: Request, trustForwardedFor: Bool) -> String {
        if trustForwardedFor, let forwarded = ForwardedFor.proxyAdded(request.headers[values: ForwardedFor.header]) {
            return forwarded
        }
        return remoteAddress?.ipAddress ?? "unknown"
    }
}

/// The context of the routes only a signed-in caller reaches (a child of the request's context
/// made after `AuthMiddleware`): its `identity` is not optional, and a request without a valid
/// session token never reaches the handler (401).
public struct AuthenticatedContext: ChildRequestContext, CircleContext {
    public typealias ParentContext = CircleRequestContext
    public var coreContext: CoreRequestContextStorage
    public let identity: Identity
    public let remoteAddress: SocketAddress?
    public let channel: any Channel
    public let bodyLimit: Int

    public init(context: CircleRequestContext) throws {
        guard let identity = context.identity else { throw Problem.unauthorized() }
        self.coreContext = context.coreContext
        self.identity = identity
        self.remoteAddress = context.remoteAddress
        self.channel = context.channel
        self.bodyLimit = context.bodyLimit
    }

    public var maxUploadSize: Int { bodyLimit }
}

extension RouterMethods where Context == CircleRequestContext {
    /// The routes under `path` that only a signed-in caller reaches.
    public func authenticated(_ path: RouterPath = "") -> RouterGroup<AuthenticatedContext> {
        group(path, context: AuthenticatedContext.self)
    }
}

/// The request context of every Circle service.
///
/// `bodyLimit` is set per application by `BodyLimitMiddleware`; Hummingbird's own decoding
/// honours it through `maxUploadSize`.
public struct CircleRequestContext: CircleContext, WebSocketRequestContext, RemoteAddressRequestContext {
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

}

/// `X-Forwarded-For` behind the one trusted proxy (deploy/nginx.conf appends `$remote_addr`):
/// only the last address is the proxy's word; the ones before it are whatever the client wrote.
public enum ForwardedFor {
    public static let header = HTTPField.Name("X-Forwarded-For")!

    /// The last address of the last header, when it looks like an IP address; nil otherwise (the
    /// caller falls back to the connection's address).
    public static func proxyAdded(_ values: [String]) -> String? {
        guard let last = values.last?.split(separator: ",").last?.trimmingCharacters(in: .whitespaces),
              (2...45).contains(last.count),
              last.unicodeScalars.allSatisfy({ $0.properties.isASCIIHexDigit || $0 == "." || $0 == ":" }) else { return nil }
        return last
    }
}
