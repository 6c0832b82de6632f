import ArgumentParser
import CircleConfig
import CircleHTTP
import PresenceHTTP

@main
struct PresenceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "circle-presence",
        abstract: "Circle's presence service: needs PostgreSQL and Redis, and a database migrated by `circle migrate`.",
        discussion: "Each option can also be set by the environment variable shown; the command line wins."
    )

    @OptionGroup var options: ServerOptions

    func run() async throws {
        let reader = ConfigSources.reader(commandLine: options.values)
        try await ServiceMain.run("circle-presence") { try await buildPresenceServer(reader: reader) }
    }
}
