import ArgumentParser
import CircleActivity
import CircleConfig
import CircleCore
import CircleHTTP
import CircleStore
import Configuration
import Foundation
import GatewayHTTP
import GatewayStore
import Logging

struct InviteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "invite",
        abstract: "Manage invitations (server admin commands).",
        subcommands: [Create.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a single-use, expiring invite and print its link.",
            discussion: "Writes to the configured database directly: run it on the server."
        )

        @OptionGroup var database: DatabaseOptions
        @OptionGroup var activity: ActivityOptions

        @Option(name: .customLong("http-public-url"), help: ArgumentHelp(CircleConfigKey.httpPublicURL.help, valueName: "url"))
        var publicURL: String?

        @Option(name: .customLong("http-port"), help: ArgumentHelp("The port `circle serve` listens on, for the link (http://localhost:PORT) when no public URL is set. Without either, the link uses the address `circle serve` last served this data at.", valueName: "port"))
        var httpPort: Int?

        @Flag(help: "The invitee becomes a server admin.")
        var admin = false

        @Option(help: ArgumentHelp("How long the invite stays valid, as 30m, 12h or 7d.", valueName: "duration"))
        var expiresIn = "7d"

        func run() async throws {
            var values = database.values.merging(activity.values) { first, _ in first }
            values[.httpPublicURL] = publicURL
            values[.httpPort] = httpPort.map(String.init)
            let reader = ConfigSources.reader(commandLine: values)
            do {
                guard let validFor = SettingsLoader.parseDuration(expiresIn), validFor >= .seconds(60), validFor <= .seconds(90 * 86400) else {
                    throw ValidationError("--expires-in must be between 1m and 90d, as 30m, 12h or 7d")
                }
                let settings = try SettingsLoader.loadDatabase(from: reader)
                let log = try SettingsLoader.loadLog(from: reader)
                LoggingSetup.bootstrap(level: log.level, format: log.format)
                let logger = Logger(label: "circle.invite")
                let configuredURL = reader.string(forKey: ConfigKey(CircleConfigKey.httpPublicURL.rawValue))
                let configuredPort = reader.string(forKey: ConfigKey(CircleConfigKey.httpPort.rawValue))
                if let configuredPort, !(UInt16(configuredPort).map { $0 > 0 } ?? false) {
                    throw ValidationError("--http-port must be a port from 1 to 65535 (got \(configuredPort))")
                }
                let grantsAdmin = admin
                // An admin action: recorded in the server's activity chain (keys as the services
                // have them; an embedded server's key file is made if it is not there yet).
                let embedded = if case .sqlite = settings { true } else { false }
                let recorder = ActivityRecorder(
                    sealer: ActivitySealer(try SettingsLoader.loadActivity(from: reader, requireKeys: false, createKeyFile: embedded)), logger: logger)
                let link = try await StoreFactory.withMigratedStore(settings, logger: logger) { store in
                    // Told an address, that one; else where `circle serve` last served this data.
                    let served = try await ServerIdentity.servedAddress(from: store)
                    let publicURL = configuredURL ?? configuredPort.map { "http://localhost:\($0)" } ?? served ?? "http://localhost:8080"
                    let base = publicURL.hasSuffix("/") ? String(publicURL.dropLast()) : publicURL
                    let link = try await Invites.create(store: store, publicURL: base, grantsAdmin: grantsAdmin, validFor: validFor)
                    let item = ActivityItem(chain: ActivityLog.serverChain, kind: .inviteCreated,
                                            details: ["admin": grantsAdmin ? "yes" : "no", "validFor": "\(validFor.components.seconds)s", "by": "circle invite create"])
                    _ = try await store.write { db in try await recorder.record([item], at: .now(), engine: store.engine, in: db) }
                    return link
                }
                FileHandle.standardOutput.write(Data("\(link)\n".utf8))
            } catch let error as ValidationError {
                throw error
            } catch {
                ServiceMain.fail("circle invite create", error)
            }
        }
    }
}
