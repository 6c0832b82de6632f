import CircleBus
import CircleConfig
import CircleCore
import CircleStore
import Logging
import ServiceLifecycle

/// What every service is built from: its configuration, the database, the bus, time and logs.
public struct ServiceEnvironment: Sendable {
    public let settings: CircleSettings
    public let store: any DatabaseStore
    public let bus: any MessageBus
    public let clock: any WallClock
    public let logger: Logger
    /// The long-lived pieces behind `store` and `bus`, run before the services that use them.
    public let infrastructure: [any Service]

    public init(settings: CircleSettings, store: any DatabaseStore, bus: any MessageBus, clock: any WallClock, logger: Logger, infrastructure: [any Service]) {
        self.settings = settings
        self.store = store
        self.bus = bus
        self.clock = clock
        self.logger = logger
        self.infrastructure = infrastructure
    }

    /// Opens the database (migrating or checking its schema) and the bus, failing fast with one
    /// clear error when either cannot be reached.
    public static func open(_ settings: CircleSettings, policy: SchemaPolicy, logger: Logger) async throws -> ServiceEnvironment {
        let (store, storeService) = try await StoreFactory.open(settings.database, policy: policy, logger: logger)
        let bus: any MessageBus
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
    public let services: [any Service]

    public init(name: ServiceName, services: [any Service] = [], addRoutes: @escaping @Sendable (Router<CircleRequestContext>) -> Void) {
        self.name = name
        self.services = services
        self.addRoutes = addRoutes
    }
}

import Hummingbird
