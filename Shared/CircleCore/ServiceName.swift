/// The six Circle services, their executables and their default ports (ARCHITECTURE 11).
public enum ServiceName: String, CaseIterable, Sendable, Codable {
    case gateway, messaging, vault, presence, signaling, cleanup

    /// The port a service executable listens on when none is configured.
    public var defaultPort: Int {
        switch self {
        case .gateway: 8081
        case .messaging: 8082
        case .vault: 8083
        case .presence: 8084
        case .signaling: 8085
        case .cleanup: 8086
        }
    }

    /// The name of the service's own executable.
    public var executableName: String { "circle-\(rawValue)" }

    /// The port `circle serve` listens on: all services behind one listener.
    public static let embeddedPort = 8080
}
