import ArgumentParser
import CircleKit
import CircleProtocol
import Foundation

/// Where a client keeps its device state, and how it reads a password.
struct ClientOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The device state file (keys, session, pins; mode 0600). Environment: CIRCLE_STATE.", valueName: "path"))
    var state: String?

    var statePath: String {
        if let state { return state }
        if let fromEnvironment = ProcessInfo.processInfo.environment["CIRCLE_STATE"], !fromEnvironment.isEmpty { return fromEnvironment }
        return FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".config/circle/device.json").path
    }

    func client() throws -> ChatClient { try ChatClient(statePath: statePath) }
}

/// Reads a password without echo from the terminal, or one line from standard input.
enum PasswordInput {
    static func read(fromStdin: Bool, confirm: Bool) throws -> String {
        if fromStdin || isatty(STDIN_FILENO) == 0 {
            guard let line = readLine(strippingNewline: true), !line.isEmpty else { throw ValidationError("no password on standard input") }
            return line
        }
        guard let first = getpass("Password: ").map({ String(cString: $0) }), !first.isEmpty else { throw ValidationError("no password given") }
        if confirm {
            guard let second = getpass("Password again: ").map({ String(cString: $0) }), second == first else { throw ValidationError("the passwords differ") }
        }
        return first
    }
}

/// Output of client commands (standard output; errors to standard error).
enum Out {
    static func line(_ text: String) { FileHandle.standardOutput.write(Data((text + "\n").utf8)) }

    /// Runs a client command, turning failures into one clear line and exit code 1.
    static func run(_ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch let error as ValidationError {
            throw error
        } catch let exit as ExitCode {
            throw exit
        } catch let alarm as ChatAlarm {
            FileHandle.standardError.write(Data("circle: \(alarm)\n".utf8))
            throw ExitCode(2)
        } catch {
            FileHandle.standardError.write(Data("circle: \(error)\n".utf8))
            throw ExitCode.failure
        }
    }
}

struct RegisterCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "register",
        abstract: "Create an account on a Circle server (keys are made here; the password never leaves this machine).",
        discussion: "Prints the recovery key once: keep it offline. It is the only way back in after a forgotten password."
    )

    @OptionGroup var client: ClientOptions
    @Option(help: "The server's address, e.g. http://localhost:8080.") var server: String
    @Option(help: "The invite link or code (unless the server allows open registration).") var invite: String?
    @Option(help: "3 to 32 characters: a-z 0-9 . _ -") var username: String
    @Option(help: "The name others see (defaults to the username).") var displayName: String?
    @Option(help: "A label for this device in the session list.") var device = "circle CLI"
    @Flag(help: "Read the password from standard input instead of prompting.") var passwordStdin = false

    func run() async throws {
        try await Out.run {
            let password = try PasswordInput.read(fromStdin: passwordStdin, confirm: true)
            let (chat, recovery) = try await ChatClient.register(server: server, invite: invite, username: username, displayName: displayName,
                                                                 password: password, deviceLabel: device, statePath: client.statePath)
            Out.line("Registered \(await chat.username) on \(server).")
            Out.line("Recovery key (shown once, keep it offline): \(recovery.text)")
        }
    }
}

struct LoginCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "login", abstract: "Sign in on this device (a new session; keys come from your encrypted bundle).")

    @OptionGroup var client: ClientOptions
    @Option(help: "The server's address, e.g. http://localhost:8080.") var server: String
    @Option var username: String
    @Option(help: "A label for this device in the session list.") var device = "circle CLI"
    @Flag(help: "Read the password from standard input instead of prompting.") var passwordStdin = false

    func run() async throws {
        try await Out.run {
            let password = try PasswordInput.read(fromStdin: passwordStdin, confirm: false)
            let chat = try await ChatClient.login(server: server, username: username, password: password, deviceLabel: device, statePath: client.statePath)
            Out.line("Signed in as \(await chat.username).")
        }
    }
}

struct LogoutCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "logout", abstract: "End this device's session on the server.")
    @OptionGroup var client: ClientOptions

    func run() async throws {
        try await Out.run {
            try await client.client().logout()
            Out.line("Signed out.")
        }
    }
}

struct SafetyNumberCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "safety-number",
        abstract: "Show the safety number you share with a contact: compare it with theirs, in person or on a call."
    )
    @OptionGroup var client: ClientOptions
    @Argument(help: "The contact's username.") var username: String

    func run() async throws {
        try await Out.run {
            let chat = try client.client()
            Out.line(try await chat.safetyNumber(with: username))
        }
    }
}

struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Mark a contact verified after comparing safety numbers.",
        discussion: "When a contact's key changed, sending to them is blocked: compare the new safety number, then run this with --accept-new-key."
    )
    @OptionGroup var client: ClientOptions
    @Argument(help: "The contact's username.") var username: String
    @Flag(help: "Accept the key the directory now shows instead of the pinned one.") var acceptNewKey = false

    func run() async throws {
        try await Out.run {
            try await client.client().verify(username, acceptNewKey: acceptNewKey)
            Out.line("\(username) is verified.")
        }
    }
}
