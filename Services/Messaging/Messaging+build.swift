import CircleCore
import CircleHTTP
import Configuration
import Hummingbird

/// Builds the messaging service: conversations, membership, encrypted messages, key envelopes and read markers (DESIGN 1).
public func buildMessaging(_ environment: ServiceEnvironment) async throws -> ServiceModule {
    ServiceModule(name: .messaging) { _ in }
}

/// The messaging service as its own process (`circle-messaging`).
public func buildMessagingServer(reader: ConfigReader) async throws -> CircleServer {
    try await ServerBuilder.buildServiceServer(.messaging, reader: reader, build: buildMessaging)
}
