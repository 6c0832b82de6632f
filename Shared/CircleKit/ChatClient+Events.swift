import CircleCore
import CircleProtocol
import Foundation
import HummingbirdWSClient
import Logging
import NIOWebSocket

/// What `watch` reports as it happens.
public enum ChatEvent: Sendable {
    /// A message, checked and decrypted.
    case message(ChatMessage)
    /// A message that failed a check (not shown to the user as genuine).
    case refused(conversationId: String, seq: Int64, reason: String)
    /// A conversation's membership or settings changed (its chain is verified again).
    case membership(conversationId: String)
    /// A member's read marker moved (server-reported metadata, not end-to-end protected).
    case read(conversationId: String, userId: String, seq: Int64)
    /// The socket is connected and caught up (`true`), or lost and reconnecting (`false`).
    case connection(Bool)
    /// A member started or stopped typing in a conversation (server-reported, never stored).
    case typing(conversationId: String, userId: String, started: Bool)
    /// A contact's presence changed (server-reported).
    case presence(Presence)
    /// A security alert about this account: an entry of its activity log (`circle activity`).
    case alert(kind: String, seq: Int64)
}

extension ChatClient {
    /// Follows the realtime socket: catches up from the last event this device handled, then
    /// live; reconnects by itself (after a restart or a network drop) and resumes without losing
    /// or repeating anything. Calls `handle` for each event; stops when it returns false.
    /// A revoked session (close code 4001) ends the watch with an error.
    public func watch(_ handle: @escaping @Sendable (ChatEvent) async -> Bool) async throws {
        try requireSession()
        var logger = Logger(label: "circle.kit.events")
        logger.logLevel = .critical
        var delay: Duration = .milliseconds(200)
        while !Task.isCancelled {
            let stop = StopFlag()
            let token = state.token ?? ""
            let since = state.lastEventSeq
            do {
                let close = try await WebSocketClient.connect(url: api.socketURL, configuration: .init(maxFrameSize: 1 << 22), logger: logger) { inbound, outbound, _ in
                    try await outbound.write(.text("{\"type\":\"auth\",\"token\":\(JSONText.quote(token)),\"since\":\(since)}"))
                    for try await message in inbound.messages(maxSize: 1 << 22) {
                        guard case .text(let text) = message else { continue }
                        for event in await self.handleFrame(text) {
                            if !(await handle(event)) {
                                await stop.set()
                                try await outbound.close(.normalClosure, reason: nil)
                                return
                            }
                        }
                    }
                }
                if await stop.isSet { return }
                lastDisconnect = close.map { "closed \($0.closeCode) \($0.reason ?? "")" } ?? "closed without a close frame"
                if let close, close.closeCode == WebSocketErrorCode(codeNumber: 4001) {
                    throw CircleAPIError(status: 401, slug: "unauthorized", detail: "the session ended (signed out or revoked): run `circle login`")
                }
                delay = .milliseconds(200)
            } catch let error as CircleAPIError where error.status == 401 {
                throw error
            } catch {
                if await stop.isSet { return }
                lastDisconnect = "\(error)"
            }
            if !(await handle(.connection(false))) { return }
            try await Task.sleep(for: delay)
            delay = min(delay * 2, .seconds(5))
        }
    }

    /// Handles one socket frame: applies it to the device state and says what happened.
    func handleFrame(_ text: String) async -> [ChatEvent] {
        let bytes = Data(text.utf8)
        let decoder = JSONDecoder()
        // One parse for the head and, for the most frequent frame, a new message, its data.
        guard let head = try? decoder.decode(FrameHead.self, from: bytes) else { return [] }
        func data<T: Decodable>(_ type: T.Type) -> T? { (try? decoder.decode(Frame<T>.self, from: bytes))?.data }
        switch head.type {
        case "ready":
            // Caught up on stored events; messages are read from each conversation's cursor.
            return await catchUpConversations() + [.connection(true)]
        case "catch-up":
            // Live delivery may have missed messages (the server's bus reconnected).
            return await catchUpConversations()
        case "resync-required":
            // Events were pruned: continue from the head; `ready` follows and lists everything.
            if let last = data(LastSeq.self)?.lastSeq { state.lastEventSeq = last }
            try? save()
            return []
        case "typing":
            guard let indicator = data(TypingIndicator.self) else { return [] }
            return [.typing(conversationId: indicator.conversationId, userId: indicator.userId, started: indicator.state == "start")]
        case "presence":
            guard let presence = data(Presence.self), presence.userId != state.userId else { return [] }
            return [.presence(presence)]
        case "message.new":
            // Live only (no event sequence number): the conversation's own sequence orders it.
            guard let message = head.message else { return [] }
            let handled = state.conversations[message.conversationId]?.lastSeq ?? 0
            if message.seq <= handled { return [] }
            // Any earlier message of the conversation not handled yet comes first, in order.
            if message.seq > handled + 1 { return await receiveAsEvents(message.conversationId) }
            defer {
                state.conversations[message.conversationId, default: .init()].lastSeq = message.seq
                try? save()
            }
            do {
                return try await open(message).map { [.message($0)] } ?? []
            } catch {
                return [.refused(conversationId: message.conversationId, seq: message.seq, reason: "\(error)")]
            }
        default:
            break
        }
        guard let seq = head.seq, seq > state.lastEventSeq else { return [] }
        defer {
            state.lastEventSeq = seq
            try? save()
        }
        switch head.type {
        case "envelope.new":
            // A live envelope is whole; one read back from the log only names it (it is fetched
            // when a message needs it).
            guard let envelope = data(APITypes.WireEnvelope.self), let conversation = data(ConversationRef.self)?.conversationId else { return [] }
            try? await accept(envelope, conversation: conversation)
            return []
        case "conversation.created", "conversation.op":
            guard let conversation = data(ConversationRef.self)?.conversationId else { return [] }
            do {
                _ = try await chain(conversation)
            } catch let error as CircleAPIError where error.status == 404 {
                // Removed: the conversation is gone for this member.
            } catch {
                return [.refused(conversationId: conversation, seq: 0, reason: "\(error)")]
            }
            return [.membership(conversationId: conversation)]
        case "conversation.read":
            guard let marker = data(ReadMarker.self) else { return [] }
            return [.read(conversationId: marker.conversationId, userId: marker.userId, seq: marker.seq)]
        case "security.alert":
            guard let alert = data(AlertReference.self) else { return [] }
            return [.alert(kind: alert.kind, seq: alert.seq)]
        default:
            return []
        }
    }

    /// Reads every conversation whose last message is newer than what this device handled.
    func catchUpConversations() async -> [ChatEvent] {
        guard let summaries = try? await conversations() else { return [] }
        var events: [ChatEvent] = []
        for summary in summaries where summary.lastSeq > (state.conversations[summary.id]?.lastSeq ?? 0) {
            events += await receiveAsEvents(summary.id)
        }
        return events
    }

    func receiveAsEvents(_ conversation: String) async -> [ChatEvent] {
        do {
            let (messages, refused) = try await receive(conversation, markRead: false)
            return messages.map { .message($0) } + refused.map { .refused(conversationId: conversation, seq: $0.seq, reason: $0.error) }
        } catch {
            return [.refused(conversationId: conversation, seq: 0, reason: "\(error)")]
        }
    }
}

/// Set once when the caller asked to stop.
actor StopFlag {
    private(set) var isSet = false
    func set() { isSet = true }
}

/// A frame's sequence number and type, and the message when it is `message.new`.
struct FrameHead: Decodable {
    let seq: Int64?
    let type: String
    let message: APITypes.Message?

    enum CodingKeys: String, CodingKey { case seq, type, data }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        seq = try container.decodeIfPresent(Int64.self, forKey: .seq)
        type = try container.decode(String.self, forKey: .type)
        message = type == "message.new" ? try? container.decode(APITypes.Message.self, forKey: .data) : nil
    }
}
struct Frame<T: Decodable>: Decodable { let data: T }
struct LastSeq: Decodable { let lastSeq: Int64 }
struct ConversationRef: Decodable { let conversationId: String }
struct ReadMarker: Decodable { let conversationId: String; let userId: String; let seq: Int64 }
struct TypingIndicator: Decodable { let conversationId: String; let userId: String; let state: String }
struct AlertReference: Decodable { let seq: Int64; let kind: String }
