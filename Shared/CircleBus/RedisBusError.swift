/// What can go wrong talking to Redis.
public enum RedisBusError: Error, CustomStringConvertible, Sendable, Equatable {
    case connectionClosed
    case protocolError(String)
    case server(String)
    case unexpectedReply(String)

    public var description: String {
        switch self {
        case .connectionClosed: "the connection to Redis closed"
        case .protocolError(let text): "Redis protocol error: \(text)"
        case .server(let text): "Redis answered with an error: \(text)"
        case .unexpectedReply(let text): "unexpected reply from Redis: \(text)"
        }
    }
}
