import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A real process started by a test: an executable of this package or a server binary.
///
/// Output goes to a log file (never a pipe that could fill up); the process is stopped by pid.
public final class ChildProcess: @unchecked Sendable {
    public let process: Process
    public let logURL: URL
    public let name: String

    /// The folder holding this package's built executables (beside the test bundle).
    public static var buildDirectory: URL {
        if let dir = ProcessInfo.processInfo.environment["CIRCLE_BUILD_DIR"] { return URL(fileURLWithPath: dir) }
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        while url.path != "/" {
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("circle").path) { return url }
            url.deleteLastPathComponent()
        }
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(".build/debug")
    }

    /// Starts `executable` (a path, or a name of this package's executables) with arguments.
    public init(
        _ executable: String, _ arguments: [String] = [], environment: [String: String] = [:],
        inheritEnvironment: Bool = false, workingDirectory: URL? = nil, standardInput: String? = nil
    ) throws {
        let path = executable.contains("/") ? executable : Self.buildDirectory.appendingPathComponent(executable).path
        guard FileManager.default.isExecutableFile(atPath: path) else {
            throw TestSupportError("\(path) is not built: run `swift build` first (make test does)")
        }
        name = URL(fileURLWithPath: path).lastPathComponent
        process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        var env = inheritEnvironment ? ProcessInfo.processInfo.environment : ["PATH": "/usr/bin:/bin:/usr/sbin:/sbin"]
        env = env.filter { !$0.key.hasPrefix("CIRCLE_TEST_") }
        env.merge(environment) { _, new in new }
        if env["LIMITS_RATES"] == nil { env["LIMITS_RATES"] = TestServers.lenientRateLimits }
        process.environment = env
        if let workingDirectory { process.currentDirectoryURL = workingDirectory }
        logURL = FileManager.default.temporaryDirectory.appendingPathComponent("circle-test-\(name)-\(UUID().uuidString).log")
        _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        let handle = try FileHandle(forWritingTo: logURL)
        process.standardOutput = handle
        process.standardError = handle
        if let standardInput {
            let pipe = Pipe()
            process.standardInput = pipe
            try process.run()
            pipe.fileHandleForWriting.write(Data(standardInput.utf8))
            try pipe.fileHandleForWriting.close()
        } else {
            process.standardInput = FileHandle.nullDevice
            try process.run()
        }
    }

    public var pid: Int32 { process.processIdentifier }
    public var isRunning: Bool { process.isRunning }

    /// Everything the process has written so far.
    public var output: String { (try? String(contentsOf: logURL, encoding: .utf8)) ?? "" }

    public func signal(_ signal: Int32) { kill(pid, signal) }

    /// Waits for exit (polling, bounded); returns the exit status, or nil on timeout.
    @discardableResult
    public func waitForExit(timeout: Duration = .seconds(60)) async -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now > deadline { return nil }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return process.terminationStatus
    }

    /// Stops the process: SIGTERM, then SIGKILL if it lingers.
    public func stop() async {
        guard process.isRunning else { return }
        signal(SIGTERM)
        if await waitForExit(timeout: .seconds(10)) == nil {
            signal(SIGKILL)
            await waitForExit(timeout: .seconds(5))
        }
    }

    deinit {
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        try? FileManager.default.removeItem(at: logURL)
    }
}
