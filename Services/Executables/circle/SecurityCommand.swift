import ArgumentParser
import CircleActivity
import CircleConfig
import CircleCore
import CircleHTTP
import CircleStore
import Configuration
import Foundation
import Logging
import SQLKit

/// `circle security report`: the last day's security events for an admin on the server.
struct SecurityCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "security",
        abstract: "Security reports for server admins.",
        subcommands: [Report.self]
    )

    struct Report: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Summarize failed sign-ins by address and name, throttled addresses, alerts raised and admin actions.",
            discussion: "Reads the configured database directly: run it on the server, with the services' ACTIVITY_KEYS (or beside the embedded ./data/activity.key) to see addresses."
        )

        @OptionGroup var database: DatabaseOptions
        @OptionGroup var activity: ActivityOptions

        @Option(help: ArgumentHelp("How far back, as 12h, 1d or 7d.", valueName: "duration"))
        var since = "1d"

        func run() async throws {
            guard let window = SettingsLoader.parseDuration(since), window >= .seconds(60) else {
                throw ValidationError("--since must be a duration such as 12h, 1d or 7d")
            }
            let reader = ConfigSources.reader(commandLine: database.values.merging(activity.values) { first, _ in first })
            do {
                let settings = try SettingsLoader.loadDatabase(from: reader)
                let log = try SettingsLoader.loadLog(from: reader)
                LoggingSetup.bootstrap(level: log.level, format: log.format)
                let sealer = ActivitySealer(try SettingsLoader.loadActivity(from: reader, requireKeys: false, createKeyFile: false))
                let logger = Logger(label: "circle.security")
                let from = Timestamp.now().adding(seconds: -window.components.seconds)
                let (server, alerts) = try await StoreFactory.withMigratedStore(settings, logger: logger) { store in
                    try await store.read { db in
                        (try await ActivityLog.recent(ActivityLog.serverChain, since: from, limit: 100_000, in: db),
                         try await db.raw("""
                            SELECT kind, COUNT(*) AS n FROM activity_logs WHERE alert = 1 AND chain <> \(bind: ActivityLog.serverChain) AND at >= \(bind: from.millis)
                            GROUP BY kind ORDER BY kind
                            """).all().map { (try $0.decode(column: "kind", as: String.self), try $0.decode(column: "n", as: Int.self)) })
                    }
                }
                FileHandle.standardOutput.write(Data(Self.render(server: server, alerts: alerts, sealer: sealer, since: since).utf8))
            } catch let error as ValidationError {
                throw error
            } catch {
                ServiceMain.fail("circle security report", error)
            }
        }

        static func render(server: [ActivityEntry], alerts: [(String, Int)], sealer: ActivitySealer, since: String) -> String {
            func address(_ entry: ActivityEntry) -> String {
                sealer.open(entry.ipSealed, .ip, keyId: entry.keyId, chain: entry.chain, seq: entry.seq) ?? "(sealed with key \(entry.keyId))"
            }
            func detail(_ entry: ActivityEntry, _ key: String) -> String {
                ((try? JSONDecoder().decode([String: String].self, from: Data(entry.details.utf8))) ?? [:])[key] ?? "?"
            }
            func top(_ counts: [String: Int]) -> [String] {
                counts.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.prefix(10).map { "    \($0.value)\t\($0.key)" }
            }
            let failures = server.filter { $0.kind == ActivityKind.signInFailed.rawValue }
            let throttles = server.filter { $0.kind == ActivityKind.throttled.rawValue }
            let admin = server.filter { [ActivityKind.adminAction.rawValue, ActivityKind.inviteCreated.rawValue, ActivityKind.inviteUsed.rawValue].contains($0.kind) }
            var lines = ["Security report for the last \(since)", ""]
            lines.append("Failed sign-ins: \(failures.count)")
            if !failures.isEmpty {
                lines.append("  by address:")
                lines += top(Dictionary(grouping: failures, by: address).mapValues(\.count))
                lines.append("  by name:")
                lines += top(Dictionary(grouping: failures) { detail($0, "username") }.mapValues(\.count))
            }
            lines.append("Throttled: \(throttles.count)")
            lines += top(Dictionary(grouping: throttles, by: address).mapValues(\.count))
            lines.append("Alerts raised: \(alerts.reduce(0) { $0 + $1.1 })")
            lines += alerts.map { "    \($0.1)\t\($0.0)" }
            lines.append("Admin actions and invites: \(admin.count)")
            let format = ISO8601DateFormatter()
            lines += admin.reversed().map { entry in
                "    \(format.string(from: Date(timeIntervalSince1970: Double(entry.at) / 1000)))\t\(entry.kind)\t\(entry.details)"
            }
            return lines.joined(separator: "\n") + "\n"
        }
    }
}
