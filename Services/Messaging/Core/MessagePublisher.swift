import CircleEvents
import CircleStore
import Logging
import MessagingStore

/// Sends committed messages to their conversations' members, live only (`message.new` frames
/// without a user sequence number): members who miss one read it from the conversation, from
/// their own cursor. Once a batch's frames went out, its outbox entry is deleted.
package struct MessagePublisher: Sendable {
    let events: EventPublisher
    /// Deletes the outbox entries of published batches; a service of the messaging module.
    package let removals: OutboxRemovals
    let logger: Logger

    package init(events: EventPublisher, store: any DatabaseStore, logger: Logger) {
        self.events = events
        self.removals = OutboxRemovals(store: store, table: .messages, logger: logger)
        self.logger = logger
    }

    /// Publishes a stored batch: each message, in order, to every member of its conversation.
    package func publish(_ batch: MessageWriter.StoredBatch) async {
        guard !batch.messages.isEmpty else { return }
        if await publish(batch.messages, members: batch.members), let outbox = batch.outbox {
            await removals.add([outbox])
        }
    }

    /// Publishes messages to the members of their conversations; true when the bus took all.
    package func publish(_ messages: [MessageRecord], members: [String: [String]]) async -> Bool {
        var deliveries: [(frame: EventFrame, userIds: [String])] = []
        deliveries.reserveCapacity(messages.count)
        for message in messages {
            do {
                deliveries.append((try EventFrame(type: .messageNew, data: message.view), members[message.conversationId] ?? []))
            } catch {
                logger.error("a message cannot be framed", metadata: ["conversation": "\(message.conversationId)", "seq": "\(message.seq)"])
                return false
            }
        }
        return await events.publish(live: deliveries)
    }
}
