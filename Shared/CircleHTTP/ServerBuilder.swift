import CircleBus
import CircleConfig
import CircleCore
import CircleStore
import Configuration
import Hummingbird
import HummingbirdCore
import HummingbirdWebSocket
import Logging
import NIOCore
import ServiceLifecycle

/// Composes services into one HTTP server. A service executable passes one module;
/// `circle serve` passes all six, so both are built from the same functions.
public enum ServerBuilder {
    /// How long a new connection may take to send its first request head.
    public static let requestHeadLimit: TimeAmount = .seconds(20)
    /// How long a connection may stay idle between requests.
    public static let idleLimit: TimeAmount = .seconds(75)
    /// The largest WebSocket frame a client may send (the realtime socket's messages are at most
    /// this too); a larger one closes the socket with 1009.
    public static let maxInboundSocketFrame = 16 << 10

    /// The router: shared middleware, health, readiness and metrics, then each module's routes.
    public static func buildRouter(modules: [ServiceModule], environment: ServiceEnvironment) -> Router<CircleRequestContext> {
        let router = Router(context: CircleRequestContext.self)
        router.add(middleware: SecurityHeadersMiddleware())
        router.add(middleware: MetricsMiddleware())
        router.add(middleware: LogRequestsMiddleware(.debug))
        router.add(middleware: ProblemMiddleware())
        router.add(middleware: BodyLimitMiddleware(limit: environment.settings.http.bodyLimit, streamingPrefixes: ["/api/v1/vault/uploads"]))
        router.add(middleware: AuthMiddleware(validator: environment.sessions))
        HealthController(store: environment.store, bus: environment.bus).addRoutes(to: router)
        CircleMetrics.addRoutes(to: router, token: environment.settings.metricsToken)
        APIDocumentController.addRoutes(to: router)
        for module in modules { module.addRoutes(router) }
        return router
    }

    /// Every route the modules serve, as `METHOD /path` with `{}` for each path parameter
    /// (HTTP and WebSocket alike): what the API document must describe, no more, no less.
    public static func routeList(modules: [ServiceModule], environment: ServiceEnvironment) -> [String] {
        let router = buildRouter(modules: modules, environment: environment)
        let socketRouter = Router(context: CircleRequestContext.self)
        for add in modules.compactMap(\.addWebSocketRoutes) { add(socketRouter) }
        func normalized(_ path: RouterPath) -> String {
            "/" + path.components.map { component in
                let text = "\(component)"
                return text.hasPrefix(":") || (text.hasPrefix("{") && text.hasSuffix("}")) ? "{}" : text
            }.joined(separator: "/")
        }
        return (router.routes + socketRouter.routes).map { "\($0.method.rawValue) \(normalized($0.path))" }.sorted()
    }

    /// The server: the router, the listener (with WebSocket upgrade when a module has sockets),
    /// and every long-lived service in order.
    public static func buildServer(
        name: String,
        modules: [ServiceModule],
        environment: ServiceEnvironment,
        onServerRunning: @escaping @Sendable (any Channel) async -> Void = { _ in }
    ) -> CircleServer {
        let router = buildRouter(modules: modules, environment: environment)
        let http = environment.settings.http
        let socketRoutes = modules.compactMap(\.addWebSocketRoutes)
        let server: HTTPServerBuilder
        // Every connection must send its first request head within `requestHeadLimit` and may
        // then sit idle between requests for `idleLimit` (above nginx's 60 s upstream keepalive,
        // so nginx never sends a request into a connection the server is closing).
        let http1 = HTTP1Channel.Configuration(idleTimeout: idleLimit)
        if socketRoutes.isEmpty {
            server = HTTPServerBuilder { responder in
                RequestHeadDeadlineChannel(inner: HTTP1Channel(responder: responder, configuration: http1), limit: requestHeadLimit)
            }
        } else {
            let socketRouter = Router(context: CircleRequestContext.self)
            socketRouter.add(middleware: ProblemMiddleware())
            for add in socketRoutes { add(socketRouter) }
            let socketResponder = socketRouter.buildResponder()
            server = HTTPServerBuilder { responder in
                RequestHeadDeadlineChannel(
                    inner: BoundedShutdownChannel(
                        inner: HTTP1WebSocketUpgradeChannel(
                            responder: responder,
                            webSocketResponder: socketResponder,
                            // Pings come from each service's own socket registry: one timer for every
                            // socket instead of the library's task per socket (an idle socket's memory).
                            configuration: .init(http1: http1, ws: .init(maxFrameSize: maxInboundSocketFrame, autoPing: .disabled))
                        ),
                        grace: .seconds(5)
                    ),
                    limit: requestHeadLimit
                )
            }
        }
        let application = Application(
            router: router,
            server: server,
            // No `Server` header: it would only tell a prober what answers.
            configuration: .init(address: .hostname(http.host, port: http.port), serverName: nil),
            services: environment.infrastructure + modules.flatMap(\.services),
            onServerRunning: onServerRunning,
            logger: environment.logger
        )
        return CircleServer(application: application, store: environment.store, shutdownFirst: modules.flatMap(\.shutdownFirst), logger: environment.logger)
    }

    /// Reads configuration, sets up logs and metrics, opens the database and bus, builds one
    /// service, and returns its server: what each service executable's `main` runs.
    public static func buildServiceServer(
        _ service: ServiceName,
        reader: ConfigReader,
        build: @Sendable (ServiceEnvironment) async throws -> ServiceModule
    ) async throws -> CircleServer {
        let settings = try SettingsLoader.load(from: reader, role: .service(port: service.defaultPort))
        let logger = bootstrap(settings, label: service.executableName)
        let environment = try await ServiceEnvironment.open(settings, policy: .requireExact, logger: logger)
        let module = try await build(environment)
        return buildServer(name: service.executableName, modules: [module], environment: environment) { channel in
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

/// A Circle process: the Hummingbird application plus the services that must stop before it.
public struct CircleServer: Sendable {
    public typealias App = Application<RouterResponder<CircleRequestContext>>
    /// The application, for tests (`server.application.test(...)`).
    public let application: App
    /// The database every service of this process uses (tests look at how it is used).
    public let store: any DatabaseStore
    let shutdownFirst: [any Service]
    let logger: Logger

    /// Runs until SIGTERM or SIGINT; on either, the `shutdownFirst` services stop, then the
    /// HTTP server, then the background services, then the database and bus.
    public func runService() async throws {
        let group = ServiceGroup(configuration: .init(
            services: [application] + shutdownFirst,
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        ))
        try await group.run()
    }

    /// Runs the `shutdownFirst` services beside `body` and stops them after it: for tests that
    /// drive `application` with `test(.live)`, which runs the application's own services only.
    public func withShutdownFirstServices<T: Sendable>(_ body: @Sendable () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: Void.self) { group in
            for service in shutdownFirst {
                group.addTask { try await service.run() }
            }
            defer { group.cancelAll() }
            return try await body()
        }
    }
}
