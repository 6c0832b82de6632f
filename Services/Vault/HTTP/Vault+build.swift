import CircleActivity
import CircleConfig
import CircleCore
import CircleHTTP
import Configuration
import Hummingbird
import VaultCore
import VaultStore

/// Builds the vault service: encrypted file blobs, resumable uploads, access control, share links and quotas (ARCHITECTURE 1, 5).
public func buildVault(_ environment: ServiceEnvironment, settings: VaultSettings, activity: ActivitySettings) async throws -> ServiceModule {
    let blobs = try await VaultBlobs.open(settings)
    let state = VaultState(
        store: environment.store, events: environment.events, blobs: blobs,
        settings: settings, clock: environment.clock, logger: environment.logger,
        hashers: UploadHashers(), leases: UploadLeases(store: environment.store, clock: environment.clock),
        security: ActivityRecorder(sealer: ActivitySealer(activity), logger: environment.logger),
        linkThrottle: FailureThrottle(counters: environment.counters, logger: environment.logger),
        rateLimiter: environment.rateLimiter
    )
    let uploads = UploadController(state: state)
    let files = FileController(state: state)
    let links = LinkController(state: state)
    return ServiceModule(name: .vault, services: [blobs]) { router in
        uploads.addRoutes(to: router)
        files.addRoutes(to: router)
        links.addRoutes(to: router)
    }
}

/// The vault service as its own process (`circle-vault`).
public func buildVaultServer(reader: ConfigReader) async throws -> CircleServer {
    let settings = try SettingsLoader.loadVault(from: reader)
    return try await ServerBuilder.buildServiceServer(.vault, reader: reader) { environment in
        try await buildVault(environment, settings: settings, activity: SettingsLoader.loadActivity(from: reader, settings: environment.settings))
    }
}
