import CircleCore
import CircleHTTP
import CircleStore
import Configuration
import Hummingbird

/// Builds the gateway: accounts, sessions, the realtime socket and the web client (DESIGN 1).
public func buildGateway(_ environment: ServiceEnvironment) async throws -> ServiceModule {
    let info = ServerInfoController(serverID: ServerIDCache(store: environment.store), mode: environment.settings.isScaled ? "scaled" : "embedded")
    return ServiceModule(name: .gateway) { router in
        info.addRoutes(to: router)
    }
}

/// The gateway as its own process (`circle-gateway`).
public func buildGatewayApplication(reader: ConfigReader) async throws -> some ApplicationProtocol {
    try await ServerBuilder.buildServiceApplication(.gateway, reader: reader, build: buildGateway)
}
