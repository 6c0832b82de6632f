import CircleCore
import CircleHTTP
import Configuration
import Hummingbird

/// Builds the presence service: online status, custom status and typing (ARCHITECTURE 1).
public func buildPresence(_ environment: ServiceEnvironment) async throws -> ServiceModule {
    ServiceModule(name: .presence) { _ in }
}

/// The presence service as its own process (`circle-presence`).
public func buildPresenceServer(reader: ConfigReader) async throws -> CircleServer {
    try await ServerBuilder.buildServiceServer(.presence, reader: reader, build: buildPresence)
}
