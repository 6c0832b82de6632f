import CircleActivity
import CircleConfig
import CircleCore
import CircleHTTP
import CleanupCore
import Configuration
import Hummingbird
import VaultStore

/// Builds the cleanup service: expiry sweeps, retention and the destruction protocol (ARCHITECTURE 1, 8).
/// `keyFiles` are the files the embedded server keeps its own secrets in, and `serverDestroyed`
/// runs once the whole server's destruction finished (see `DestructionRunner`).
public func buildCleanup(_ environment: ServiceEnvironment, eventRetention: Duration, vault: VaultSettings, activity: ActivitySettings,
                         keyFiles: [String] = [], serverDestroyed: (@Sendable () async -> Void)? = nil) async throws -> ServiceModule {
    let sweeper = EventLogSweeper(store: environment.store, clock: environment.clock, logger: environment.logger, retention: eventRetention)
    let expiry = ExpiredMessageSweeper(store: environment.store, clock: environment.clock, logger: environment.logger)
    let retention = RetentionSweeper(store: environment.store, clock: environment.clock, logger: environment.logger)
    let blobs = try await VaultBlobs.open(vault)
    let files = VaultSweeper(store: environment.store, blobs: blobs, clock: environment.clock, logger: environment.logger, idleRetention: vault.idleFileRetention)
    let security = ActivitySweeper(store: environment.store, clock: environment.clock, logger: environment.logger, retention: activity.retention)
    let sessions = SessionSweeper(store: environment.store, clock: environment.clock, logger: environment.logger, lifetime: environment.settings.sessions)
    let recorder = ActivityRecorder(sealer: ActivitySealer(activity), logger: environment.logger)
    let tuning = DestructionRunner.tuning(for: environment.store.engine)
    let destruction = DestructionRunner(store: environment.store, blobs: blobs, events: environment.events, security: recorder,
                                        clock: environment.clock, logger: environment.logger, batch: tuning.batch, pace: tuning.pace, keyFiles: keyFiles, serverDestroyed: serverDestroyed)
    let controller = DestructionController(
        start: DestructionStart(store: environment.store, events: environment.events, sessions: environment.sessions, security: recorder,
                                clock: environment.clock, logger: environment.logger),
        store: environment.store, trustForwardedFor: vault.trustForwardedFor
    )
    let orphans = OrphanBlobSweeper(store: environment.store, blobs: blobs, clock: environment.clock, logger: environment.logger)
    // The blob store first: it stops after the services that use it.
    return ServiceModule(name: .cleanup, services: [blobs, sweeper, expiry, retention, files, orphans, security, sessions, destruction]) { router in
        controller.addRoutes(to: router)
    }
}

/// The cleanup service as its own process (`circle-cleanup`).
public func buildCleanupServer(reader: ConfigReader) async throws -> CircleServer {
    let retention = try SettingsLoader.loadEventRetention(from: reader)
    let vault = try SettingsLoader.loadVault(from: reader)
    return try await ServerBuilder.buildServiceServer(.cleanup, reader: reader) { environment in
        try await buildCleanup(environment, eventRetention: retention, vault: vault,
                               activity: SettingsLoader.loadActivity(from: reader, settings: environment.settings))
    }
}
