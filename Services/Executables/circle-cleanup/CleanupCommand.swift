import ArgumentParser
import CircleConfig
import CircleHTTP
import CleanupHTTP

@main
struct CleanupCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "circle-cleanup",
        abstract: "Circle's cleanup service: needs PostgreSQL and Redis, and a database migrated by `circle migrate`.",
        discussion: "Each option can also be set by the environment variable shown; the command line wins."
    )

    @OptionGroup var options: ServerOptions
    @OptionGroup var cleanup: CleanupOptions
    @OptionGroup var vault: VaultOptions
    @OptionGroup var activity: ActivityOptions

    func run() async throws {
        let reader = ConfigSources.reader(commandLine: options.values.merging(cleanup.values) { first, _ in first }
            .merging(vault.values) { first, _ in first }.merging(activity.values) { first, _ in first })
        try await ServiceMain.run("circle-cleanup") { try await buildCleanupServer(reader: reader) }
    }
}
