import CircleCore
import CircleProtocol
import Crypto
import Foundation

extension ChatClient {
    // MARK: Sending

    /// Encrypts and sends a text message; returns its sequence number in the conversation.
    ///
    /// The next chain key and the sealed bytes are saved before the ciphertext leaves; if the
    /// send fails in transit, the next call resends exactly those bytes. After a membership
    /// change (409 `stale-epoch`) it catches up and sends on a new chain.
    @discardableResult
    public func send(_ text: String, to conversation: String) async throws -> Int64 {
        try await send(padded: try MessagePadding.pad(contentType: ChatMessage.ContentType.text, content: Array(text.utf8)),
                       kind: .message, refersTo: [], to: conversation)
    }

    /// Replaces the text of one of this user's messages for everyone (PROTOCOL 6: the edit names
    /// the original by id in the header and by `H(original header)` inside the ciphertext).
    @discardableResult
    public func edit(_ original: ChatMessage, to text: String) async throws -> Int64 {
        guard original.sender == state.userId, original.kind == .message else { throw ProtocolError.refused("only the author edits a message") }
        return try await send(padded: try MessagePadding.pad(contentType: ChatMessage.ContentType.edit, content: original.headerHash + Array(text.utf8)),
                              kind: .edit, refersTo: try Base64URL.bytes(original.id, "id"), to: original.conversationId)
    }

    /// Deletes one of this user's messages for everyone.
    @discardableResult
    public func delete(_ original: ChatMessage) async throws -> Int64 {
        guard original.sender == state.userId, original.kind == .message else { throw ProtocolError.refused("only the author deletes a message") }
        return try await send(padded: try MessagePadding.pad(contentType: ChatMessage.ContentType.delete, content: original.headerHash),
                              kind: .delete, refersTo: try Base64URL.bytes(original.id, "id"), to: original.conversationId)
    }

    func send(padded: [UInt8], kind: MessageHeader.Kind, refersTo: [UInt8], to conversation: String) async throws -> Int64 {
        try requireSession()
        try await flushOutbox(conversation)
        for _ in 0..<4 {
            await sealing.lock()
            let stored: DeviceState.StoredMessage
            do {
                stored = try await sealNext(padded, kind: kind, refersTo: refersTo, in: conversation)
            } catch {
                await sealing.unlock()
                throw error
            }
            await sealing.unlock()
            do {
                let sent = try await post(stored, to: conversation)
                inFlight.remove(stored.header)
                state.conversations[conversation]?.outbox.removeAll { $0 == stored }
                try save()
                return sent.seq
            } catch let error as CircleAPIError where error.slug == "stale-epoch" {
                // The membership changed: this message was not stored; catch up and use a new chain.
                inFlight.remove(stored.header)
                state.conversations[conversation]?.outbox.removeAll { $0 == stored }
                if let header = try? MessageHeader(bytes: stored.header.bytes), state.conversations[conversation]?.sending?.epoch.bytes == header.epoch {
                    state.conversations[conversation]?.sending = nil
                }
                chains[conversation] = nil
                try save()
                continue
            } catch {
                // In transit: the bytes stay in the outbox and the next send resends them.
                inFlight.remove(stored.header)
                throw error
            }
        }
        throw ProtocolError.refused("the conversation kept changing; try again")
    }

    /// Seals the next message on this device's chain (under the sealing lock) and saves the
    /// advanced chain key and the sealed bytes before anything is sent.
    func sealNext(_ padded: [UInt8], kind: MessageHeader.Kind, refersTo: [UInt8], in conversation: String) async throws -> DeviceState.StoredMessage {
        let chain: MembershipChain
        if let cached = chains[conversation] { chain = cached } else { chain = try await self.chain(conversation) }
        guard chain.isMember(state.userId) else { throw ProtocolError.refused("you are not a member of this conversation") }
        var own = try await sendingChain(conversation, chain: chain)
        var sender = SenderChain(chainKey: own.chainKey.bytes, index: own.index)
        guard let step = sender.next() else { throw ProtocolError.refused("the sender chain is used up") }
        let now = UInt64(Timestamp.now().millis)
        let timer = UInt64(chain.settings.disappearSeconds)
        let header = MessageHeader(convId: chain.convId, epoch: chain.epoch, senderUserId: state.userId, deviceId: state.deviceId.bytes,
                                   generation: own.generation, chainIndex: step.index, messageId: SecureRandom.bytes(16), sentAt: now,
                                   expiresAt: timer > 0 ? now + timer * 1000 : 0, kind: kind, refersTo: refersTo)
        let sealed = try MessageSeal.seal(header: header, padded: padded, key: step.key, nonce: step.nonce, commitment: step.commitment, identity: try identityKey())
        own.chainKey = Bytes(sender.chainKey)
        own.index = sender.index
        state.conversations[conversation]?.sending = own
        let stored = DeviceState.StoredMessage(header: Bytes(sealed.header), ciphertext: Bytes(sealed.ciphertext), signature: Bytes(sealed.signature))
        state.conversations[conversation]?.outbox.append(stored)
        try save()
        // In flight from the moment it is in the outbox (in this same turn of the actor): a
        // concurrent send's `flushOutbox` must not take it for one whose attempt failed.
        inFlight.insert(stored.header)
        return stored
    }

    func post(_ message: DeviceState.StoredMessage, to conversation: String) async throws -> APITypes.Sent {
        try await api.call(.POST, "/api/v1/conversations/\(conversation)/messages",
                           body: APITypes.SendMessage(header: Base64URL.encode(message.header.bytes), ciphertext: Base64URL.encode(message.ciphertext.bytes),
                                                      signature: Base64URL.encode(message.signature.bytes)))
    }

    /// Sends again, byte for byte, the messages of `conversation` whose send failed in transit
    /// (the server keeps one copy of each, whether or not an earlier attempt reached it). A client
    /// retries a failed `send` with this, never by sending the text again, which would make a
    /// second message. Returns how many were waiting.
    @discardableResult
    public func resendPending(in conversation: String) async throws -> Int {
        try requireSession()
        let waiting = (state.conversations[conversation]?.outbox ?? []).filter { !inFlight.contains($0.header) }.count
        try await flushOutbox(conversation)
        return waiting
    }

    /// Resends messages saved but never confirmed, byte for byte.
    func flushOutbox(_ conversation: String) async throws {
        for message in state.conversations[conversation]?.outbox ?? [] where !inFlight.contains(message.header) {
            resent += 1
            do {
                _ = try await post(message, to: conversation)
            } catch let error as CircleAPIError where error.slug == "stale-epoch" || error.status == 404 {
                // Never accepted and now impossible to accept: dropped (the chain rotates).
                state.conversations[conversation]?.sending = nil
            } catch let error as CircleAPIError where error.slug == "message-id-conflict" {
                throw ChatAlarm.fork("the server holds a different message under one of this device's message ids")
            }
            state.conversations[conversation]?.outbox.removeAll { $0 == message }
            try save()
        }
    }

    /// This device's chain for the current epoch, started and announced (envelopes sealed to
    /// every member after every check of PROTOCOL 5.1) if there is none yet.
    func sendingChain(_ conversation: String, chain: MembershipChain) async throws -> DeviceState.OwnChain {
        if let own = state.conversations[conversation]?.sending, own.epoch.bytes == chain.epoch, own.index < SenderChain.maximumMessages, own.announced {
            return own
        }
        var generation: UInt32 = 0
        if let own = state.conversations[conversation]?.sending, own.epoch.bytes == chain.epoch { generation = own.generation + 1 }
        for _ in 0..<3 {
            let fresh = SenderChain.fresh()
            var own = DeviceState.OwnChain(epoch: Bytes(chain.epoch), generation: generation, chainKey: Bytes(fresh.chainKey), index: 0, announced: false)
            state.conversations[conversation, default: .init()].sending = own
            try save()
            var envelopes: [APITypes.WireEnvelope] = []
            for (member, recorded) in chain.members.sorted(by: { $0.key < $1.key }) {
                let keys: (identity: [UInt8], x25519: [UInt8])
                if member == state.userId {
                    keys = (Array(try identityKey().publicKey.rawRepresentation), Array(try state.agreement.publicKey.rawRepresentation))
                } else {
                    keys = try await sealingKeys(member)
                }
                guard IdentityFingerprint.of(keys.identity) == recorded.fingerprint else {
                    throw ChatAlarm.fork("the chain records another identity key for \(await name(of: member)) than the one pinned")
                }
                let address = EnvelopeAddress(convId: chain.convId, epoch: chain.epoch, sender: state.userId, deviceId: state.deviceId.bytes,
                                              generation: generation, recipient: member)
                let envelope = try Envelope.seal(chainKey: fresh.chainKey, startIndex: 0, to: keys.x25519, address: address, signer: try identityKey())
                envelopes.append(APITypes.WireEnvelope(epoch: Base64URL.encode(chain.epoch), deviceId: Base64URL.encode(state.deviceId.bytes), generation: generation,
                                                       recipient: member, enc: Base64URL.encode(envelope.enc), ciphertext: Base64URL.encode(envelope.ciphertext),
                                                       signature: Base64URL.encode(envelope.signature), sender: nil))
            }
            do {
                try await api.send(.POST, "/api/v1/conversations/\(conversation)/envelopes", body: APITypes.PostEnvelopes(envelopes: envelopes))
            } catch let error as CircleAPIError where error.slug == "envelope-conflict" {
                generation += 1
                continue
            }
            own.announced = true
            state.conversations[conversation]?.sending = own
            try save()
            return own
        }
        throw ProtocolError.refused("could not start a sender chain")
    }

    // MARK: Receiving

    /// Messages after the last one this device handled, checked and decrypted in order; the
    /// read marker moves with them. A message that fails a check is reported, not shown. One the
    /// server lists as deleted comes back `deleted` when its author's signed delete names its
    /// header; without one, it is reported as missing (the server suppressed it).
    public func receive(_ conversation: String, markRead: Bool = true) async throws -> (messages: [ChatMessage], refused: [(seq: Int64, error: String)]) {
        try requireSession()
        var messages: [ChatMessage] = []
        var refused: [(Int64, String)] = []
        var tombstones: [ChatMessage] = []
        while true {
            let after = state.conversations[conversation]?.lastSeq ?? 0
            let page: APITypes.MessagePage = try await api.call(.GET, "/api/v1/conversations/\(conversation)/messages?after=\(after)&limit=200")
            for message in page.messages {
                do {
                    if message.deleted {
                        if let tombstone = try tombstone(message) { tombstones.append(tombstone) }
                    } else if let opened = try await open(message) {
                        messages.append(opened)
                    }
                } catch let alarm as ChatAlarm {
                    throw alarm
                } catch {
                    refused.append((message.seq, "\(error)"))
                }
                state.conversations[conversation, default: .init()].lastSeq = max(state.conversations[conversation]?.lastSeq ?? 0, message.seq)
            }
            try save()
            if !page.more { break }
        }
        // Gaps are counted once the whole listing is in: messages of one chain may be stored out of
        // index order when their sender posts them concurrently. A conversation with a retention
        // loses its oldest messages on purpose, so gaps there are not the server's doing.
        let retained = (try? await localChain(conversation))?.settings.retentionDays ?? 0
        for (position, message) in messages.enumerated() where message.expiresAt == 0 && retained == 0 {
            guard let key = message.chain, let chain = state.conversations[conversation]?.received[key] else { continue }
            let count = Self.unlistedBefore(message.chainIndex, in: ReplayWindow(bits: chain.seen), from: chain.startIndex)
            guard count > 0 else { continue }
            messages[position].missingBefore = count
            refused.append((message.seq, "\(count == 1 ? "a message" : "\(count) messages") from \(await name(of: message.sender)) before this one \(count == 1 ? "is" : "are") missing: the server did not deliver \(count == 1 ? "it" : "them")"))
        }
        for tombstone in tombstones {
            if messages.contains(where: { $0.kind == .delete && $0.applies(to: tombstone) }) {
                messages.append(tombstone)
            } else {
                refused.append((tombstone.seq, "a message from \(await name(of: tombstone.sender)) is missing: the server lists it as deleted, but they did not delete it"))
            }
        }
        messages.sort { $0.seq < $1.seq }
        if markRead, let last = state.conversations[conversation]?.lastSeq, last > 0 {
            try await api.send(.POST, "/api/v1/conversations/\(conversation)/read", body: APITypes.Read(seq: last))
        }
        return (messages, refused)
    }

    /// The indexes between the newest one received below `index` and `index` itself (0 when
    /// nothing below it was received: a chain may be joined in the middle).
    static func unlistedBefore(_ index: UInt32, in window: ReplayWindow, from start: UInt32) -> Int {
        var below = index
        while below > start {
            below -= 1
            if window.contains(below) { return Int(index - below - 1) }
        }
        return 0
    }

    /// What a deleted message's listing (its header, no ciphertext) says, if it is a message filed
    /// where its header says; `receive` shows it only with its author's delete. Its index counts
    /// as received on its chain.
    func tombstone(_ message: APITypes.Message) throws -> ChatMessage? {
        let bytes = try Base64URL.bytes(message.header, "header")
        let header = try MessageHeader(bytes: bytes)
        guard Base64URL.encode(header.convId) == message.conversationId, header.senderUserId == message.sender,
              Base64URL.encode(header.messageId) == message.id else { return nil }
        // Its index was used: a later message of the chain is not missing one there.
        let key = ChainAddress(epoch: header.epoch, sender: header.senderUserId, deviceId: header.deviceId, generation: header.generation).key
        if var chain = state.conversations[message.conversationId]?.received[key] {
            var window = ReplayWindow(bits: chain.seen)
            _ = window.insert(header.chainIndex)
            chain.seen = window.bits
            state.conversations[message.conversationId]?.received[key] = chain
        }
        guard header.kind == .message else { return nil }
        return ChatMessage(conversationId: message.conversationId, seq: message.seq, id: message.id, sender: header.senderUserId, kind: .message,
                           contentType: ChatMessage.ContentType.text, text: "", sentAt: header.sentAt, expiresAt: header.expiresAt,
                           headerHash: Array(SHA256.hash(data: bytes)), refersTo: nil, refersToHash: [], deleted: true)
    }

    /// The receiver's checks in PROTOCOL 6 order: parse, epoch and membership, signature, index,
    /// replay, key commitment, decrypt; state changes only after all pass. Deleted messages give nil.
    func open(_ message: APITypes.Message) async throws -> ChatMessage? {
        if message.deleted { return nil }
        let conversation = message.conversationId
        let sealed = MessageSeal.Sealed(header: try Base64URL.bytes(message.header, "header"), ciphertext: try Base64URL.bytes(message.ciphertext, "ciphertext"),
                                        signature: try Base64URL.bytes(message.signature, "signature"))
        let header = try MessageHeader(bytes: sealed.header)
        guard Base64URL.encode(header.convId) == conversation, header.senderUserId == message.sender else {
            throw ProtocolError.refused("the message's header does not match where the server filed it")
        }
        var chain: MembershipChain
        if let local = try await localChain(conversation) { chain = local } else { chain = try await self.chain(conversation) }
        if !chain.knows(epoch: header.epoch) {
            chain = try await self.chain(conversation)
            guard chain.knows(epoch: header.epoch) else {
                throw ChatAlarm.fork("a message names an epoch that this device's verified chain does not reach (a withheld or forked op)")
            }
        }
        guard chain.wasMember(header.senderUserId, atEpoch: header.epoch) else {
            throw ProtocolError.refused("the sender was not a member at the message's epoch")
        }
        let senderIdentity = try await recordedIdentity(header.senderUserId, fingerprint: chain.fingerprint(of: header.senderUserId, atEpoch: header.epoch))
        let address = ChainAddress(epoch: header.epoch, sender: header.senderUserId, deviceId: header.deviceId, generation: header.generation)
        var received = state.conversations[conversation]?.received[address.key]
        if received == nil {
            try await fetchEnvelopes(conversation, epoch: header.epoch, sender: header.senderUserId)
            received = state.conversations[conversation]?.received[address.key]
        }
        guard var chainState = received else { throw ProtocolError.refused("no key for this message's chain has arrived") }
        var replay = ReplayWindow(bits: chainState.seen)
        var base = SenderChain(chainKey: chainState.startKey.bytes, index: chainState.startIndex)
        if let key = chainState.cursorKey, let index = chainState.cursorIndex, index <= header.chainIndex {
            base = SenderChain(chainKey: key.bytes, index: index)
        }
        let (_, padded) = try MessageSeal.open(sealed, senderIdentity: senderIdentity, chain: base, replay: replay)
        // Keep the cursor a little behind the newest index, for messages that arrive out of order.
        let trailing = header.chainIndex >= 8 ? header.chainIndex - 8 : 0
        if trailing > (chainState.cursorIndex ?? chainState.startIndex), trailing >= base.index {
            let cursor = try base.advanced(to: trailing)
            chainState.cursorKey = Bytes(cursor.chainKey)
            chainState.cursorIndex = cursor.index
        }
        let (contentType, content) = try MessagePadding.unpad(padded)
        var text = content
        var refersToHash: [UInt8] = []
        if header.kind != .message {
            guard content.count >= 32, contentType == (header.kind == .edit ? ChatMessage.ContentType.edit : ChatMessage.ContentType.delete) else {
                throw ProtocolError.malformed("an edit or delete must name the original's header hash")
            }
            refersToHash = Array(content.prefix(32))
            text = Array(content.dropFirst(32))
        }
        _ = replay.insert(header.chainIndex)
        chainState.seen = replay.bits
        state.conversations[conversation]?.received[address.key] = chainState
        return ChatMessage(conversationId: conversation, seq: message.seq, id: message.id, sender: header.senderUserId, kind: header.kind,
                           contentType: contentType, text: String(decoding: text, as: UTF8.self), sentAt: header.sentAt, expiresAt: header.expiresAt,
                           headerHash: Array(SHA256.hash(data: sealed.header)), refersTo: header.refersTo.isEmpty ? nil : Base64URL.encode(header.refersTo),
                           refersToHash: refersToHash, chain: address.key, chainIndex: header.chainIndex)
    }

    /// Opens the envelopes addressed to this user for one sender and epoch, page after page.
    func fetchEnvelopes(_ conversation: String, epoch: [UInt8], sender: String) async throws {
        var after = ""
        while true {
            let list: APITypes.EnvelopeList = try await api.call(
                .GET, "/api/v1/conversations/\(conversation)/envelopes?epoch=\(Base64URL.encode(epoch))&sender=\(sender)\(after)")
            for wire in list.envelopes { try await accept(wire, conversation: conversation) }
            guard list.more == true, let next = list.next else { return }
            after = "&after=\(next)"
        }
    }

    /// Checks and opens one envelope (signed by its sender, addressed to this user, in this
    /// conversation) and keeps its chain.
    func accept(_ wire: APITypes.WireEnvelope, conversation: String) async throws {
        guard let sender = wire.sender, wire.recipient == state.userId, let convId = Base64URL.decode(conversation) else { return }
        let address = EnvelopeAddress(convId: Array(convId), epoch: try Base64URL.bytes(wire.epoch, "epoch"), sender: sender,
                                      deviceId: try Base64URL.bytes(wire.deviceId, "deviceId"), generation: wire.generation, recipient: state.userId)
        let key = ChainAddress(epoch: address.epoch, sender: sender, deviceId: address.deviceId, generation: wire.generation).key
        if state.conversations[conversation]?.received[key] != nil { return }
        let envelope = Envelope(address: address, enc: try Base64URL.bytes(wire.enc, "enc"), ciphertext: try Base64URL.bytes(wire.ciphertext, "ciphertext"),
                                signature: try Base64URL.bytes(wire.signature, "signature"))
        // Under the key the chain recorded for the sender at the envelope's epoch, never just
        // the directory's (a first contact would otherwise pin whatever the server hands out).
        var membership: MembershipChain
        if let local = try await localChain(conversation) { membership = local } else { membership = try await self.chain(conversation) }
        if !membership.knows(epoch: address.epoch) { membership = try await self.chain(conversation) }
        guard let recorded = membership.fingerprint(of: sender, atEpoch: address.epoch) else {
            throw ProtocolError.refused("the envelope's sender was not a member at its epoch")
        }
        let senderIdentity = try await recordedIdentity(sender, fingerprint: recorded)
        let chain = try envelope.open(senderIdentity: senderIdentity, recipient: try state.agreement)
        state.conversations[conversation, default: .init()].received[key] = DeviceState.ReceivedChain(
            startKey: Bytes(chain.chainKey), startIndex: chain.index, seen: ReplayWindow().bits, cursorKey: nil, cursorIndex: nil)
    }
}
