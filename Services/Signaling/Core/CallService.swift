import CircleBus
import CircleCore
import CircleEvents
import CircleHTTP
import CircleStore
import Foundation
import Logging
import MessagingStore
import SignalingStore
import SQLKit

/// What a member asks for when starting a call.
package struct CallStart: Sendable {
    package var conversationId: String
    package var kind: CallKind
    package var media: CallMedia
    /// The caller's device, which joins at once.
    package var deviceId: String

    package init(conversationId: String, kind: CallKind, media: CallMedia, deviceId: String) {
        self.conversationId = conversationId
        self.kind = kind
        self.media = media
        self.deviceId = deviceId
    }
}

/// One signal to relay, as the sending device asked.
package struct CallSignalRequest: Sendable {
    package var fromDevice: String
    package var toUser: String
    package var toDevice: String
    /// The sealed signal, base64url (checked for shape by the caller).
    package var payload: String

    package init(fromDevice: String, toUser: String, toDevice: String, payload: String) {
        self.fromDevice = fromDevice
        self.toUser = toUser
        self.toDevice = toDevice
        self.payload = payload
    }
}

/// Calls (ARCHITECTURE 6): every state lives in the database, so any replica serves any request
/// and a replica that dies loses nothing. Only a conversation's current members see, start, join
/// or signal its calls (anyone else gets the answer an unknown id gets). Every change reaches the
/// call's participants as a stored `call.updated`; signals go live to one device.
package struct CallService: Sendable {
    let store: any DatabaseStore
    let events: EventPublisher
    let counters: any ExpiringCounters
    let rateLimiter: RateLimiter
    let settings: CallSettingsView
    let clock: any WallClock
    let logger: Logger

    /// The parts of the configuration the calls use.
    package struct CallSettingsView: Sendable {
        package var ringTimeout: Int64

        package init(ringTimeout: Int64) {
            self.ringTimeout = ringTimeout
        }
    }

    package init(store: any DatabaseStore, events: EventPublisher, counters: any ExpiringCounters, rateLimiter: RateLimiter,
                 settings: CallSettingsView, clock: any WallClock, logger: Logger) {
        self.rateLimiter = rateLimiter
        self.store = store
        self.events = events
        self.counters = counters
        self.settings = settings
        self.clock = clock
        self.logger = logger
    }

    static let notFound = Problem.notFound("No such call.")

    // MARK: Reading

    /// One call, for a member of its conversation.
    package func view(_ callId: String, for userId: String) async throws -> CallView {
        let now = clock.now().millis
        return try await store.read { db in
            guard let call = try await CallRepository.call(callId, in: db),
                  try await ConversationMembers.isMember(userId, of: call.conversationId, in: db) else { throw Self.notFound }
            return CallView(call, participants: try await CallRepository.participants(of: callId, in: db), now: now)
        }
    }

    /// A conversation's calls, newest first, for one of its members.
    package func history(of conversationId: String, before: Int64, limit: Int, for userId: String) async throws -> [CallView] {
        let now = clock.now().millis
        return try await store.read { db in
            guard try await ConversationMembers.isMember(userId, of: conversationId, in: db) else {
                throw Problem.notFound("No such conversation.")
            }
            let calls = try await CallRepository.history(of: conversationId, before: before, limit: limit, in: db)
            let participants = try await CallRepository.participants(of: calls.map(\.id), in: db)
            return calls.map { CallView($0, participants: participants[$0.id] ?? [], now: now) }
        }
    }

    /// The ringing and active calls of the member's conversations: what a client loads when its
    /// socket is ready, to ring again or rejoin.
    package func live(for userId: String) async throws -> [CallView] {
        let now = clock.now().millis
        return try await store.read { db in
            let calls = try await CallRepository.live(in: try await ConversationMembers.conversations(of: userId, in: db), in: db)
            let participants = try await CallRepository.participants(of: calls.map(\.id), in: db)
            return calls.map { CallView($0, participants: participants[$0.id] ?? [], now: now) }
        }
    }

    // MARK: Changing

    /// Starts a call in a conversation, ringing its other members (up to `maximumRung`). When the
    /// conversation already has a live call (both sides called at once), that call is the answer
    /// and `created` is false: the client joins it instead.
    package func start(_ request: CallStart, by identity: Identity) async throws -> (call: CallView, created: Bool) {
        let now = clock.now().millis
        let members = try await store.read { db in try await ConversationMembers.members(of: request.conversationId, in: db) }
        guard members.contains(identity.userId) else { throw Problem.notFound("No such conversation.") }
        let others = members.filter { $0 != identity.userId }.sorted()
        guard !others.isEmpty else { throw Problem.conflict("Nobody else is in this conversation to call.") }
        try await rateLimiter.check(.callStart, for: identity.userId)

        let id = Base64URL.encode(SecureRandom.bytes(16))
        let ringUntil = now + settings.ringTimeout
        let (view, created, stored) = try await store.write { db -> (CallView, Bool, [UserEvent]) in
            if let existing = try await CallRepository.live(in: request.conversationId, in: db) {
                return (CallView(existing, participants: try await CallRepository.participants(of: existing.id, in: db), now: now), false, [])
            }
            let rung = Array(others.prefix(CallLimits.maximumRung))
            let busy = try await CallRepository.inAnotherCall(rung, except: id, conversationId: request.conversationId, in: db)
            var call = CallRecord(id: id, conversationId: request.conversationId, kind: request.kind, media: request.media, creatorId: identity.userId,
                                  state: .ringing, reason: .none, createdAt: now, ringUntil: ringUntil)
            if request.kind == .broadcast {
                // A broadcast is live from its start; members are told and may watch until it ends.
                call.state = .active
                call.answeredAt = now
            }
            var caller = CallParticipant(callId: id, userId: identity.userId, role: .caller, state: .joined, media: request.media, deviceId: request.deviceId,
                                         sessionId: identity.sessionId, invitedAt: now, joinedAt: now, seenAt: now)
            let callees = rung.map { user in
                CallParticipant(callId: id, userId: user, role: request.kind == .broadcast ? .viewer : .callee, state: busy.contains(user) ? .busy : .ringing,
                                media: request.media, invitedAt: now)
            }
            if request.kind == .call, callees.allSatisfy({ $0.state == .busy }) {
                // Everyone rung is in another call: the call is over before it rang.
                call.state = .ended
                call.reason = .busy
                call.endedAt = now
                caller.leave(.left, at: now)
                try await CallRepository.insertEnded(call, in: db)
            } else {
                guard let live = try await CallRepository.insertUnlessLive(call, in: db) else {
                    throw StoreError.corrupt("a call inserted is not live")
                }
                if live.id != id {
                    // Another member's call came first (glare): that one is the call.
                    return (CallView(live, participants: try await CallRepository.participants(of: live.id, in: db), now: now), false, [])
                }
            }
            let participants = [caller] + callees
            try await CallRepository.save(participants, in: db)
            let view = CallView(call, participants: participants, now: now)
            return (view, true, try await Self.announce(view, to: participants.map(\.userId), at: clock.now(), in: db))
        }
        await events.publish(stored)
        if created { logger.info("call started", metadata: ["call": "\(view.id)", "kind": "\(view.kind)", "state": "\(view.state)"]) }
        return (view, created)
    }

    /// Joins a call on one device: answers a ringing call, rejoins after a reload or a dropped
    /// connection, or joins a group call or broadcast already going. A member joined on another
    /// device moves to this one.
    package func join(_ callId: String, deviceId: String, media: CallMedia, by identity: Identity) async throws -> CallView {
        try await change(callId, by: identity) { call, participants, now in
            guard call.state != .ended else { throw Problem.conflict("The call has ended.") }
            let index = participants.firstIndex { $0.userId == identity.userId }
            let others = participants.filter { $0.userId != identity.userId && $0.state == .joined }
            switch call.kind {
            case .call:
                guard others.count < CallLimits.maximumMeshDevices else { throw Problem.conflict("The call is full (\(CallLimits.maximumMeshDevices) devices).") }
            case .broadcast:
                guard index.map({ participants[$0].role == .caller }) == true || others.count <= CallLimits.maximumBroadcastViewers else {
                    throw Problem.conflict("The broadcast is full (\(CallLimits.maximumBroadcastViewers) viewers).")
                }
            }
            var me = index.map { participants[$0] }
                ?? CallParticipant(callId: callId, userId: identity.userId, role: call.kind == .broadcast ? .viewer : .callee, state: .ringing, media: media, invitedAt: now)
            if me.state == .joined, me.deviceId == deviceId {
                // The same device again (a reload): same stretch in the call, new session maybe.
                me.sessionId = identity.sessionId
                me.media = media
                me.seenAt = now
            } else {
                if me.state == .joined { me.leave(.left, at: now) }
                me.state = .joined
                me.deviceId = deviceId
                me.sessionId = identity.sessionId
                me.media = media
                me.joinedAt = now
                me.leftAt = 0
                me.seenAt = now
            }
            if let index { participants[index] = me } else { participants.append(me) }
            if call.state == .ringing, me.role != .caller {
                call.state = .active
                call.answeredAt = now
            }
        }
    }

    /// Says no to a ringing call. When nobody else is still rung and nobody answered, the call ends as declined.
    package func decline(_ callId: String, by identity: Identity) async throws -> CallView {
        try await change(callId, by: identity) { call, participants, now in
            guard call.state != .ended else { throw Problem.conflict("The call has ended.") }
            guard let index = participants.firstIndex(where: { $0.userId == identity.userId }), participants[index].state == .ringing else {
                throw Problem.conflict("The call is not ringing for you.")
            }
            participants[index].state = .declined
            participants[index].leftAt = now
            Self.settle(&call, &participants, at: now)
        }
    }

    /// Leaves a call from the device that joined it. The caller leaving a call nobody answered
    /// cancels it; a call with one device left ends; `failed` says the device could not set the
    /// call up (or refused tampered signaling), and a call that ends because of it ends failed.
    package func leave(_ callId: String, failed: Bool, by identity: Identity) async throws -> CallView {
        try await change(callId, by: identity) { call, participants, now in
            guard call.state != .ended else { throw Problem.conflict("The call has ended.") }
            guard let index = participants.firstIndex(where: { $0.userId == identity.userId && $0.state == .joined }) else {
                throw Problem.conflict("You are not in this call.")
            }
            guard participants[index].sessionId == identity.sessionId else { throw Problem.conflict("You are in this call on another device.") }
            participants[index].leave(.left, at: now)
            Self.settle(&call, &participants, at: now, failed: failed, leaver: identity.userId)
        }
    }

    /// Shows the joined device is still there (every 10 s); false when this session is not in the call.
    package func heartbeat(_ callId: String, by identity: Identity) async throws {
        let now = clock.now().millis
        let known = try await store.write { db in
            guard let call = try await CallRepository.call(callId, in: db),
                  try await ConversationMembers.isMember(identity.userId, of: call.conversationId, in: db) else { return false }
            guard call.state != .ended else { throw Problem.conflict("The call has ended.") }
            guard try await CallRepository.touch(callId: callId, userId: identity.userId, sessionId: identity.sessionId, at: now, in: db) else {
                throw Problem.conflict("You are not in this call on this device.")
            }
            return true
        }
        guard known else { throw Self.notFound }
    }

    /// Relays one sealed signal from the caller's joined device to another joined device of the
    /// call, live: the server never reads it (PROTOCOL 10).
    package func relay(_ callId: String, _ signal: CallSignalRequest, by identity: Identity) async throws {
        let conversationId = try await store.read { db -> String in
            guard let call = try await CallRepository.call(callId, in: db),
                  try await ConversationMembers.isMember(identity.userId, of: call.conversationId, in: db) else { throw Self.notFound }
            guard call.state != .ended else { throw Problem.conflict("The call has ended.") }
            let participants = try await CallRepository.participants(of: callId, in: db)
            guard let me = participants.first(where: { $0.userId == identity.userId }), me.state == .joined,
                  me.sessionId == identity.sessionId, me.deviceId == signal.fromDevice else {
                throw Problem.conflict("You are not in this call on device \(signal.fromDevice).")
            }
            guard participants.contains(where: { $0.userId == signal.toUser && $0.state == .joined && $0.deviceId == signal.toDevice }),
                  signal.toUser != identity.userId, try await ConversationMembers.isMember(signal.toUser, of: call.conversationId, in: db) else {
                throw Problem.conflict("\(signal.toUser) is not in this call on device \(signal.toDevice).")
            }
            return call.conversationId
        }
        let sent = try await counters.increment("calls:signal:\(callId):\(identity.userId)", window: .seconds(10))
        guard sent <= CallLimits.signalsPerTenSeconds else { throw Problem.tooManyRequests(retryAfterSeconds: 10) }
        let frame = try EventFrame(type: .callSignal, data: CallSignalFrame(
            callId: callId, conversationId: conversationId, from: identity.userId, fromDevice: signal.fromDevice,
            toDevice: signal.toDevice, payload: signal.payload
        ), device: signal.toDevice)
        guard await events.publish(live: [(frame, [signal.toUser])]) else {
            throw Problem.unavailable("The signal could not be relayed; send it again.")
        }
    }

    // MARK: The sweeper's part

    /// Misses what rang too long, drops devices that went silent and members no longer in the
    /// conversation, and ends calls that have nobody left to talk to.
    package func sweep(_ callId: String) async throws {
        let silentBefore = clock.now().millis - CallLimits.silentDevice
        _ = try await change(callId, by: nil) { call, participants, now in
            guard call.state != .ended else { return }
            for i in participants.indices where participants[i].state == .joined && participants[i].seenAt < silentBefore {
                participants[i].leave(.left, at: now)
            }
            if call.ringUntil <= now {
                for i in participants.indices where participants[i].state == .ringing {
                    participants[i].state = .missed
                    participants[i].leftAt = now
                }
                call.ringUntil = Int64.max
            }
            Self.settle(&call, &participants, at: now)
        } members: { db, call in
            // Someone removed from the conversation leaves its call too.
            Set(try await ConversationMembers.members(of: call.conversationId, in: db))
        }
    }

    /// Ends the call when nobody is left to talk to: the broadcaster left, nobody is joined, or
    /// one device is left in an answered call with nobody still rung. A call nobody answered
    /// ends missed, declined or cancelled by what happened to those rung.
    static func settle(_ call: inout CallRecord, _ participants: inout [CallParticipant], at now: Int64, failed: Bool = false, leaver: String? = nil) {
        let joined = participants.filter { $0.state == .joined }
        let ringing = participants.contains { $0.state == .ringing }
        let callerGone = !joined.contains { $0.role == .caller }
        let ends: Bool
        switch (call.kind, call.state) {
        case (_, .ended): return
        case (.broadcast, _): ends = callerGone
        case (.call, .ringing): ends = callerGone || !ringing
        case (.call, .active): ends = joined.isEmpty || (joined.count == 1 && !ringing)
        }
        guard ends else { return }
        if failed {
            call.reason = .failed
        } else if call.answeredAt > 0 {
            call.reason = .completed
        } else if leaver == call.creatorId || (callerGone && ringing) {
            call.reason = .cancelled
        } else if participants.contains(where: { $0.state == .missed }) {
            call.reason = .missed
        } else if participants.contains(where: { $0.state == .declined }) {
            call.reason = .declined
        } else if participants.contains(where: { $0.state == .busy }) {
            call.reason = .busy
        } else {
            call.reason = .cancelled
        }
        for i in participants.indices {
            switch participants[i].state {
            case .joined: participants[i].leave(.left, at: now)
            case .ringing:
                participants[i].state = .missed
                participants[i].leftAt = now
            default: break
            }
        }
        call.state = .ended
        call.endedAt = now
    }

    // MARK: Helpers

    /// Locks the call, checks the caller is a member of its conversation, applies `body` to the
    /// call and its participants, saves both, tells the participants and returns the new view.
    func change(_ callId: String, by identity: Identity?,
                _ body: @escaping @Sendable (inout CallRecord, inout [CallParticipant], Int64) throws -> Void,
                members: (@Sendable (any SQLDatabase, CallRecord) async throws -> Set<String>)? = nil) async throws -> CallView {
        let engine = store.engine
        let clock = self.clock
        let (view, stored) = try await store.write { db -> (CallView, [UserEvent]) in
            let now = clock.now()
            guard var call = try await CallRepository.lock(callId, engine: engine, in: db) else { throw Self.notFound }
            if let identity, !(try await ConversationMembers.isMember(identity.userId, of: call.conversationId, in: db)) { throw Self.notFound }
            var participants = try await CallRepository.participants(of: callId, in: db)
            let before = (call, participants)
            if let members {
                // Members who left the conversation are not in its call (the body sees them gone).
                let current = try await members(db, call)
                for i in participants.indices where participants[i].state == .joined && !current.contains(participants[i].userId) {
                    participants[i].leave(.left, at: now.millis)
                }
            }
            try body(&call, &participants, now.millis)
            let view = CallView(call, participants: participants, now: now.millis)
            guard (call, participants) != before else { return (view, []) }
            try await CallRepository.save(call, in: db)
            try await CallRepository.save(participants, in: db)
            return (view, try await Self.announce(view, to: participants.map(\.userId), at: now, in: db))
        }
        await events.publish(stored)
        if view.state == "ended", let reason = view.reason {
            logger.info("call ended", metadata: ["call": "\(view.id)", "reason": "\(reason)", "durationMs": "\(view.durationMs)"])
        }
        return view
    }

    /// Appends `call.updated` to each participant's log: a reference stored, the whole call live.
    static func announce(_ view: CallView, to userIds: [String], at now: Timestamp, in db: any SQLDatabase) async throws -> [UserEvent] {
        let reference = String(decoding: try JSONEncoder().encode(CallReference(callId: view.id, conversationId: view.conversationId)), as: UTF8.self)
        let live = String(decoding: try JSONEncoder().encode(view), as: UTF8.self)
        return try await UserEventLog.append(Array(Set(userIds)).sorted().map { NewUserEvent(userId: $0, type: .callUpdated, data: reference, live: live) },
                                             at: now, in: db)
    }
}
