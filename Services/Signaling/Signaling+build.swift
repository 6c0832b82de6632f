import CircleCore
import CircleHTTP
import Configuration
import Hummingbird

/// Builds the signaling service: calls and the relay of their SDP and ICE messages (DESIGN 1).
public func buildSignaling(_ environment: ServiceEnvironment) async throws -> ServiceModule {
    ServiceModule(name: .signaling) { _ in }
}

/// The signaling service as its own process (`circle-signaling`).
public func buildSignalingApplication(reader: ConfigReader) async throws -> some ApplicationProtocol {
    try await ServerBuilder.buildServiceApplication(.signaling, reader: reader, build: buildSignaling)
}
