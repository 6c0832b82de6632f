import CircleBus
import CircleConfig
import CircleCore
import CircleEvents
import CircleHTTP
import CircleKit
import CircleProtocol
import CircleServerTestSupport
import CircleStore
import CircleTestSupport
import Crypto
import Foundation
import SignalingCore
import SignalingStore
import SQLKit
import Testing

/// Calls on the whole server (every service in one process): ringing, answering, signals sealed
/// end to end and relayed to one device, the records, glare, busy, missed, declined, who may do
/// what, bad input, limits and TURN credentials.
@Suite("Calls")
struct CallTests {
    static func device() -> String { Base64URL.encode(SecureRandom.bytes(16)) }

    /// Starts a call; the reply's status and body.
    static func start(_ api: APIClient, _ member: Member, in conversation: String, device: String, media: String = "video", kind: String? = nil) async throws -> HTTPProbe.Reply {
        var body: [String: Any] = ["conversationId": conversation, "media": media, "deviceId": device]
        if let kind { body["kind"] = kind }
        return try await api.call("POST", "/api/v1/calls", json: Wire.json(body), token: member.token)
    }

    /// The next `call.updated` frame whose call is in `state` (others skipped).
    static func update(_ socket: TestSocket, state: String, timeout: Duration = .seconds(30)) async throws -> String {
        let deadline = ContinuousClock.now + timeout
        while true {
            guard let frame = try await socket.next(ofType: "call.updated", timeout: max(.zero, deadline - ContinuousClock.now)) else { throw TestSupportError("socket closed") }
            if TestJSON.string(frame, path: ["data", "state"]) == state { return frame }
        }
    }

    /// A signal from `sender` (on `senderDevice`) to `recipient` (on `recipientDevice`), sealed and signed.
    static func seal(_ text: String, call: String, from sender: Member, _ senderDevice: String, to recipient: Member, _ recipientDevice: String, seq: UInt64) throws -> (CallSignalAddress, String) {
        let address = CallSignalAddress(callId: Array(Base64URL.decode(call)!), sender: sender.id, senderDevice: Array(Base64URL.decode(senderDevice)!),
                                        recipient: recipient.id, recipientDevice: Array(Base64URL.decode(recipientDevice)!), seq: seq)
        let wire = try CallSignalWire.seal(Array(text.utf8), to: Array(recipient.account.agreement.publicKey.rawRepresentation), address: address, signer: sender.account.identity)
        return (address, Base64URL.encode(wire.bytes))
    }

    static func signal(_ api: APIClient, _ member: Member, call: String, from: String, to user: String, _ device: String, payload: String) async throws -> Int {
        let body = Wire.json(["fromDevice": from, "toUser": user, "toDevice": device, "payload": payload])
        return try await api.call("POST", "/api/v1/calls/\(call)/signal", json: body, token: member.token).status
    }

    @Test("a 1:1 call rings, is answered on one device, relays sealed signals to that device only, and ends completed with a record", arguments: Engine.available)
    func oneToOne(engine: Engine) async throws {
        try await ServerHarness(engine).run { api, store in
            let ana = try await Member.register("ana", on: api)
            let ben = try await Member.register("ben", on: api)
            let (conv, _) = try await ana.create(.direct, with: [ben], on: api)
            let anaDevice = Self.device(), benPhone = Self.device(), benLaptop = Self.device()
            let (anas, _) = try await TestSocket.authenticated(api.socketURL, token: ana.token, device: anaDevice)
            let (phone, _) = try await TestSocket.authenticated(api.socketURL, token: ben.token, device: benPhone)
            let (laptop, _) = try await TestSocket.authenticated(api.socketURL, token: ben.token, device: benLaptop)

            let started = try await Self.start(api, ana, in: conv, device: anaDevice)
            #expect(started.status == 201, "\(started.body)")
            let call = try #require(TestJSON.string(started.body, path: ["id"]))
            #expect(TestJSON.string(started.body, path: ["state"]) == "ringing")
            // Ben's devices ring (the live frame carries the whole call), and so does the log.
            let ring = try await Self.update(phone, state: "ringing")
            #expect(TestJSON.string(ring, path: ["data", "id"]) == call)
            _ = try await Self.update(laptop, state: "ringing")
            let stored = try await api.events(ben.token, type: "call.updated")
            #expect(stored.last?["callId"] as? String == call && stored.last?["conversationId"] as? String == conv, "the log keeps a reference")
            let active = try await api.call("GET", "/api/v1/calls/active", token: ben.token)
            #expect((TestJSON.value(active.body, path: ["calls"]) as? [[String: Any]])?.first?["id"] as? String == call)

            // Ben answers on his phone: active, and Ana sees which device to signal.
            let joined = try await api.call("POST", "/api/v1/calls/\(call)/join", json: Wire.json(["deviceId": benPhone, "media": "audio"]), token: ben.token)
            #expect(joined.status == 200, "\(joined.body)")
            let answered = try await Self.update(anas, state: "active")
            let people = try #require(TestJSON.value(answered, path: ["data", "participants"]) as? [[String: Any]])
            #expect(people.first { $0["userId"] as? String == ben.id }?["deviceId"] as? String == benPhone)

            // Signals: sealed by the sender, opened only by the named device's owner, and only
            // that device's sockets get them.
            let (_, offer) = try Self.seal("{\"type\":\"offer\",\"sdp\":\"v=0\"}", call: call, from: ben, benPhone, to: ana, anaDevice, seq: 1)
            #expect(try await Self.signal(api, ben, call: call, from: benPhone, to: ana.id, anaDevice, payload: offer) == 202)
            let relayed = try #require(try await anas.next(ofType: "call.signal"))
            #expect(TestJSON.string(relayed, path: ["data", "from"]) == ben.id && TestJSON.string(relayed, path: ["data", "fromDevice"]) == benPhone)
            let payload = try #require(TestJSON.string(relayed, path: ["data", "payload"]))
            #expect(payload == offer, "the server relays the bytes as they are")
            let wire = try CallSignalWire(bytes: Array(Base64URL.decode(payload)!))
            let address = CallSignalAddress(callId: Array(Base64URL.decode(call)!), sender: ben.id, senderDevice: Array(Base64URL.decode(benPhone)!),
                                            recipient: ana.id, recipientDevice: Array(Base64URL.decode(anaDevice)!), seq: wire.seq)
            let opened = try wire.open(address: address, senderIdentity: ben.identityPublic, recipient: ana.account.agreement)
            #expect(String(decoding: opened, as: UTF8.self) == "{\"type\":\"offer\",\"sdp\":\"v=0\"}")
            let (_, answer) = try Self.seal("{\"type\":\"answer\"}", call: call, from: ana, anaDevice, to: ben, benPhone, seq: 1)
            #expect(try await Self.signal(api, ana, call: call, from: anaDevice, to: ben.id, benPhone, payload: answer) == 202)
            #expect(TestJSON.string(try #require(try await phone.next(ofType: "call.signal")), path: ["data", "payload"]) == answer)
            // The laptop is not in the call: signals for the phone never reach it, and nobody
            // may signal it (the frames before the end of the call hold no signal).
            let (_, stray) = try Self.seal("{}", call: call, from: ana, anaDevice, to: ben, benLaptop, seq: 2)
            #expect(try await Self.signal(api, ana, call: call, from: anaDevice, to: ben.id, benLaptop, payload: stray) == 409)

            // A heartbeat keeps the device in; Ana hangs up and the call is over for both.
            #expect(try await api.call("POST", "/api/v1/calls/\(call)/heartbeat", token: ana.token).status == 204)
            let left = try await api.call("POST", "/api/v1/calls/\(call)/leave", token: ana.token)
            #expect(left.status == 200 && TestJSON.string(left.body, path: ["state"]) == "ended")
            #expect(TestJSON.string(left.body, path: ["reason"]) == "completed")
            var laptopFrames: [String] = []
            while let frame = try await laptop.next(timeout: .seconds(30)) {
                laptopFrames.append(TestJSON.string(frame, path: ["type"]) ?? "")
                if TestJSON.string(frame, path: ["type"]) == "call.updated", TestJSON.string(frame, path: ["data", "state"]) == "ended" { break }
            }
            #expect(!laptopFrames.contains("call.signal"), "\(laptopFrames)")
            _ = try await Self.update(phone, state: "ended")

            let history = try await api.call("GET", "/api/v1/calls?conversationId=\(conv)", token: ben.token)
            let record = try #require((TestJSON.value(history.body, path: ["calls"]) as? [[String: Any]])?.first)
            #expect(record["id"] as? String == call && record["reason"] as? String == "completed" && record["media"] as? String == "video")
            #expect((record["durationMs"] as? Int ?? -1) >= 0 && record["answeredAt"] != nil && record["endedAt"] != nil)
            let parts = try #require(record["participants"] as? [[String: Any]])
            #expect(Set(parts.map { $0["state"] as? String }) == ["left"])
            #expect(parts.first { $0["userId"] as? String == ben.id }?["media"] as? String == "audio")
            #expect(parts.allSatisfy { $0["deviceId"] == nil }, "a device is shown only while in the call")
            // The record holds no SDP, candidates or addresses: only what the table has.
            let columns = try await store.read { db in try await db.raw("SELECT * FROM call_participants").all().first?.allColumns ?? [] }
            #expect(Set(columns) == ["call_id", "user_id", "role", "state", "media", "device_id", "session_id", "invited_at", "joined_at", "left_at", "seen_at", "connected_ms"])
            // It is over: nothing more can happen to it.
            #expect(try await api.call("POST", "/api/v1/calls/\(call)/join", json: Wire.json(["deviceId": benPhone, "media": "audio"]), token: ben.token).status == 409)
            #expect(try await Self.signal(api, ben, call: call, from: benPhone, to: ana.id, anaDevice, payload: offer) == 409)
            anas.close()
            phone.close()
            laptop.close()
        }
    }

    @Test("glare: both sides call at once and get one call; the busy, the declined and the cancelled end with their reasons", arguments: Engine.available)
    func glareBusyDeclined(engine: Engine) async throws {
        try await ServerHarness(engine).run { api, _ in
            let ana = try await Member.register("ana", on: api)
            let ben = try await Member.register("ben", on: api)
            let cyd = try await Member.register("cyd", on: api)
            let dan = try await Member.register("dan", on: api)
            let (anaBen, _) = try await ana.create(.direct, with: [ben], on: api)
            let (anaCyd, _) = try await ana.create(.direct, with: [cyd], on: api)
            let (cydDan, _) = try await cyd.create(.direct, with: [dan], on: api)
            let anaDevice = Self.device(), benDevice = Self.device()

            async let first = Self.start(api, ana, in: anaBen, device: anaDevice)
            async let second = Self.start(api, ben, in: anaBen, device: benDevice)
            let (a, b) = try await (first, second)
            #expect(Set([a.status, b.status]) == [200, 201], "\(a.status) \(b.status)")
            #expect(TestJSON.string(a.body, path: ["id"]) == TestJSON.string(b.body, path: ["id"]), "one call")
            let call = try #require(TestJSON.string(a.body, path: ["id"]))
            let callee = a.status == 201 ? ben : ana
            let calleeDevice = a.status == 201 ? benDevice : anaDevice
            let joined = try await api.call("POST", "/api/v1/calls/\(call)/join", json: Wire.json(["deviceId": calleeDevice, "media": "video"]), token: callee.token)
            #expect(TestJSON.string(joined.body, path: ["state"]) == "active")

            // Cyd is talking to Dan; Ana calls Cyd: busy at once.
            let cydDevice = Self.device()
            let cydCall = try #require(TestJSON.string(try await Self.start(api, cyd, in: cydDan, device: cydDevice).body, path: ["id"]))
            #expect(try await api.call("POST", "/api/v1/calls/\(cydCall)/join", json: Wire.json(["deviceId": Self.device(), "media": "audio"]), token: dan.token).status == 200)
            let busy = try await Self.start(api, ana, in: anaCyd, device: Self.device(), media: "audio")
            #expect(busy.status == 201 && TestJSON.string(busy.body, path: ["state"]) == "ended" && TestJSON.string(busy.body, path: ["reason"]) == "busy", "\(busy.body)")

            // Dan hangs up; Ana calls Cyd again and Cyd declines.
            #expect(try await api.call("POST", "/api/v1/calls/\(cydCall)/leave", token: dan.token).status == 200)
            let ringing = try #require(TestJSON.string(try await Self.start(api, ana, in: anaCyd, device: Self.device()).body, path: ["id"]))
            #expect(try await api.call("POST", "/api/v1/calls/\(ringing)/leave", token: cyd.token).status == 409, "not in the call yet")
            let declined = try await api.call("POST", "/api/v1/calls/\(ringing)/decline", token: cyd.token)
            #expect(TestJSON.string(declined.body, path: ["reason"]) == "declined")
            #expect(try await api.call("POST", "/api/v1/calls/\(ringing)/decline", token: cyd.token).status == 409)

            // Ana calls and hangs up before anyone answers: cancelled, and Cyd missed it.
            let cancelled = try #require(TestJSON.string(try await Self.start(api, ana, in: anaCyd, device: Self.device()).body, path: ["id"]))
            let over = try await api.call("POST", "/api/v1/calls/\(cancelled)/leave", token: ana.token)
            #expect(TestJSON.string(over.body, path: ["reason"]) == "cancelled")
            let parts = try #require(TestJSON.value(over.body, path: ["participants"]) as? [[String: Any]])
            #expect(parts.first { $0["userId"] as? String == cyd.id }?["state"] as? String == "missed")
            let history = try await api.call("GET", "/api/v1/calls?conversationId=\(anaCyd)", token: cyd.token)
            #expect((TestJSON.value(history.body, path: ["calls"]) as? [[String: Any]])?.map { $0["reason"] as? String } == ["cancelled", "declined", "busy"])
            let page = try await api.call("GET", "/api/v1/calls?conversationId=\(anaCyd)&limit=1", token: cyd.token)
            #expect((TestJSON.value(page.body, path: ["calls"]) as? [[String: Any]])?.count == 1)
        }
    }

    @Test("the sweeper (its clock injected) misses a call nobody answered and drops a device that went silent")
    func missedAndSilent() async throws {
        try await ServerHarness(.sqlite).run { api, store in
            let ana = try await Member.register("ana", on: api)
            let ben = try await Member.register("ben", on: api)
            let (conv, _) = try await ana.create(.direct, with: [ben], on: api)
            let logger = TestServers.quietLogger
            func sweeper(after millis: Int64) -> CallSweeper {
                let clock = FixedClock(Timestamp(millis: Timestamp.now().millis + millis))
                let calls = CallService(store: store, events: EventPublisher(store: store, bus: LocalBus(), logger: logger), counters: LocalBus(),
                                        rateLimiter: RateLimiter(counters: LocalBus(), limits: RateLimits(), logger: logger),
                                        settings: .init(ringTimeout: 45_000), clock: clock, logger: logger)
                return CallSweeper(store: store, calls: calls, clock: clock, logger: logger)
            }
            let call = try #require(TestJSON.string(try await Self.start(api, ana, in: conv, device: Self.device()).body, path: ["id"]))
            try await sweeper(after: 20_000).sweep()
            #expect(TestJSON.string(try await api.call("GET", "/api/v1/calls/\(call)", token: ben.token).body, path: ["state"]) == "ringing", "not yet")
            try await sweeper(after: 46_000).sweep()
            let missed = try await api.call("GET", "/api/v1/calls/\(call)", token: ben.token)
            #expect(TestJSON.string(missed.body, path: ["reason"]) == "missed", "\(missed.body)")

            // Answered, then Ben's device stops beating: after 30 s he is out and the call ends.
            let next = try #require(TestJSON.string(try await Self.start(api, ana, in: conv, device: Self.device()).body, path: ["id"]))
            #expect(try await api.call("POST", "/api/v1/calls/\(next)/join", json: Wire.json(["deviceId": Self.device(), "media": "video"]), token: ben.token).status == 200)
            try await sweeper(after: 10_000).sweep()
            #expect(TestJSON.string(try await api.call("GET", "/api/v1/calls/\(next)", token: ana.token).body, path: ["state"]) == "active")
            try await sweeper(after: 31_000).sweep()
            let ended = try await api.call("GET", "/api/v1/calls/\(next)", token: ana.token)
            #expect(TestJSON.string(ended.body, path: ["reason"]) == "completed", "\(ended.body)")
        }
    }

    @Test("who may do what: a non-member, a removed member and another session of a participant", arguments: Engine.available)
    func authorization(engine: Engine) async throws {
        try await ServerHarness(engine).run { api, _ in
            let ana = try await Member.register("ana", on: api)
            let ben = try await Member.register("ben", on: api)
            let cyd = try await Member.register("cyd", on: api)
            let (conv, chain) = try await ana.create(.group, with: [ben, cyd], on: api)
            let anaDevice = Self.device(), benDevice = Self.device()
            let call = try #require(TestJSON.string(try await Self.start(api, ana, in: conv, device: anaDevice).body, path: ["id"]))
            #expect(try await api.call("POST", "/api/v1/calls/\(call)/join", json: Wire.json(["deviceId": benDevice, "media": "video"]), token: ben.token).status == 200)
            let (_, payload) = try Self.seal("{}", call: call, from: ana, anaDevice, to: ben, benDevice, seq: 1)

            let eve = try await Member.register("eve", on: api)
            let unknown = Base64URL.encode(SecureRandom.bytes(16))
            func everything(_ member: Member, _ id: String) async throws -> [Int] {
                [
                    try await api.call("GET", "/api/v1/calls/\(id)", token: member.token).status,
                    try await api.call("POST", "/api/v1/calls/\(id)/join", json: Wire.json(["deviceId": Self.device(), "media": "audio"]), token: member.token).status,
                    try await api.call("POST", "/api/v1/calls/\(id)/decline", token: member.token).status,
                    try await api.call("POST", "/api/v1/calls/\(id)/leave", token: member.token).status,
                    try await api.call("POST", "/api/v1/calls/\(id)/heartbeat", token: member.token).status,
                    try await Self.signal(api, member, call: id, from: Self.device(), to: ben.id, benDevice, payload: payload),
                ]
            }
            // Eve is in no conversation with them: the same answers as for an unknown call.
            #expect(try await everything(eve, call) == Array(repeating: 404, count: 6))
            #expect(try await everything(eve, unknown) == Array(repeating: 404, count: 6))
            #expect(try await api.call("GET", "/api/v1/calls?conversationId=\(conv)", token: eve.token).status == 404)
            #expect(try await Self.start(api, eve, in: conv, device: Self.device()).status == 404)
            #expect(try await api.call("GET", "/api/v1/calls/\(call)").status == 401)

            // Ben's other session cannot speak, beat or leave for the device that joined.
            let (otherToken, _) = try await api.login(ben.account, device: "second")
            let other = Member(account: ben.account, token: otherToken)
            #expect(try await Self.signal(api, other, call: call, from: benDevice, to: ana.id, anaDevice, payload: payload) == 409)
            #expect(try await api.call("POST", "/api/v1/calls/\(call)/heartbeat", token: other.token).status == 409)
            #expect(try await api.call("POST", "/api/v1/calls/\(call)/leave", token: other.token).status == 409)
            #expect(try await api.call("GET", "/api/v1/calls/\(call)", token: other.token).status == 200, "it may see the call")
            // Nor may one member sign as another device of someone else, or signal themselves.
            #expect(try await Self.signal(api, ana, call: call, from: benDevice, to: ben.id, benDevice, payload: payload) == 409)
            #expect(try await Self.signal(api, ana, call: call, from: anaDevice, to: ana.id, anaDevice, payload: payload) == 409)
            #expect(try await Self.signal(api, ana, call: call, from: anaDevice, to: ben.id, benDevice, payload: payload) == 202)

            // Removed from the conversation, Ben is a stranger to its call.
            let remove = try ana.op(chain, .remove, target: ben)
            #expect(try await api.call("POST", "/api/v1/conversations/\(conv)/ops", json: Wire.append(remove), token: ana.token).status == 201)
            #expect(try await everything(ben, call).allSatisfy { $0 == 404 })
            #expect(try await Self.signal(api, ana, call: call, from: anaDevice, to: ben.id, benDevice, payload: payload) == 409, "nor do signals reach him")
        }
    }

    @Test("bad input is refused with a reason and changes nothing; starting calls is rate limited")
    func validation() async throws {
        try await ServerHarness(.sqlite).run { api, store in
            let ana = try await Member.register("ana", on: api)
            let ben = try await Member.register("ben", on: api)
            let (conv, _) = try await ana.create(.direct, with: [ben], on: api)
            let device = Self.device()
            for body in [
                "{\"conversationId\":\"\(conv)\",\"media\":\"hologram\",\"deviceId\":\"\(device)\"}",
                "{\"conversationId\":\"\(conv)\",\"media\":\"video\",\"deviceId\":\"short\"}",
                "{\"conversationId\":\"nope\",\"media\":\"video\",\"deviceId\":\"\(device)\"}",
                "{\"conversationId\":\"\(conv)\",\"media\":\"video\",\"deviceId\":\"\(device)\",\"kind\":\"party\"}",
                "{\"conversationId\":\"\(conv)\",\"media\":\"video\",\"deviceId\":\"\(device)\",\"sdp\":\"v=0\"}",
                "{\"conversationId\":\"\(conv)\",\"media\":\"video\"}",
                "[]",
            ] {
                let reply = try await api.call("POST", "/api/v1/calls", json: body, token: ana.token)
                #expect([400, 422].contains(reply.status), "\(body): \(reply.status)")
                #expect(reply.headers["content-type"]?.hasPrefix("application/problem+json") == true)
            }
            #expect(try await store.read { db in try await db.raw("SELECT COUNT(*) AS n FROM video_calls").first()!.decode(column: "n", as: Int.self) } == 0)

            let call = try #require(TestJSON.string(try await Self.start(api, ana, in: conv, device: device).body, path: ["id"]))
            let benDevice = Self.device()
            #expect(try await api.call("POST", "/api/v1/calls/\(call)/join", json: Wire.json(["deviceId": benDevice, "media": "video"]), token: ben.token).status == 200)
            let (_, good) = try Self.seal("{}", call: call, from: ana, device, to: ben, benDevice, seq: 1)
            for (payload, why) in [("AAAA", "too short"), ("not base64!", "not base64url"), (Base64URL.encode([2] + Array(Base64URL.decode(good)!.dropFirst())), "version 2"),
                                   (Base64URL.encode(SecureRandom.bytes(CallSignalWire.overhead + CallSignalWire.maximumPlaintext + 1)), "too long")] {
                #expect(try await Self.signal(api, ana, call: call, from: device, to: ben.id, benDevice, payload: payload) == 422, "\(why)")
            }
            #expect(try await Self.signal(api, ana, call: call, from: device, to: "ben", benDevice, payload: good) == 422)
            #expect(try await api.call("POST", "/api/v1/calls/\(call)/leave", json: "{\"failed\":\"yes\"}", token: ana.token).status == 400)
            #expect(try await api.call("POST", "/api/v1/calls/\(call)/join", json: "{\"deviceId\":\"\(device)\"}", token: ana.token).status == 400)
            #expect(try await api.call("GET", "/api/v1/calls?conversationId=\(conv)&limit=1000", token: ana.token).status == 422)
            #expect(try await api.call("GET", "/api/v1/calls", token: ana.token).status == 422)
            #expect(try await api.call("GET", "/api/v1/calls/not-an-id", token: ana.token).status == 404)
            #expect(TestJSON.string(try await api.call("GET", "/api/v1/calls/\(call)", token: ana.token).body, path: ["state"]) == "active", "nothing changed")

            // A failure reported by a device ends the call as failed.
            let failed = try await api.call("POST", "/api/v1/calls/\(call)/leave", json: "{\"failed\":true}", token: ana.token)
            #expect(TestJSON.string(failed.body, path: ["reason"]) == "failed")

            // Ten starts a minute; the eleventh is refused with Retry-After.
            var statuses: [Int] = []
            for _ in 0..<10 {
                let reply = try await Self.start(api, ben, in: conv, device: benDevice)
                statuses.append(reply.status)
                if let id = TestJSON.string(reply.body, path: ["id"]) { _ = try await api.call("POST", "/api/v1/calls/\(id)/leave", token: ben.token) }
            }
            #expect(statuses.allSatisfy { $0 == 201 || $0 == 200 }, "\(statuses)")
            let refused = try await Self.start(api, ben, in: conv, device: benDevice)
            #expect(refused.status == 429 && refused.headers["retry-after"] != nil)
        }
    }

    @Test("TURN credentials follow the TURN REST API; without TURN none are handed out")
    func turnCredentials() async throws {
        let secret = "a-static-auth-secret-for-tests"
        try await ServerHarness(.sqlite, extra: [.turnSecret: secret, .turnURLs: "turn:127.0.0.1:3478?transport=udp,stun:127.0.0.1:3478", .turnTTL: "1h"]).run { api, _ in
            let ana = try await Member.register("ana", on: api)
            let before = Timestamp.now().millis / 1000
            let reply = try await api.call("GET", "/api/v1/calls/turn", token: ana.token)
            #expect(reply.status == 200)
            let servers = try #require(TestJSON.value(reply.body, path: ["iceServers"]) as? [[String: Any]])
            #expect(servers.first?["urls"] as? [String] == ["stun:127.0.0.1:3478"] && servers.first?["username"] == nil)
            let turn = try #require(servers.last)
            #expect(turn["urls"] as? [String] == ["turn:127.0.0.1:3478?transport=udp"])
            let username = try #require(turn["username"] as? String)
            let parts = username.split(separator: ":")
            #expect(parts.count == 2 && parts[1] == Substring(ana.id))
            let expiry = try #require(Int64(parts[0]))
            #expect(expiry >= before + 3600 && expiry <= before + 3602)
            let mac = HMAC<Insecure.SHA1>.authenticationCode(for: Data(username.utf8), using: SymmetricKey(data: Data(secret.utf8)))
            #expect(turn["credential"] as? String == Data(mac).base64EncodedString())
            #expect(TestJSON.int(reply.body, path: ["ttl"]) == 3600)
            #expect(try await api.call("GET", "/api/v1/calls/turn").status == 401)
        }
        try await ServerHarness(.sqlite).run { api, _ in
            let ana = try await Member.register("ana", on: api)
            let reply = try await api.call("GET", "/api/v1/calls/turn", token: ana.token)
            #expect((TestJSON.value(reply.body, path: ["iceServers"]) as? [Any])?.isEmpty == true)
        }
        // A bad TURN configuration stops the server before it starts.
        for extra: [CircleConfigKey: String] in [[.turnSecret: "short"], [.turnURLs: "turn:x:3478"], [.turnSecret: "long enough secret here", .turnURLs: "http://x"]] {
            await #expect(throws: ConfigError.self) { try SettingsLoader.loadCalls(from: ConfigSources.reader(values: extra)) }
        }
    }

    @Test("a broadcast is live from its start, viewers join up to the limit, and it ends when the broadcaster leaves")
    func broadcast() async throws {
        try await ServerHarness(.sqlite).run { api, _ in
            let host = try await Member.register("host", on: api)
            var viewers: [Member] = []
            for i in 0..<(CallLimits.maximumBroadcastViewers + 1) { viewers.append(try await Member.register("viewer\(i)", on: api)) }
            let (conv, _) = try await host.create(.group, with: viewers, on: api)
            let started = try await Self.start(api, host, in: conv, device: Self.device(), kind: "broadcast")
            #expect(TestJSON.string(started.body, path: ["state"]) == "active" && TestJSON.string(started.body, path: ["kind"]) == "broadcast")
            let call = try #require(TestJSON.string(started.body, path: ["id"]))
            for viewer in viewers.dropLast() {
                #expect(try await api.call("POST", "/api/v1/calls/\(call)/join", json: Wire.json(["deviceId": Self.device(), "media": "audio"]), token: viewer.token).status == 200)
            }
            let full = try await api.call("POST", "/api/v1/calls/\(call)/join", json: Wire.json(["deviceId": Self.device(), "media": "audio"]), token: viewers.last!.token)
            #expect(full.status == 409, "\(full.body)")
            // A viewer leaving does not end it; the broadcaster leaving does.
            #expect(TestJSON.string(try await api.call("POST", "/api/v1/calls/\(call)/leave", token: viewers[0].token).body, path: ["state"]) == "active")
            let over = try await api.call("POST", "/api/v1/calls/\(call)/leave", token: host.token)
            #expect(TestJSON.string(over.body, path: ["state"]) == "ended" && TestJSON.string(over.body, path: ["reason"]) == "completed")
        }
    }
}
