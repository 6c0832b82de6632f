import ArgumentParser
import CircleConfig
import CircleCore
import CircleKit
import Foundation

/// `circle status`: presence, one's own and one's contacts'.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Your presence and your contacts' (online, away, busy, invisible, custom status).",
        discussion: "Presence is reported by the server, which could forge it: treat it as a hint.",
        subcommands: [Show.self, Set.self],
        defaultSubcommand: Show.self
    )

    static func describe(_ name: String, _ presence: Presence) -> String {
        var line = "\(name): \(presence.state)"
        if let chosen = presence.chosen, chosen != presence.state { line += " (chosen: \(chosen))" }
        if let status = presence.status {
            line += " — \(status.emoji.isEmpty ? "" : status.emoji + " ")\(status.text)"
            if let until = status.expiresAt { line += " (until \(ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(until) / 1000))))" }
        }
        if presence.state == "offline", let seen = presence.lastSeenAt {
            line += ", last seen \(ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double(seen) / 1000)))"
        }
        return line
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show your presence and your contacts' (or only USERS').")
        @OptionGroup var client: ClientOptions
        @Argument(help: "Usernames (default: you and everyone you share a conversation with).") var users: [String] = []

        func run() async throws {
            try await Out.run {
                let chat = try client.client()
                if users.isEmpty {
                    let (own, contacts) = try await chat.contactsPresence()
                    Out.line(StatusCommand.describe("you", own))
                    for (name, presence) in contacts.sorted(by: { $0.username < $1.username }) { Out.line(StatusCommand.describe(name, presence)) }
                } else {
                    for (name, presence) in try await chat.presence(of: users) { Out.line(StatusCommand.describe(name, presence)) }
                }
            }
        }
    }

    struct Set: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set your state, custom status or privacy choices.")
        @OptionGroup var client: ClientOptions
        @Argument(help: "online, away, busy (do not disturb) or invisible (offline to others).") var state: String?
        @Option(help: "A custom status text (up to 80 characters).") var text: String?
        @Option(help: "One emoji for the custom status.") var emoji: String?
        @Option(name: .customLong("for"), help: ArgumentHelp("Clear the custom status after this long, as 30m, 1h or 1d.", valueName: "duration")) var duration: String?
        @Flag(help: "Remove the custom status.") var clear = false
        @Option(help: ArgumentHelp("Hide (true) or show (false) when you were last seen.", valueName: "bool")) var hideLastSeen: Bool?
        @Option(help: ArgumentHelp("Send and see typing indicators (true) or neither (false).", valueName: "bool")) var typing: Bool?

        func run() async throws {
            var change = ChatClient.PresenceChange(state: state, hideLastSeen: hideLastSeen, typing: typing)
            if clear { change.clearStatus = true }
            if text != nil || emoji != nil {
                var expiresAt: Int64?
                if let duration {
                    guard let length = SettingsLoader.parseDuration(duration), length > .zero else { throw ValidationError("--for must be a duration such as 30m, 1h or 1d") }
                    expiresAt = Timestamp.now().millis + length.milliseconds
                }
                change.status = .init(emoji: emoji, text: text, expiresAt: expiresAt)
            } else if duration != nil {
                throw ValidationError("--for goes with --text or --emoji")
            }
            try await Out.run {
                let own = try await client.client().setPresence(change)
                Out.line(StatusCommand.describe("you", own))
            }
        }
    }
}

/// `circle activity`: this account's security activity, checked.
struct ActivityCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "activity",
        abstract: "Your account's security activity (sign-ins, sessions, password and link events), newest first.",
        discussion: "The history is a hash chain: each view must extend the newest entry this device checked before, or a warning is printed and the command exits with status 2."
    )
    @OptionGroup var client: ClientOptions
    @Option(help: "How many entries (1-500).") var limit = 30

    func run() async throws {
        try await Out.run {
            let (entries, check) = try await client.client().activity(limit: limit)
            let format = ISO8601DateFormatter()
            for entry in entries {
                var line = "[\(entry.seq)] \(format.string(from: Date(timeIntervalSince1970: Double(entry.at) / 1000))) \(entry.kind)"
                if entry.alert { line += " (ALERT)" }
                if let ip = entry.ip, !ip.isEmpty { line += " from \(ip)" }
                if entry.details != "{}" { line += " \(entry.details)" }
                Out.line(line)
            }
            switch check {
            case .verified(let head):
                Out.line("History verified up to entry \(head).")
            case .rewritten(let seq, let reason):
                FileHandle.standardError.write(Data("circle: WARNING: the server's history does not extend what this device saw before: \(reason) (entry \(seq))\n".utf8))
                throw ExitCode(2)
            }
        }
    }
}
