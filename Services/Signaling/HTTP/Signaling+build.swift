import CircleConfig
import CircleCore
import CircleHTTP
import Configuration
import Hummingbird
import SignalingCore

/// Builds the signaling service: calls, their records, the relay of their sealed SDP and ICE
/// signals, and TURN credentials (ARCHITECTURE 1, 6).
public func buildSignaling(_ environment: ServiceEnvironment, settings: CallSettings) async throws -> ServiceModule {
    let calls = CallService(store: environment.store, events: environment.events, counters: environment.counters, rateLimiter: environment.rateLimiter,
                            settings: .init(ringTimeout: settings.ringTimeout.milliseconds), clock: environment.clock, logger: environment.logger)
    let sweeper = CallSweeper(store: environment.store, calls: calls, clock: environment.clock, logger: environment.logger)
    let controller = CallController(calls: calls, turn: TurnCredentials(settings: settings), clock: environment.clock)
    if settings.hasTURN {
        environment.logger.info("calls: TURN credentials handed out", metadata: ["urls": "\(settings.turnURLs.joined(separator: ","))"])
    } else {
        environment.logger.notice("calls: no TURN server, so calls connect directly (fine on one network; across NATs some will not connect). To add one, run coturn with use-auth-secret and static-auth-secret, and set TURN_SECRET and TURN_URLS (README: Calls and TURN)")
    }
    return ServiceModule(name: .signaling, services: [sweeper]) { router in
        controller.addRoutes(to: router)
    }
}

/// The signaling service as its own process (`circle-signaling`).
public func buildSignalingServer(reader: ConfigReader) async throws -> CircleServer {
    let settings = try SettingsLoader.loadCalls(from: reader)
    return try await ServerBuilder.buildServiceServer(.signaling, reader: reader) { environment in
        try await buildSignaling(environment, settings: settings)
    }
}
