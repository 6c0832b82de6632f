import CircleCore
import CircleHTTP
import Configuration
import Hummingbird
import MessagingCore
import MessagingStore

/// Builds the messaging service: conversations, membership, encrypted messages, key envelopes and read markers (ARCHITECTURE 1).
public func buildMessaging(_ environment: ServiceEnvironment) async throws -> ServiceModule {
    let limits = MessagingLimits()
    let publisher = MessagePublisher(events: environment.events, store: environment.store, logger: environment.logger)
    let writer = MessageWriter(batches: messageBatches(environment.store, logger: environment.logger), publisher: publisher,
                               clock: environment.clock, limits: limits, logger: environment.logger)
    let relay = MessageRelay(store: environment.store, publisher: publisher, clock: environment.clock, logger: environment.logger)
    let state = MessagingState(store: environment.store, events: environment.events, clock: environment.clock,
                               logger: environment.logger, limits: limits, writer: writer, rateLimiter: environment.rateLimiter)
    let conversations = ConversationController(state: state)
    let messages = MessageController(state: state)
    let envelopes = EnvelopeController(state: state)
    // The writer stops after the HTTP server (its last requests are answered), then the outbox
    // deletions it queued run.
    return ServiceModule(name: .messaging, services: [publisher.removals, writer, relay]) { router in
        conversations.addRoutes(to: router)
        messages.addRoutes(to: router)
        envelopes.addRoutes(to: router)
    }
}

/// The messaging service as its own process (`circle-messaging`).
public func buildMessagingServer(reader: ConfigReader) async throws -> CircleServer {
    try await ServerBuilder.buildServiceServer(.messaging, reader: reader, build: buildMessaging)
}
