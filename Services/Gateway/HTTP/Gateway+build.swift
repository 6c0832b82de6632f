import CircleActivity
import CircleBus
import CircleConfig
import CircleCore
import CircleEvents
import CircleHTTP
import CircleStore
import Configuration
import GatewayCore
import GatewayStore
import Hummingbird

/// Builds the gateway: accounts, invites, sessions, the realtime socket, sync and the
/// directory (ARCHITECTURE 1), plus the relay that republishes stranded events.
public func buildGateway(_ environment: ServiceEnvironment, settings: GatewaySettings, activity: ActivitySettings) async throws -> ServiceModule {
    let serverID = ServerIDCache(store: environment.store)
    let state = GatewayState(
        store: environment.store, events: environment.events, sessions: environment.sessions,
        crypto: AccountCrypto(pepper: settings.pepper),
        throttle: LoginThrottle(counters: environment.counters, logger: environment.logger),
        settings: settings, clock: environment.clock, logger: environment.logger, serverID: serverID,
        activity: SessionActivity(store: environment.store, clock: environment.clock, logger: environment.logger),
        security: ActivityRecorder(sealer: ActivitySealer(activity), logger: environment.logger),
        rateLimiter: environment.rateLimiter
    )
    let reporter = ConnectionReporter(bus: environment.bus, clock: environment.clock, logger: environment.logger, lease: settings.presenceLease)
    let registry = SocketRegistry(
        store: environment.store, logger: environment.logger, bus: environment.bus,
        keepalive: .init(pingInterval: settings.socketPingInterval, silenceLimit: settings.socketSilenceLimit),
        caps: .init(perSession: settings.socketsPerSession, perUser: settings.socketsPerUser), reporter: reporter
    )
    let info = ServerInfoController(serverID: serverID, mode: environment.settings.isScaled ? "scaled" : "embedded")
    let auth = AuthController(state: state)
    let account = AccountController(state: state)
    let directory = DirectoryController(state: state)
    let sync = SyncController(state: state)
    let pins = PinsController(state: state)
    let activityLog = ActivityController(state: state)
    let audiences = AudienceCache(bus: environment.bus, logger: environment.logger)
    let typing = TypingRelay(store: environment.store, events: environment.events, counters: environment.counters, audiences: audiences, logger: environment.logger)
    let fanOut = FanOutDelivery(bus: environment.bus, logger: environment.logger)
    let socket = EventSocketController(services: SocketServices(state: state, bus: environment.bus, registry: registry, typing: typing, fanOut: fanOut))
    let invites = InviteController(state: state)
    let web = WebAppController(root: settings.webRoot, logger: environment.logger)
    let relay = EventRelay(store: environment.store, bus: environment.bus, clock: environment.clock, logger: environment.logger)
    return ServiceModule(
        name: .gateway,
        services: [reporter, relay, fanOut, audiences],
        shutdownFirst: [registry],
        addRoutes: { router in
            info.addRoutes(to: router)
            auth.addRoutes(to: router)
            account.addRoutes(to: router)
            directory.addRoutes(to: router)
            sync.addRoutes(to: router)
            pins.addRoutes(to: router)
            activityLog.addRoutes(to: router)
            invites.addRoutes(to: router)
            web.addRoutes(to: router)
        },
        addWebSocketRoutes: { router in socket.addWebSocketRoutes(to: router) }
    )
}

/// The gateway as its own process (`circle-gateway`).
public func buildGatewayServer(reader: ConfigReader) async throws -> CircleServer {
    try await ServerBuilder.buildServiceServer(.gateway, reader: reader) { environment in
        try await buildGateway(environment, settings: SettingsLoader.loadGateway(from: reader, settings: environment.settings),
                               activity: SettingsLoader.loadActivity(from: reader, settings: environment.settings))
    }
}
