import CircleCore
import CircleHTTP
import Configuration
import Hummingbird
import PresenceCore
import PresenceStore

/// Builds the presence service: online status, custom status and last seen, from the gateways'
/// connection reports (ARCHITECTURE 1, 7).
public func buildPresence(_ environment: ServiceEnvironment) async throws -> ServiceModule {
    let presence = PresenceService(store: environment.store, events: environment.events, clock: environment.clock, logger: environment.logger)
    let backlog = ReportBacklog()
    let consumer = ConnectionConsumer(store: environment.store, bus: environment.bus, presence: presence, clock: environment.clock, logger: environment.logger, backlog: backlog)
    let sweeper = PresenceSweeper(store: environment.store, presence: presence, clock: environment.clock, logger: environment.logger, backlog: backlog)
    let controller = PresenceController(presence: presence, clock: environment.clock)
    return ServiceModule(name: .presence, services: [consumer, sweeper]) { router in
        controller.addRoutes(to: router)
    }
}

/// The presence service as its own process (`circle-presence`).
public func buildPresenceServer(reader: ConfigReader) async throws -> CircleServer {
    try await ServerBuilder.buildServiceServer(.presence, reader: reader, build: buildPresence)
}
