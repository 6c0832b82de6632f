import CircleBus
import CircleConfig
import CircleCore
import CircleStore
import Configuration
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// Composes services into one HTTP server. A service executable passes one module;
/// `circle serve` passes all six, so both are built from the same functions.
public enum ServerBuilder {
    /// The router: shared middleware, health, readiness and metrics, then each module's routes.
    public static func buildRouter(modules: [ServiceModule], environment: ServiceEnvironment) -> Router<CircleRequestContext> {
        let router = Router(context: CircleRequestContext.self)
        router.add(middleware: MetricsMiddleware())
        router.add(middleware: LogRequestsMiddleware(.debug))
        router.add(middleware: ProblemMiddleware())
        router.add(middleware: BodyLimitMiddleware(limit: environment.settings.http.bodyLimit))
        HealthController(store: environment.store, bus: environment.bus).addRoutes(to: router)
        CircleMetrics.addRoutes(to: router)
        for module in modules { module.addRoutes(router) }
        return router
    }

    /// The application: the router, the listener, and every long-lived service in order.
    public static func buildApplication(
        name: String,
        modules: [ServiceModule],
        environment: ServiceEnvironment,
        onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
    ) -> some ApplicationProtocol {
        let router = buildRouter(modules: modules, environment: environment)
        let http = environment.settings.http
        return Application(
            router: router,
            configuration: .init(address: .hostname(http.host, port: http.port), serverName: name),
            services: environment.infrastructure + modules.flatMap(\.services),
            onServerRunning: onServerRunning,
            logger: environment.logger
        )
    }

    /// Reads configuration, sets up logs and metrics, opens the database and bus, builds one
    /// service, and returns its application: what each service executable's `main` runs.
    public static func buildServiceApplication(
        _ service: ServiceName,
        reader: ConfigReader,
        build: @Sendable (ServiceEnvironment) async throws -> ServiceModule
    ) async throws -> some ApplicationProtocol {
        let settings = try SettingsLoader.load(from: reader, role: .service(port: service.defaultPort))
        let logger = bootstrap(settings, label: service.executableName)
        let environment = try await ServiceEnvironment.open(settings, policy: .requireExact, logger: logger)
        let module = try await build(environment)
        return buildApplication(name: service.executableName, modules: [module], environment: environment) { channel in
            logger.info("listening", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")", "schema": "\(Migrations.latestVersion)"])
        }
    }

    /// Installs logging and metrics for this process and returns its logger.
    public static func bootstrap(_ settings: CircleSettings, label: String) -> Logger {
        LoggingSetup.bootstrap(level: settings.log.level, format: settings.log.format)
        CircleMetrics.bootstrap()
        var logger = Logger(label: label)
        logger.logLevel = settings.log.level
        return logger
    }
}
