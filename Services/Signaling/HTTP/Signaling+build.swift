import CircleCore
import CircleHTTP
import Configuration
import Hummingbird

/// Builds the signaling service: calls and the relay of their SDP and ICE messages (ARCHITECTURE 1).
public func buildSignaling(_ environment: ServiceEnvironment) async throws -> ServiceModule {
    ServiceModule(name: .signaling) { _ in }
}

/// The signaling service as its own process (`circle-signaling`).
public func buildSignalingServer(reader: ConfigReader) async throws -> CircleServer {
    try await ServerBuilder.buildServiceServer(.signaling, reader: reader, build: buildSignaling)
}
