import CircleCore
import CircleHTTP
import Configuration
import Hummingbird

/// Builds the vault service: encrypted file blobs, resumable uploads, access control, share links and quotas (DESIGN 1).
public func buildVault(_ environment: ServiceEnvironment) async throws -> ServiceModule {
    ServiceModule(name: .vault) { _ in }
}

/// The vault service as its own process (`circle-vault`).
public func buildVaultApplication(reader: ConfigReader) async throws -> some ApplicationProtocol {
    try await ServerBuilder.buildServiceApplication(.vault, reader: reader, build: buildVault)
}
