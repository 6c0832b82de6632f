import ArgumentParser
import CircleConfig
import CircleHTTP
import SignalingHTTP

@main
struct SignalingCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "circle-signaling",
        abstract: "Circle's signaling service: needs PostgreSQL and Redis, and a database migrated by `circle migrate`.",
        discussion: "Each option can also be set by the environment variable shown; the command line wins."
    )

    @OptionGroup var options: ServerOptions
    @OptionGroup var calls: CallOptions

    func run() async throws {
        let reader = ConfigSources.reader(commandLine: options.values.merging(calls.values) { first, _ in first })
        try await ServiceMain.run("circle-signaling") { try await buildSignalingServer(reader: reader) }
    }
}
