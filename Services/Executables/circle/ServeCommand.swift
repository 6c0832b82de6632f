import AllInOne
import ArgumentParser
import CircleConfig
import CircleHTTP
import CircleStore
import Configuration
import Foundation
import GatewayHTTP
import GatewayStore
import NIOCore

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run all six services in one process.",
        discussion: """
            With no configuration: a SQLite database in ./data/, the in-process bus, and HTTP on \
            http://127.0.0.1:8080. With --postgres-url and --redis-url: the same services on \
            PostgreSQL and Redis. Pending migrations are applied at start. On a server with no \
            members yet it prints an invite link for the first admin.
            """
    )

    @OptionGroup var server: ServerOptions
    @OptionGroup var embedded: EmbeddedOptions
    @OptionGroup var gateway: GatewayOptions
    @OptionGroup var cleanup: CleanupOptions
    @OptionGroup var vault: VaultOptions
    @OptionGroup var activity: ActivityOptions
    @OptionGroup var calls: CallOptions

    func run() async throws {
        let values = server.values.merging(embedded.values) { first, _ in first }
            .merging(activity.values) { first, _ in first }
            .merging(gateway.values) { first, _ in first }
            .merging(cleanup.values) { first, _ in first }
            .merging(vault.values) { first, _ in first }
            .merging(calls.values) { first, _ in first }
        let reader = ConfigSources.reader(commandLine: values)
        // A server destroyed from an admin's browser stops: its secrets are gone from disk, so it
        // starts again (by its supervisor or its operator) with new ones. It waits a few seconds
        // first, so the admins' pages following the job see it finished.
        let destroyed: @Sendable () async -> Void = {
            try? await Task.sleep(for: .seconds(8))
            kill(getpid(), SIGTERM)
        }
        try await ServiceMain.run("circle serve") {
            try await buildEmbeddedServer(reader: reader, serverDestroyed: destroyed) { channel, environment in
                guard let address = channel.localAddress, let port = address.port else { return }
                let loopback = ["127.0.0.1", "0.0.0.0", "::1", "::"].contains(address.ipAddress ?? "")
                let host = loopback ? "localhost" : (address.ipAddress ?? "localhost")
                var lines = ["Circle is running. Open http://\(host):\(port) in your browser (Ctrl-C to stop)."]
                do {
                    // The configured public address, or the one just bound: what invites point at,
                    // now and from a later `circle invite create` on the same data.
                    let configured = reader.string(forKey: ConfigKey(CircleConfigKey.httpPublicURL.rawValue)) != nil
                    let publicURL = configured ? try SettingsLoader.loadGateway(from: reader, settings: environment.settings).publicURL : "http://\(host):\(port)"
                    try await ServerIdentity.recordServedAddress(publicURL, in: environment.store)
                    if let link = try await Invites.firstAdminInviteIfEmpty(store: environment.store, publicURL: publicURL) {
                        lines.append("No members yet. Register the first admin with this invite (valid 24 hours):")
                        lines.append("  \(link)")
                    }
                } catch {
                    lines.append("Could not create the first invite: \(error). Run `circle invite create --admin`.")
                }
                FileHandle.standardOutput.write(Data((lines.joined(separator: "\n") + "\n").utf8))
            }
        }
    }
}
