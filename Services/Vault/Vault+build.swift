import CircleCore
import CircleHTTP
import Configuration
import Hummingbird

/// Builds the vault service: encrypted file blobs, resumable uploads, access control, share links and quotas (DESIGN 1).
public func buildVault(_ environment: ServiceEnvironment) async throws -> ServiceModule {
    ServiceModule(name: .vault) { _ in }
}

/// The vault service as its own process (`circle-vault`).
public func buildVaultServer(reader: ConfigReader) async throws -> CircleServer {
    try await ServerBuilder.buildServiceServer(.vault, reader: reader, build: buildVault)
}
