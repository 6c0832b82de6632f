import ArgumentParser
import CircleConfig
import CircleCore
import CircleHTTP
import CircleStore
import CleanupStore
import Configuration
import Foundation
import Logging
import VaultStore

/// `circle destroy --everything`: the emergency destruction of the whole server (ARCHITECTURE 8).
struct DestroyCommand: AsyncParsableCommand {
    static let phrase = "destroy everything"

    static let configuration = CommandConfiguration(
        commandName: "destroy",
        abstract: "Emergency: destroy every account, message, file and key of this server.",
        discussion: """
            Run it on the server. Keys first: one transaction deletes every key bundle, recovery \
            copy, pin, envelope, file and link wrap and login secret and ends every session, so \
            nothing stored opens any more; then the pepper and activity key files are overwritten \
            and removed, then every row and every vault blob. The schema stays: `circle serve` \
            starts again as an empty server (with new keys). In the scaled mode AUTH_PEPPER and \
            ACTIVITY_KEYS live in your secret store: delete them there too. Cannot be undone.
            """
    )

    @OptionGroup var database: DatabaseOptions

    @OptionGroup(title: "Vault in S3-compatible storage (when the server keeps its files there)") var vaultS3: VaultS3Options

    @Flag(help: "Destroy everything (required: there is no partial server destruction).")
    var everything = false

    @Option(help: ArgumentHelp("Type \"\(DestroyCommand.phrase)\" to confirm.", valueName: "phrase"))
    var confirm: String?

    @Option(name: .customLong("vault-path"), help: ArgumentHelp(CircleConfigKey.vaultPath.help, valueName: "path"))
    var vaultPath: String?

    @Option(name: .customLong("auth-pepper-file"), help: ArgumentHelp(CircleConfigKey.authPepperFile.help, valueName: "path"))
    var pepperFile: String?

    @Option(name: .customLong("activity-key-file"), help: ArgumentHelp(CircleConfigKey.activityKeyFile.help, valueName: "path"))
    var activityKeyFile: String?

    func validate() throws {
        guard everything else { throw ValidationError("say what to destroy: --everything --confirm \"\(Self.phrase)\"") }
        guard confirm?.trimmingCharacters(in: .whitespaces).lowercased() == Self.phrase else {
            throw ValidationError("type --confirm \"\(Self.phrase)\" to confirm; this cannot be undone")
        }
    }

    func run() async throws {
        var values = database.values.merging(vaultS3.values) { first, _ in first }
        values[.vaultPath] = vaultPath
        values[.authPepperFile] = pepperFile
        values[.activityKeyFile] = activityKeyFile
        let reader = ConfigSources.reader(commandLine: values)
        func setting(_ key: CircleConfigKey, default fallback: String) -> String {
            let value = reader.string(forKey: ConfigKey(key.rawValue))?.trimmingCharacters(in: .whitespaces) ?? ""
            return value.isEmpty ? fallback : value
        }
        let keyFiles = [("pepper", setting(.authPepperFile, default: "./data/pepper.key")),
                        ("activity key", setting(.activityKeyFile, default: "./data/activity.key"))]
        let vault = setting(.vaultPath, default: "./data/vault")
        do {
            let settings = try SettingsLoader.loadDatabase(from: reader)
            let log = try SettingsLoader.loadLog(from: reader)
            LoggingSetup.bootstrap(level: log.level, format: log.format)
            let logger = Logger(label: "circle.destroy")
            let report = try await StoreFactory.withMigratedStore(settings, logger: logger) { store in
                let bundles = try await ServerDestruction.shredKeys(store: store, at: .now())
                var lines = ["keys destroyed: \(bundles) key bundles, every envelope, wrap and login secret; every session ended"]
                for (what, path) in keyFiles {
                    lines.append(try ServerDestruction.destroyKeyFile(path) ? "\(what) file destroyed: \(path)" : "no \(what) file at \(path)")
                }
                let tables = try await ServerDestruction.deleteRows(store: store)
                lines.append("rows deleted from \(tables.count) tables")
                let vaultSettings = try SettingsLoader.loadVault(from: reader)
                if let s3 = vaultSettings.s3, let bucket = try await VaultBlobs.open(vaultSettings) as? S3BlobStore {
                    let count = try await bucket.deleteEverything()
                    try await bucket.client.shutdown()
                    lines.append("vault: \(count) objects deleted from bucket \(s3.bucket) at \(s3.endpoint)")
                } else {
                    lines.append("vault: \(try ServerDestruction.removeBlobs(in: vault)) entries removed from \(vault)")
                }
                if case .postgres = settings {
                    lines.append("the scaled mode's AUTH_PEPPER and ACTIVITY_KEYS are in your secret store: delete them there")
                }
                return lines
            }
            FileHandle.standardOutput.write(Data((report.joined(separator: "\n") + "\n").utf8))
        } catch {
            ServiceMain.fail("circle destroy", error)
        }
    }
}
