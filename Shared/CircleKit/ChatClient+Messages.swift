import CircleCore
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
    public func send(_ text: String, to conversation: String, kind: MessageHeader.Kind = .message, refersTo: [UInt8] = []) async throws -> Int64 {
        try requireSession()
        try await flushOutbox(conversation)
        let contentType: UInt8 = switch kind { case .message: 1; case .edit: 2; case .delete: 3 }
        let padded = try MessagePadding.pad(contentType: contentType, content: Array(text.utf8))
        for _ in 0..<4 {
            let chain = try await self.chain(conversation)
            guard chain.isMember(state.userId) else { throw CircleKitError.refused("you are not a member of this conversation") }
            var own = try await sendingChain(conversation, chain: chain)
            var sender = SenderChain(chainKey: own.chainKey.bytes, index: own.index)
            guard let step = sender.next() else {
                state.conversations[conversation]?.sending = nil
                continue
            }
            let now = UInt64(Timestamp.now().millis)
            let timer = UInt64(chain.settings.disappearSeconds)
            let header = MessageHeader(convId: chain.convId, epoch: chain.epoch, senderUserId: state.userId, deviceId: state.deviceId.bytes,
                                       generation: own.generation, chainIndex: step.index, messageId: SecureRandom.bytes(16), sentAt: now,
                                       expiresAt: timer > 0 ? now + timer * 1000 : 0, kind: kind, refersTo: refersTo)
            let sealed = try MessageSeal.seal(header: header, padded: padded, key: step.key, nonce: step.nonce, identity: try state.identity)
            own.chainKey = Bytes(sender.chainKey)
            own.index = sender.index
            state.conversations[conversation]?.sending = own
            let stored = DeviceState.StoredMessage(header: Bytes(sealed.header), ciphertext: Bytes(sealed.ciphertext), signature: Bytes(sealed.signature))
            state.conversations[conversation]?.outbox.append(stored)
            try save()
            do {
                let sent = try await post(stored, to: conversation)
                state.conversations[conversation]?.outbox.removeAll { $0 == stored }
                try save()
                return sent.seq
            } catch let error as CircleAPIError where error.slug == "stale-epoch" {
                state.conversations[conversation]?.outbox.removeAll { $0 == stored }
                state.conversations[conversation]?.sending = nil
                try save()
                continue
            }
        }
        throw CircleKitError.refused("the conversation kept changing; try again")
    }

    func post(_ message: DeviceState.StoredMessage, to conversation: String) async throws -> APITypes.Sent {
        try await api.call(.POST, "/api/v1/conversations/\(conversation)/messages",
                           body: APITypes.SendMessage(header: Base64URL.encode(message.header.bytes), ciphertext: Base64URL.encode(message.ciphertext.bytes),
                                                      signature: Base64URL.encode(message.signature.bytes)))
    }

    /// Resends messages saved but never confirmed, byte for byte.
    func flushOutbox(_ conversation: String) async throws {
        for message in state.conversations[conversation]?.outbox ?? [] {
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
                    keys = (Array(try state.identity.publicKey.rawRepresentation), Array(try state.agreement.publicKey.rawRepresentation))
                } else {
                    keys = try await sealingKeys(member)
                }
                guard IdentityFingerprint.of(keys.identity) == recorded.fingerprint else {
                    throw ChatAlarm.fork("the chain records another identity key for \(await name(of: member)) than the one pinned")
                }
                let address = EnvelopeAddress(convId: chain.convId, epoch: chain.epoch, sender: state.userId, deviceId: state.deviceId.bytes,
                                              generation: generation, recipient: member)
                let envelope = try Envelope.seal(chainKey: fresh.chainKey, startIndex: 0, to: keys.x25519, address: address, signer: try state.identity)
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
        throw CircleKitError.refused("could not start a sender chain")
    }

    // MARK: Receiving

    /// Messages after the last one this device handled, checked and decrypted in order; the
    /// read marker moves with them. A message that fails a check is reported, not shown.
    public func receive(_ conversation: String, markRead: Bool = true) async throws -> (messages: [ChatMessage], refused: [(seq: Int64, error: String)]) {
        try requireSession()
        var messages: [ChatMessage] = []
        var refused: [(Int64, String)] = []
        while true {
            let after = state.conversations[conversation]?.lastSeq ?? 0
            let page: APITypes.MessagePage = try await api.call(.GET, "/api/v1/conversations/\(conversation)/messages?after=\(after)&limit=200")
            for message in page.messages {
                do {
                    if let opened = try await open(message) { messages.append(opened) }
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
        if markRead, let last = state.conversations[conversation]?.lastSeq, last > 0 {
            try await api.send(.POST, "/api/v1/conversations/\(conversation)/read", body: APITypes.Read(seq: last))
        }
        return (messages, refused)
    }

    /// The receiver's checks in PROTOCOL 6 order: parse, epoch and membership, signature, index,
    /// replay, decrypt; state changes only after all pass. Deleted messages give nil.
    func open(_ message: APITypes.Message) async throws -> ChatMessage? {
        if message.deleted { return nil }
        let conversation = message.conversationId
        let sealed = MessageSeal.Sealed(header: try Base64URL.bytes(message.header, "header"), ciphertext: try Base64URL.bytes(message.ciphertext, "ciphertext"),
                                        signature: try Base64URL.bytes(message.signature, "signature"))
        let header = try MessageHeader(bytes: sealed.header)
        guard Base64URL.encode(header.convId) == conversation, header.senderUserId == message.sender else {
            throw CircleKitError.refused("the message's header does not match where the server filed it")
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
            throw CircleKitError.refused("the sender was not a member at the message's epoch")
        }
        let senderIdentity = try await pinnedIdentity(header.senderUserId)
        let address = ChainAddress(epoch: header.epoch, sender: header.senderUserId, deviceId: header.deviceId, generation: header.generation)
        var received = state.conversations[conversation]?.received[address.key]
        if received == nil {
            try await fetchEnvelopes(conversation, epoch: header.epoch, sender: header.senderUserId)
            received = state.conversations[conversation]?.received[address.key]
        }
        guard var chainState = received else { throw CircleKitError.refused("no key for this message's chain has arrived") }
        var replay = ReplayWindow(bits: chainState.seen)
        let (_, padded) = try MessageSeal.open(sealed, senderIdentity: senderIdentity,
                                              chain: SenderChain(chainKey: chainState.startKey.bytes, index: chainState.startIndex), replay: replay)
        let (contentType, content) = try MessagePadding.unpad(padded)
        _ = replay.insert(header.chainIndex)
        chainState.seen = replay.bits
        state.conversations[conversation]?.received[address.key] = chainState
        return ChatMessage(conversationId: conversation, seq: message.seq, id: message.id, sender: header.senderUserId, kind: header.kind,
                           contentType: contentType, text: String(decoding: content, as: UTF8.self), sentAt: header.sentAt, expiresAt: header.expiresAt)
    }

    /// Opens the envelopes addressed to this user for one sender and epoch.
    func fetchEnvelopes(_ conversation: String, epoch: [UInt8], sender: String) async throws {
        let list: APITypes.EnvelopeList = try await api.call(.GET, "/api/v1/conversations/\(conversation)/envelopes?epoch=\(Base64URL.encode(epoch))&sender=\(sender)")
        for wire in list.envelopes { try await accept(wire, conversation: conversation) }
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
        let chain = try envelope.open(senderIdentity: try await pinnedIdentity(sender), recipient: try state.agreement)
        state.conversations[conversation, default: .init()].received[key] = DeviceState.ReceivedChain(
            startKey: Bytes(chain.chainKey), startIndex: chain.index, seen: ReplayWindow().bits)
    }
}
