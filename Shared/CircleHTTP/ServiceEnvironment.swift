import CircleBus
import CircleConfig
import CircleCore
import CircleEvents
import CircleStore
import Logging
import ServiceLifecycle

/// What every service is built from: its configuration, the database, the bus, time and logs.
public struct ServiceEnvironment: Sendable {
    public let settings: CircleSettings
    public let store: any DatabaseStore
    public let bus: any MessageBus
    /// Rate limits and backoff shared by every replica (the bus's Redis, or process memory).
    public let counters: any ExpiringCounters
    /// The named rate limits, with the values configured.
    public let rateLimiter: RateLimiter
    public let clock: any WallClock
    public let logger: Logger
    /// Publishes committed user events.
    public let events: EventPublisher
    /// Checks session tokens.
    public let sessions: SessionValidator
    /// The long-lived pieces behind `store` and `bus`, run before the services that use them.
    public let infrastructure: [any Service]

    public init(settings: CircleSettings, store: any DatabaseStore, bus: any MessageBus & ExpiringCounters, clock: any WallClock, logger: Logger, infrastructure: [any Service]) {
        self.settings = settings
        self.store = store
        self.bus = bus
        self.counters = bus
        self.rateLimiter = RateLimiter(counters: bus, limits: settings.rateLimits, logger: logger)
        self.clock = clock
        self.logger = logger
        self.events = EventPublisher(store: store, bus: bus, logger: logger)
        let sessions = SessionValidator(store: store, bus: bus, logger: logger, lifetime: settings.sessions, clock: clock)
        self.sessions = sessions
        self.infrastructure = infrastructure + [sessions, events.removals]
    }

    /// Opens the database (migrating or checking its schema) and the bus, failing fast with one
    /// clear error when either cannot be reached.
    public static func open(_ settings: CircleSettings, policy: SchemaPolicy, logger: Logger) async throws -> ServiceEnvironment {
        let (store, storeService) = try await StoreFactory.open(settings.database, policy: policy, logger: logger)
        let bus: any MessageBus & ExpiringCounters
        var infrastructure: [any Service] = [storeService]
        if let redis = settings.redis {
            let redisBus = RedisBus(settings: redis, logger: logger)
            try await redisBus.preflight()
            bus = redisBus
            infrastructure.append(redisBus)
        } else {
            bus = LocalBus()
        }
        return ServiceEnvironment(settings: settings, store: store, bus: bus, clock: SystemWallClock(), logger: logger, infrastructure: infrastructure)
    }
}

/// What one service contributes to a server: its routes and its background work.
public struct ServiceModule: Sendable {
    public let name: ServiceName
    public let addRoutes: @Sendable (Router<CircleRequestContext>) -> Void
    public let addWebSocketRoutes: (@Sendable (Router<CircleRequestContext>) -> Void)?
    /// Background work, started before the HTTP server and stopped after it.
    public let services: [any Service]
    /// Services told to stop before the HTTP server stops (closing live sockets with 1012).
    public let shutdownFirst: [any Service]

    public init(
        name: ServiceName, services: [any Service] = [], shutdownFirst: [any Service] = [],
        addRoutes: @escaping @Sendable (Router<CircleRequestContext>) -> Void,
        addWebSocketRoutes: (@Sendable (Router<CircleRequestContext>) -> Void)? = nil
    ) {
        self.name = name
        self.services = services
        self.shutdownFirst = shutdownFirst
        self.addRoutes = addRoutes
        self.addWebSocketRoutes = addWebSocketRoutes
    }

    /// The same module with only the background services `keep` accepts (a test that plays a
    /// replica's part itself runs the server without it).
    public func keepingServices(where keep: (any Service) -> Bool) -> ServiceModule {
        ServiceModule(name: name, services: services.filter(keep), shutdownFirst: shutdownFirst.filter(keep),
                      addRoutes: addRoutes, addWebSocketRoutes: addWebSocketRoutes)
    }
}

import Hummingbird
