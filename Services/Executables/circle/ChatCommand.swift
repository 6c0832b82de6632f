import ArgumentParser
import CircleKit
import CircleProtocol
import Foundation

struct ChatCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat",
        abstract: "End-to-end encrypted conversations.",
        subcommands: [List.self, Create.self, Add.self, Remove.self, Settings.self, Send.self, Read.self, Watch.self]
    )

    /// Resolves a conversation given by its id or a unique prefix of it.
    static func resolve(_ reference: String, _ chat: ChatClient) async throws -> String {
        if reference.count == 43 { return reference }
        let matches = try await chat.conversations().map(\.id).filter { $0.hasPrefix(reference) }
        guard matches.count == 1 else {
            throw ValidationError(matches.isEmpty ? "no conversation starts with \(reference)" : "\(reference) matches several conversations: give more of the id")
        }
        return matches[0]
    }

    static func show(_ message: ChatMessage, _ chat: ChatClient, withConversation: Bool = false) async -> String {
        let sender = await chat.name(of: message.sender)
        let prefix = withConversation ? "\(message.conversationId.prefix(8)) " : ""
        let body = switch message.kind {
        case .message where message.deleted: "(this message was deleted)"
        case .message: message.text
        case .edit: "(edit) \(message.text)"
        case .delete: "(deleted a message)"
        }
        return "\(prefix)[\(message.seq)] \(sender): \(body)"
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List your conversations with unread counts.")
        @OptionGroup var client: ClientOptions

        func run() async throws {
            try await Out.run {
                let chat = try client.client()
                for summary in try await chat.conversations() {
                    let chain = try await chat.chain(summary.id)
                    var names: [String] = []
                    for member in chain.members.keys.sorted() where member != (await chat.userId) { names.append(await chat.name(of: member)) }
                    Out.line("\(summary.id)  \(summary.kind)  \(names.sorted().joined(separator: ", "))  unread \(summary.unread)")
                }
            }
        }
    }

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Start a direct conversation with one contact, or a group; prints its id.")
        @OptionGroup var client: ClientOptions
        @Flag(help: "A group (members can be added and removed later) rather than a direct conversation.") var group = false
        @Option(help: "Messages disappear this many seconds after sending (0: never).") var disappear: UInt32 = 0
        @Argument(help: "The other members' usernames.") var usernames: [String]

        func run() async throws {
            try await Out.run {
                guard group || usernames.count == 1 else { throw ValidationError("a direct conversation has exactly one other member; use --group for more") }
                let id = try await client.client().createConversation(group ? .group : .direct, with: usernames, disappearSeconds: disappear)
                Out.line(id)
            }
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a member to a group (admins).")
        @OptionGroup var client: ClientOptions
        @Argument(help: IdHelp.conversation) var conversation: String
        @Argument var username: String

        func run() async throws {
            try await Out.run {
                let chat = try client.client()
                try await chat.add(username, to: try await ChatCommand.resolve(conversation, chat))
                Out.line("Added \(username).")
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a member from a group (admins); everyone's next message uses new keys.")
        @OptionGroup var client: ClientOptions
        @Argument(help: IdHelp.conversation) var conversation: String
        @Argument var username: String

        func run() async throws {
            try await Out.run {
                let chat = try client.client()
                try await chat.remove(username, from: try await ChatCommand.resolve(conversation, chat))
                Out.line("Removed \(username).")
            }
        }
    }

    struct Settings: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a conversation's settings, or change them (admins): a signed op every member sees.")
        @OptionGroup var client: ClientOptions
        @Argument(help: IdHelp.conversation) var conversation: String
        @Option(help: "Messages disappear this many seconds after sending (0: never; at most a year).") var disappear: UInt32?
        @Option(help: ArgumentHelp("Read receipts for everyone: on or off.", valueName: "on|off")) var readReceipts: String?
        @Option(help: "Delete messages for everyone once older than this many days (0: keep; at most 3650).") var keepDays: UInt16?

        func validate() throws {
            if let disappear, disappear > ConversationSettings.maximumTimer { throw ValidationError("--disappear is at most a year (31536000 seconds)") }
            if let readReceipts, !["on", "off"].contains(readReceipts) { throw ValidationError("--read-receipts is on or off") }
            if let keepDays, keepDays > ConversationSettings.maximumRetentionDays { throw ValidationError("--keep-days is at most 3650") }
        }

        func run() async throws {
            try await Out.run {
                let chat = try client.client()
                let id = try await ChatCommand.resolve(conversation, chat)
                var settings = try await chat.chain(id).settings
                if disappear != nil || readReceipts != nil || keepDays != nil {
                    settings = try await chat.setSettings(id, disappearSeconds: disappear, readReceipts: readReceipts.map { $0 == "on" }, retentionDays: keepDays)
                }
                Out.line("disappear after: \(settings.disappearSeconds == 0 ? "never" : "\(settings.disappearSeconds) s")")
                Out.line("read receipts: \(settings.readReceipts ? "on" : "off")")
                Out.line("messages kept: \(settings.retentionDays == 0 ? "until deleted" : "\(settings.retentionDays) days")")
            }
        }
    }

    struct Send: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Encrypt and send a message; prints its sequence number.")
        @OptionGroup var client: ClientOptions
        @Argument(help: IdHelp.conversation) var conversation: String
        @Argument(help: "The message (words are joined with spaces); omit to read standard input.") var words: [String] = []

        func run() async throws {
            try await Out.run {
                let chat = try client.client()
                let text = words.isEmpty ? (String(data: FileHandle.standardInput.readDataToEndOfFile(), encoding: .utf8) ?? "") : words.joined(separator: " ")
                let seq = try await chat.send(text, to: try await ChatCommand.resolve(conversation, chat))
                Out.line(String(seq))
            }
        }
    }

    struct Read: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show new messages of a conversation, decrypted and checked, and mark them read.")
        @OptionGroup var client: ClientOptions
        @Argument(help: IdHelp.conversation) var conversation: String

        func run() async throws {
            try await Out.run {
                let chat = try client.client()
                let (messages, refused) = try await chat.receive(try await ChatCommand.resolve(conversation, chat))
                for message in messages { Out.line(await ChatCommand.show(message, chat)) }
                for failure in refused { Out.line("[\(failure.seq)] REFUSED: \(failure.error)") }
            }
        }
    }

    struct Watch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Follow every conversation live, decrypting messages as they arrive; reconnects by itself.",
            discussion: "Stops after --count messages or --timeout seconds when given, else with Ctrl-C."
        )
        @OptionGroup var client: ClientOptions
        @Option(help: "Stop after this many messages.") var count: Int?
        @Option(help: "Stop after this many seconds.") var timeout: Double?

        func run() async throws {
            try await Out.run {
                let chat = try client.client()
                let limit = count
                let seen = Counter()
                try await withThrowingTaskGroup(of: Void.self) { group in
                    group.addTask {
                        try await chat.watch { event in
                            switch event {
                            case .message(let message):
                                Out.line(await ChatCommand.show(message, chat, withConversation: true))
                                let total = await seen.increment()
                                return limit.map { total < $0 } ?? true
                            case .refused(let conversation, let seq, let reason):
                                Out.line("\(conversation.prefix(8)) [\(seq)] REFUSED: \(reason)")
                            case .membership(let conversation):
                                Out.line("\(conversation.prefix(8)) membership changed")
                            case .typing(let conversation, let userId, let started):
                                let name = await chat.name(of: userId)
                                Out.line("\(conversation.prefix(8)) \(name) \(started ? "is typing…" : "stopped typing")")
                            case .presence(let presence):
                                let name = await chat.name(of: presence.userId)
                                Out.line("\(name) is \(presence.state)\(presence.status.map { " (\($0.emoji) \($0.text))" } ?? "")")
                            case .alert(let kind, let seq):
                                Out.line("SECURITY ALERT: \(kind) (activity entry \(seq); see `circle activity`)")
                            case .read, .connection:
                                break
                            }
                            return true
                        }
                    }
                    if let timeout {
                        group.addTask { try await Task.sleep(for: .seconds(timeout)) }
                    }
                    try await group.next()
                    group.cancelAll()
                }
            }
        }
    }
}

actor Counter {
    private var value = 0
    func increment() -> Int {
        value += 1
        return value
    }
}
