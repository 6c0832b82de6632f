import ArgumentParser
import CircleConfig
import CircleHTTP
import VaultHTTP

@main
struct VaultCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "circle-vault",
        abstract: "Circle's vault service: needs PostgreSQL and Redis, and a database migrated by `circle migrate`.",
        discussion: "Each option can also be set by the environment variable shown; the command line wins."
    )

    @OptionGroup var options: ServerOptions
    @OptionGroup var vault: VaultOptions
    @OptionGroup var activity: ActivityOptions

    func run() async throws {
        let reader = ConfigSources.reader(commandLine: options.values.merging(vault.values) { first, _ in first }.merging(activity.values) { first, _ in first })
        try await ServiceMain.run("circle-vault") { try await buildVaultServer(reader: reader) }
    }
}
