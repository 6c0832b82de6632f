import ArgumentParser
import CircleKit
import CircleProtocol
import Foundation

struct VaultCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vault",
        abstract: "The encrypted file vault: files are encrypted here before upload; the server never sees names, types or contents.",
        subcommands: [Put.self, Get.self, List.self, Share.self, Revoke.self, Remove.self]
    )

    static func size(_ bytes: Int64) -> String {
        ByteCountFormatter.string(fromByteCount: bytes, countStyle: .file)
    }

    struct Put: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Encrypt and upload a file, with progress; prints its id.")
        @OptionGroup var client: ClientOptions
        @Option(help: "The name stored (encrypted) with the file; default: the file's own name.") var name: String?
        @Option(help: "Its media type.") var type = "application/octet-stream"
        @Option(help: "Delete it after this many hours (0: keep).") var expiresInHours: Int64 = 0
        @Flag(help: "No progress lines on standard error.") var quiet = false
        @Argument(help: "The file to upload.") var path: String

        func run() async throws {
            try await Out.run {
                let expires = expiresInHours > 0 ? Int64(Date().timeIntervalSince1970 * 1000) + expiresInHours * 3_600_000 : 0
                let quiet = self.quiet
                let id = try await client.client().vaultPut(path: path, name: name, type: type, expiresAt: expires) { progress in
                    guard !quiet else { return }
                    let percent = progress.total == 0 ? 100 : progress.done * 100 / progress.total
                    FileHandle.standardError.write(Data("\r\(progress.stage.rawValue) \(percent)%   ".utf8))
                }
                if !quiet { FileHandle.standardError.write(Data("\rdone            \n".utf8)) }
                Out.line(id)
            }
        }
    }

    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Download, check and decrypt a file.")
        @OptionGroup var client: ClientOptions
        @Argument(help: IdHelp.file) var id: String
        @Option(name: .shortAndLong, help: "Where to write it; default: its stored name in the current folder.") var output: String?

        func run() async throws {
            try await Out.run {
                let chat = try client.client()
                var target = output
                if target == nil {
                    guard let file = try await chat.vaultList().files.first(where: { $0.id == id }) else { throw ValidationError("no file \(id)") }
                    // The stored name is the owner's own choice, but never a path: only its last component is used.
                    let name = URL(fileURLWithPath: file.name).lastPathComponent
                    guard !name.isEmpty, name != ".", name != ".." else { throw ValidationError("give --output: the stored name is not a file name") }
                    target = name
                }
                let meta = try await chat.vaultGet(id, to: target!)
                Out.line("\(target!)  \(VaultCommand.size(Int64(meta.size)))  \(meta.type)")
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "ls", abstract: "List your files with their decrypted names and sizes.")
        @OptionGroup var client: ClientOptions

        func run() async throws {
            try await Out.run {
                let list = try await client.client().vaultList()
                for file in list.files {
                    Out.line("\(file.id)  \(VaultCommand.size(Int64(file.size)))  \(file.level)  \(file.name)")
                }
                Out.line("used \(VaultCommand.size(list.used)) of \(VaultCommand.size(list.quota))")
            }
        }
    }

    struct Share: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make a share link (the key is in the part after #, which browsers never send).")
        @OptionGroup var client: ClientOptions
        @Argument(help: IdHelp.file) var id: String
        @Flag(help: "Protect the link with a password (read from standard input or the terminal).") var password = false
        @Option(help: "The link stops working after this many hours (0: no expiry).") var expiresInHours: Int64 = 0
        @Option(help: "The link stops working after this many downloads (0: no limit).") var maxDownloads: Int64 = 0

        func run() async throws {
            try await Out.run {
                let secret = password ? try PasswordInput.read(fromStdin: false, confirm: true) : nil
                let expires = expiresInHours > 0 ? Int64(Date().timeIntervalSince1970 * 1000) + expiresInHours * 3_600_000 : 0
                Out.line(try await client.client().vaultShare(id, password: secret, expiresAt: expires, maxDownloads: maxDownloads))
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a share link (by its id: the part after /s/).")
        @OptionGroup var client: ClientOptions
        @Argument var link: String

        func run() async throws {
            try await Out.run {
                var id = link
                if let range = id.range(of: "/s/") { id = String(id[range.upperBound...].prefix { $0 != "#" }) }
                try await client.client().vaultRevoke(link: id)
                Out.line("Revoked.")
            }
        }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Delete a file (its links stop working).")
        @OptionGroup var client: ClientOptions
        @Argument(help: IdHelp.file) var id: String

        func run() async throws {
            try await Out.run {
                try await client.client().vaultRemove(id)
                Out.line("Deleted.")
            }
        }
    }
}
