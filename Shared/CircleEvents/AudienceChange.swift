import CircleBus
import NIOCore

/// A change to who may send and receive a conversation's typing indicators, announced on the
/// bus after the change committed, so that gateways drop what they keep of that audience
/// (`AudienceCache`) at once instead of serving it stale.
///
/// On the bus: one change per line, `c <conversation id>` or `m <member id>`.
public enum AudienceChange: Sendable, Hashable {
    /// The conversation's members changed: it was created, an op added or removed someone, or it
    /// was destroyed.
    case conversation(String)
    /// The member's typing preference changed, or the account ended: every audience they are in.
    case member(String)

    /// The channel every gateway reads.
    public static let channel = "audiences.changed"

    public static func encode(_ changes: [AudienceChange]) -> ByteBuffer {
        ByteBuffer(string: changes.map { change in
            switch change {
            case .conversation(let id): "c \(id)"
            case .member(let id): "m \(id)"
            }
        }.joined(separator: "\n"))
    }

    /// The changes of an announcement; lines it cannot read are skipped.
    public static func decode(_ buffer: ByteBuffer) -> [AudienceChange] {
        String(buffer: buffer).split(separator: "\n").compactMap { line in
            guard line.count > 2, line.dropFirst().first == " " else { return nil }
            let id = String(line.dropFirst(2))
            switch line.first {
            case "c": return .conversation(id)
            case "m": return .member(id)
            default: return nil
            }
        }
    }
}

extension EventPublisher {
    /// Announces committed changes to typing audiences. A lost announcement is bounded by the
    /// cache's lifetime (and a bus reconnect, which the gateways see as a gap, empties it).
    public func announce(_ changes: [AudienceChange]) async {
        guard !changes.isEmpty else { return }
        do {
            try await bus.publish(AudienceChange.encode(changes), to: AudienceChange.channel)
        } catch {
            logger.warning("audience change announcement failed", metadata: ["error": "\(error)"])
        }
    }
}
