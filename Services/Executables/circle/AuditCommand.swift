import ArgumentParser
import CircleActivity
import CircleConfig
import CircleCore
import CircleHTTP
import CircleStore
import Configuration
import Foundation
import GatewayStore
import Logging

/// `circle audit verify`: walks the security activity chains in the configured database.
struct AuditCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Check the security activity log (server admin commands).",
        subcommands: [Verify.self]
    )

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Walk every member's activity chain (and the server's) and name the first entry altered, removed or reordered.",
            discussion: "Reads the configured database directly: run it on the server. Exits with status 1 when a chain is broken. The keys that seal addresses are not needed."
        )

        @OptionGroup var database: DatabaseOptions

        @Option(help: ArgumentHelp("Check only this member's chain (their username).", valueName: "name"))
        var user: String?

        func run() async throws {
            let reader = ConfigSources.reader(commandLine: database.values)
            let broken: Int
            do {
                let settings = try SettingsLoader.loadDatabase(from: reader)
                let log = try SettingsLoader.loadLog(from: reader)
                LoggingSetup.bootstrap(level: log.level, format: log.format)
                let logger = Logger(label: "circle.audit")
                let only = user
                let report = try await StoreFactory.withMigratedStore(settings, logger: logger) { store in
                    try await store.read { db -> [(String, String, ChainCheck)] in
                        var chains: [(chain: String, label: String)] = []
                        if let only {
                            guard let member = try await AccountRepository.user(named: only.lowercased(), in: db) else {
                                throw ValidationError("no member is named \(only)")
                            }
                            chains = [(member.id, member.username)]
                        } else {
                            for chain in try await ActivityLog.chains(in: db) {
                                let name = chain == ActivityLog.serverChain ? "(server)" : (try await AccountRepository.user(id: chain, in: db)?.username ?? chain)
                                chains.append((chain, name))
                            }
                        }
                        var results: [(String, String, ChainCheck)] = []
                        for (chain, label) in chains { results.append((chain, label, try await ActivityLog.verify(chain, in: db))) }
                        return results
                    }
                }
                var lines: [String] = []
                var bad = 0
                for (chain, label, check) in report {
                    switch check {
                    case .intact(let entries, let head):
                        lines.append("\(label) [\(chain)]: intact, \(entries) entries up to \(head)")
                    case .broken(let seq, let reason):
                        bad += 1
                        lines.append("\(label) [\(chain)]: BROKEN at entry \(seq): \(reason)")
                    }
                }
                if report.isEmpty { lines.append("no activity recorded yet") }
                lines.append(bad == 0 ? "all \(report.count) chains intact" : "\(bad) of \(report.count) chains broken")
                FileHandle.standardOutput.write(Data((lines.joined(separator: "\n") + "\n").utf8))
                broken = bad
            } catch let error as ValidationError {
                throw error
            } catch {
                ServiceMain.fail("circle audit verify", error)
            }
            if broken > 0 { throw ExitCode(1) }
        }
    }
}
