import AllInOne
import ArgumentParser
import CircleConfig
import CircleHTTP
import Foundation
import NIOCore

struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run all six services in one process.",
        discussion: """
            With no configuration: a SQLite database in ./data/, the in-process bus, and HTTP on \
            http://127.0.0.1:8080. With --postgres-url and --redis-url: the same services on \
            PostgreSQL and Redis. Pending migrations are applied at start.
            """
    )

    @OptionGroup var server: ServerOptions
    @OptionGroup var embedded: EmbeddedOptions

    func run() async throws {
        let reader = ConfigSources.reader(commandLine: server.values.merging(embedded.values) { first, _ in first })
        try await ServiceMain.run("circle serve") {
            try await buildEmbeddedApplication(reader: reader) { channel in
                guard let address = channel.localAddress, let port = address.port else { return }
                let host = address.ipAddress == "127.0.0.1" || address.ipAddress == "0.0.0.0" || address.ipAddress == "::1" ? "localhost" : (address.ipAddress ?? "localhost")
                FileHandle.standardOutput.write(Data("Circle is running. Open http://\(host):\(port) in your browser (Ctrl-C to stop).\n".utf8))
            }
        }
    }
}
