import CircleConfig
import CircleKit
import CircleStore
import CircleTestSupport
import Foundation
import SQLKit
import Testing

/// End-to-end messaging with real processes: the CLI against `circle serve`, and CircleKit
/// clients against two gateways and two messaging replicas behind nginx, one replica killed.
@Suite("Messaging across processes")
struct MessagingClusterTests {
    @Test("two CLI users exchange end-to-end encrypted messages through `circle serve`, both ways and live")
    func cliThroughEmbeddedServer() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("circle-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let port = try FreePort.find()
        let server = try ChildProcess("circle", ["serve", "--http-port", String(port), "--log-level", "warning"], workingDirectory: folder)
        do {
            try await cliSession(server: server, port: port, folder: folder)
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
    }

    func cliSession(server: ChildProcess, port: Int, folder: URL) async throws {
        try await HTTPProbe.waitFor("http://127.0.0.1:\(port)/readyz", while: { server.isRunning })
        let url = "http://127.0.0.1:\(port)"
        let firstInvite = try #require(server.output.split(separator: "\n").first { $0.contains("/#/invite/") }.flatMap { $0.split(separator: " ").last.map(String.init) })

        func circle(_ arguments: [String], input: String? = nil) async throws -> (status: Int32?, output: String) {
            let process = try ChildProcess("circle", arguments, environment: ["HOME": folder.path], workingDirectory: folder, standardInput: input)
            let status = await process.waitForExit(timeout: .seconds(60))
            return (status, process.output)
        }
        let registered = try await circle(["register", "--state", "alice.json", "--server", url, "--invite", firstInvite, "--username", "alice", "--password-stdin"], input: "alice's long password\n")
        #expect(registered.status == 0, "\(registered.output)")
        #expect(registered.output.contains("Recovery key (shown once"))
        let invite = try await circle(["invite", "create"])
        let secondInvite = invite.output.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(try await circle(["register", "--state", "bob.json", "--server", url, "--invite", secondInvite, "--username", "bob", "--password-stdin"], input: "bob's long password\n").status == 0)
        // A used invite cannot be used again.
        let reused = try await circle(["register", "--state", "eve.json", "--server", url, "--invite", secondInvite, "--username", "eve", "--password-stdin"], input: "eve's password!!\n")
        #expect(reused.status == 1 && reused.output.contains("410"))

        let created = try await circle(["chat", "create", "--state", "alice.json", "bob"])
        #expect(created.status == 0)
        let conversation = created.output.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(conversation.count == 43)
        #expect(try await circle(["chat", "send", "--state", "alice.json", conversation, "hello", "bob"]).output == "1\n")
        let read = try await circle(["chat", "read", "--state", "bob.json", String(conversation.prefix(10))])
        #expect(read.output == "[1] alice: hello bob\n")
        // Bob watches live; Alice sends; Bob answers; Alice reads the answer.
        let watch = try ChildProcess("circle", ["chat", "watch", "--state", "bob.json", "--count", "1", "--timeout", "30"], environment: ["HOME": folder.path], workingDirectory: folder)
        try await Task.sleep(for: .milliseconds(800))
        #expect(try await circle(["chat", "send", "--state", "alice.json", conversation, "are you watching?"]).status == 0)
        #expect(await watch.waitForExit(timeout: .seconds(40)) == 0)
        #expect(watch.output.contains("[2] alice: are you watching?"), "\(watch.output)")
        #expect(try await circle(["chat", "send", "--state", "bob.json", conversation, "yes, live"]).status == 0)
        #expect(try await circle(["chat", "read", "--state", "alice.json", conversation]).output.contains("[3] bob: yes, live"))
        // Both see the same safety number; the state files are private.
        let a = try await circle(["safety-number", "--state", "alice.json", "bob"])
        let b = try await circle(["safety-number", "--state", "bob.json", "alice"])
        #expect(a.status == 0 && a.output == b.output && a.output.filter(\.isNumber).count == 60)
        let mode = try FileManager.default.attributesOfItem(atPath: folder.appendingPathComponent("alice.json").path)[.posixPermissions] as? NSNumber
        #expect(mode?.intValue == 0o600)
        // The server's database holds no plaintext.
        let database = try Data(contentsOf: folder.appendingPathComponent("data/circle.sqlite"))
            + ((try? Data(contentsOf: folder.appendingPathComponent("data/circle.sqlite-wal"))) ?? Data())
        #expect(database.range(of: Data("are you watching".utf8)) == nil && database.range(of: Data("hello bob".utf8)) == nil)
        #expect(try await circle(["logout", "--state", "bob.json"]).status == 0)
        #expect(try await circle(["chat", "list", "--state", "bob.json"]).status == 1)
    }

    @Test("two gateways and two messaging replicas behind nginx: a replica killed mid-run loses no accepted message", .enabled(if: TestServers.bothEnabled, TestServers.bothSkipReason))
    func scaledWithKill() async throws {
        let postgres = try await TestServers.freshPostgresDatabase(suite: "messaging-cluster")
        var env = try scaledEnvironment(postgres, suite: "messaging-cluster")
        env["AUTH_REGISTRATION"] = "open"
        #expect(try await ChildProcess("circle", ["migrate"], environment: env).waitForExit() == 0)
        func start(_ executable: String) async throws -> (ChildProcess, Int) {
            let port = try FreePort.find()
            let process = try ChildProcess(executable, ["--http-port", String(port)], environment: env)
            try await HTTPProbe.waitFor("http://127.0.0.1:\(port)/readyz", while: { process.isRunning })
            return (process, port)
        }
        let (gatewayA, portA) = try await start("circle-gateway")
        let (gatewayB, portB) = try await start("circle-gateway")
        let (messagingA, portC) = try await start("circle-messaging")
        let (messagingB, portD) = try await start("circle-messaging")
        let nginx = try NginxProcess(gateways: [portA, portB], messaging: [portC, portD])
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("circle-cluster-\(UUID().uuidString)")
        func cleanUp() async {
            for process in [gatewayA, gatewayB, messagingA, messagingB] { await process.stop() }
            await nginx.stop()
            try? FileManager.default.removeItem(at: folder)
        }
        do {
            try await killRun(nginx: nginx, messagingA: messagingA, folder: folder)
        } catch {
            await cleanUp()
            throw error
        }
        await cleanUp()
    }

    func killRun(nginx: NginxProcess, messagingA: ChildProcess, folder: URL) async throws {
        try await HTTPProbe.waitFor(nginx.baseURL + "/api/v1/server")

        let alice = try await ChatClient.register(server: nginx.baseURL, invite: nil, username: "alice", password: "alice password 1", deviceLabel: "a",
                                                  statePath: folder.appendingPathComponent("alice.json").path).0
        let bob = try await ChatClient.register(server: nginx.baseURL, invite: nil, username: "bob", password: "bob password 12", deviceLabel: "b",
                                                statePath: folder.appendingPathComponent("bob.json").path).0
        let conversation = try await alice.createConversation(.direct, with: ["bob"])
        // Bob follows live through one of the gateways.
        let live = Collected()
        let watcher = Task {
            try await bob.watch { event in
                if case .message(let message) = event { await live.add(message.text) }
                return await live.count < 60
            }
        }
        var accepted: [String] = []
        for index in 0..<60 {
            if index == 20 { messagingA.signal(SIGKILL) }
            let text = "message \(index)"
            // A send that fails in transit is retried with the very same bytes (resendPending),
            // or made again if it failed before its message was sealed: never sent twice.
            for attempt in 0..<5 {
                do {
                    let waiting = attempt == 0 ? 0 : try await alice.resendPending(in: conversation)
                    if waiting == 0 { try await alice.send(text, to: conversation) }
                    accepted.append(text)
                    break
                } catch {
                    if attempt == 4 { Issue.record("send \(index) kept failing: \(error)") }
                    try await Task.sleep(for: .milliseconds(300))
                }
            }
        }
        #expect(accepted.count == 60)
        #expect(messagingA.isRunning == false)
        // Everything accepted is there, once, in order, for a reader catching up...
        let reader = try await ChatClient.login(server: nginx.baseURL, username: "bob", password: "bob password 12", deviceLabel: "b2",
                                                statePath: folder.appendingPathComponent("bob2.json").path)
        let caughtUp = try await reader.receive(conversation)
        #expect(caughtUp.messages.map(\.text) == accepted)
        #expect(caughtUp.refused.isEmpty)
        // ...and for the live watcher.
        let deadline = ContinuousClock.now + .seconds(30)
        while await live.count < 60, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(100)) }
        watcher.cancel()
        #expect(await live.items == accepted)
    }
}

actor Collected {
    private(set) var items: [String] = []
    var count: Int { items.count }
    func add(_ item: String) { items.append(item) }
}
