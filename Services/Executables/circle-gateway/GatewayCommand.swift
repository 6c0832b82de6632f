import ArgumentParser
import CircleConfig
import CircleHTTP
import GatewayHTTP

@main
struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "circle-gateway",
        abstract: "Circle's gateway service: needs PostgreSQL and Redis, and a database migrated by `circle migrate`.",
        discussion: "Each option can also be set by the environment variable shown; the command line wins."
    )

    @OptionGroup var options: ServerOptions
    @OptionGroup var gateway: GatewayOptions
    @OptionGroup var activity: ActivityOptions

    func run() async throws {
        let reader = ConfigSources.reader(commandLine: options.values.merging(gateway.values) { first, _ in first }.merging(activity.values) { first, _ in first })
        try await ServiceMain.run("circle-gateway") { try await buildGatewayServer(reader: reader) }
    }
}
