import CircleConfig
import CircleStore
import Foundation
import Hummingbird

/// Runs a server process: builds it, runs it until SIGTERM or SIGINT, and turns a startup
/// failure into one line on standard error and exit status 1.
public enum ServiceMain {
    public static func run(_ executable: String, build: () async throws -> CircleServer) async throws {
        let app: CircleServer
        do {
            app = try await build()
        } catch {
            fail(executable, error)
        }
        do {
            try await app.runService()
        } catch {
            fail(executable, error)
        }
    }

    /// Writes `executable: reason` to standard error and exits with status 1.
    public static func fail(_ executable: String, _ error: any Error) -> Never {
        let reason: String
        switch error {
        case let error as ConfigError: reason = error.description
        case let error as StoreError: reason = error.description
        default: reason = "\(error)"
        }
        FileHandle.standardError.write(Data("\(executable): \(reason)\n".utf8))
        exit(1)
    }
}
