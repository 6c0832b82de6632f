import CircleCore
import CircleHTTP
import Configuration
import Hummingbird

/// Builds the cleanup service: expiry sweeps, retention and the destruction protocol (DESIGN 1).
public func buildCleanup(_ environment: ServiceEnvironment) async throws -> ServiceModule {
    ServiceModule(name: .cleanup) { _ in }
}

/// The cleanup service as its own process (`circle-cleanup`).
public func buildCleanupApplication(reader: ConfigReader) async throws -> some ApplicationProtocol {
    try await ServerBuilder.buildServiceApplication(.cleanup, reader: reader, build: buildCleanup)
}
