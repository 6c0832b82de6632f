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

        @Flag(help: "The invitee becomes a server admin.")
        var admin = false

        @Option(help: ArgumentHelp("How long the invite stays valid, as 30m, 12h or 7d.", valueName: "duration"))
        var expiresIn = "7d"

        func run() async throws {
            var values = database.values.merging(activity.values) { first, _ in first }
            values[.httpPublicURL] = publicURL
            let reader = ConfigSources.reader(commandLine: values)
            do {
                guard let validFor = SettingsLoader.parseDuration(expiresIn), validFor >= .seconds(60), validFor <= .seconds(90 * 86400) else {
                    throw ValidationError("--expires-in must be between 1m and 90d, as 30m, 12h or 7d")
                }
                let settings = try SettingsLoader.loadDatabase(from: reader)
                let log = try SettingsLoader.loadLog(from: reader)
                LoggingSetup.bootstrap(level: log.level, format: log.format)
                let logger = Logger(label: "circle.invite")
                let publicURL = (reader.string(forKey: ConfigKey(CircleConfigKey.httpPublicURL.rawValue)) ?? "http://localhost:8080")
                let base = publicURL.hasSuffix("/") ? String(publicURL.dropLast()) : publicURL
                let grantsAdmin = admin
                // An admin action: recorded in the server's activity chain (keys as the services
                // have them; an embedded server's key file is made if it is not there yet).
                let embedded = if case .sqlite = settings { true } else { false }
                let recorder = ActivityRecorder(
                    sealer: ActivitySealer(try SettingsLoader.loadActivity(from: reader, requireKeys: false, createKeyFile: embedded)), logger: logger)
                let link = try await StoreFactory.withMigratedStore(settings, logger: logger) { store in
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
