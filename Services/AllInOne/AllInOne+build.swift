import CircleConfig
import CircleCore
import CircleHTTP
import CircleStore
import Cleanup
import Configuration
import Gateway
import Hummingbird
import Logging
import Messaging
import NIOCore
import Presence
import Signaling
import Vault

/// Builds every service into one module list, in the order they start.
public func buildAllServices(_ environment: ServiceEnvironment) async throws -> [ServiceModule] {
    [
        try await buildGateway(environment),
        try await buildMessaging(environment),
        try await buildVault(environment),
        try await buildPresence(environment),
        try await buildSignaling(environment),
        try await buildCleanup(environment),
    ]
}

/// `circle serve`: all six services in one process behind one listener, on SQLite and the
/// in-process bus by default, or on PostgreSQL and Redis when both URLs are given. It applies
/// pending migrations itself.
public func buildEmbeddedApplication(
    reader: ConfigReader,
    onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
) async throws -> some ApplicationProtocol {
    let settings = try SettingsLoader.load(from: reader, role: .embedded)
    let logger = ServerBuilder.bootstrap(settings, label: "circle")
    let environment = try await ServiceEnvironment.open(settings, policy: .migrate, logger: logger)
    let modules = try await buildAllServices(environment)
    return ServerBuilder.buildApplication(name: "circle", modules: modules, environment: environment) { channel in
        logger.info("listening", metadata: [
            "address": "\(channel.localAddress.map { "\($0)" } ?? "?")",
            "mode": "\(settings.isScaled ? "scaled" : "embedded")",
        ])
        await onServerRunning(channel)
    }
}
