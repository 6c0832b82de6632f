import ArgumentParser
import CircleConfig
import CircleCore
import CircleHTTP
import CircleStore
import Foundation
import Logging

struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Apply pending schema migrations to the configured database, then exit.",
        discussion: "PostgreSQL when --postgres-url (or POSTGRES_URL) is given, else the SQLite file."
    )

    @OptionGroup var database: DatabaseOptions

    func run() async throws {
        let reader = ConfigSources.reader(commandLine: database.values)
        do {
            let settings = try SettingsLoader.loadDatabase(from: reader)
            let log = try SettingsLoader.loadLog(from: reader)
            LoggingSetup.bootstrap(level: log.level, format: log.format)
            let logger = Logger(label: "circle.migrate")
            let version = try await StoreFactory.migrate(settings, logger: logger)
            FileHandle.standardOutput.write(Data("Database schema is at version \(version).\n".utf8))
        } catch {
            ServiceMain.fail("circle migrate", error)
        }
    }
}
