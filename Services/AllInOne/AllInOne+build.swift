import CircleConfig
import CircleCore
import CircleHTTP
import CircleStore
import CleanupHTTP
import Configuration
import GatewayHTTP
import Hummingbird
import Logging
import MessagingHTTP
import NIOCore
import PresenceHTTP
import SignalingHTTP
import VaultHTTP
import ServiceLifecycle

/// Builds every service into one module list, in the order they start. `serverDestroyed` runs
/// once an admin's destruction of the whole server finished.
public func buildAllServices(_ environment: ServiceEnvironment, reader: ConfigReader,
                             serverDestroyed: (@Sendable () async -> Void)? = nil) async throws -> [ServiceModule] {
    let gateway = try SettingsLoader.loadGateway(from: reader, settings: environment.settings)
    let retention = try SettingsLoader.loadEventRetention(from: reader)
    let vault = try SettingsLoader.loadVault(from: reader)
    let activity = try SettingsLoader.loadActivity(from: reader, settings: environment.settings)
    let calls = try SettingsLoader.loadCalls(from: reader)
    return [
        try await buildGateway(environment, settings: gateway, activity: activity),
        try await buildMessaging(environment),
        try await buildVault(environment, settings: vault, activity: activity),
        try await buildPresence(environment),
        try await buildSignaling(environment, settings: calls),
        try await buildCleanup(environment, eventRetention: retention, vault: vault, activity: activity,
                               keyFiles: SettingsLoader.keyFiles(from: reader), serverDestroyed: serverDestroyed),
    ]
}

/// `circle serve`: all six services in one process behind one listener, on SQLite and the
/// in-process bus by default, or on PostgreSQL and Redis when both URLs are given. It applies
/// pending migrations itself.
public func buildEmbeddedServer(
    reader: ConfigReader,
    serverDestroyed: (@Sendable () async -> Void)? = nil,
    onServerRunning: @escaping @Sendable (any Channel, ServiceEnvironment) async -> Void = { _, _ in },
    keepingServices keep: @escaping @Sendable (any Service) -> Bool = { _ in true }
) async throws -> CircleServer {
    let settings = try SettingsLoader.load(from: reader, role: .embedded)
    // Refuse bad gateway and cleanup keys before touching the database.
    _ = try SettingsLoader.loadGateway(from: reader, settings: settings)
    _ = try SettingsLoader.loadEventRetention(from: reader)
    _ = try SettingsLoader.loadVault(from: reader)
    _ = try SettingsLoader.loadActivity(from: reader, settings: settings)
    _ = try SettingsLoader.loadCalls(from: reader)
    let logger = ServerBuilder.bootstrap(settings, label: "circle")
    let environment = try await ServiceEnvironment.open(settings, policy: .migrate, logger: logger)
    let modules = try await buildAllServices(environment, reader: reader, serverDestroyed: serverDestroyed).map { $0.keepingServices(where: keep) }
    return ServerBuilder.buildServer(name: "circle", modules: modules, environment: environment) { channel in
        logger.info("listening", metadata: [
            "address": "\(channel.localAddress.map { "\($0)" } ?? "?")",
            "mode": "\(settings.isScaled ? "scaled" : "embedded")",
        ])
        await onServerRunning(channel, environment)
    }
}

/// Every route `circle serve` answers, as `ServerBuilder.routeList` gives them (the API
/// document's coverage test compares it with the document's operations). Needs an embedded
/// SQLite configuration: the database is opened to build the services and closed again.
public func embeddedRouteList(reader: ConfigReader) async throws -> [String] {
    let settings = try SettingsLoader.load(from: reader, role: .embedded)
    let environment = try await ServiceEnvironment.open(settings, policy: .migrate, logger: Logger(label: "circle.routes"))
    guard let sqlite = environment.store as? SQLiteStore else { throw ConfigError(.sqlitePath, "listing routes needs the embedded SQLite database") }
    do {
        let routes = ServerBuilder.routeList(modules: try await buildAllServices(environment, reader: reader), environment: environment)
        try await sqlite.close()
        return routes
    } catch {
        try? await sqlite.close()
        throw error
    }
}
