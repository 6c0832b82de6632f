import CircleConfig
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A private redis-server for a test that kills or restarts it (never the shared one).
public final class RedisServerProcess: @unchecked Sendable {
    public let port: Int
    private var child: ChildProcess?

    private init(port: Int) { self.port = port }

    /// Starts redis-server on a free loopback port, without persistence.
    public static func start() async throws -> RedisServerProcess {
        let server = RedisServerProcess(port: try FreePort.find())
        try await server.launch()
        return server
    }

    public var url: String { "redis://127.0.0.1:\(port)" }

    public func settings(prefix: String = "test:") -> RedisSettings {
        RedisSettings(host: "127.0.0.1", port: port, prefix: prefix)
    }

    private func launch() async throws {
        let binary = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"].first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let binary else { throw TestSupportError("redis-server is not installed (apt-get install redis-server)") }
        child = try ChildProcess(binary, ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"])
        let deadline = ContinuousClock.now + .seconds(10)
        while !FreePort.isListening(port) {
            if ContinuousClock.now > deadline { throw TestSupportError("redis-server did not start on port \(port)") }
            try await Task.sleep(for: .milliseconds(20))
        }
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    public func kill() async {
        child?.signal(SIGKILL)
        await child?.waitForExit(timeout: .seconds(5))
        child = nil
    }

    /// Starts it again on the same port.
    public func restart() async throws {
        try await launch()
    }

    public func stop() async {
        await child?.stop()
        child = nil
    }
}
