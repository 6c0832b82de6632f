import CircleCore
import CircleEvents
import CircleStore
import Foundation
import Logging
import Metrics
import SQLKit

/// An activity entry as its owner (or an admin) sees it: the stored fields, the IP address and
/// user agent opened, and everything needed to check the chain (PROTOCOL-independent: see
/// `ActivityEntry`).
public struct ActivityView: Codable, Sendable, Equatable {
    public let seq: Int64
    public let at: Int64
    public let kind: String
    public let sessionId: String
    public let ip: String?
    public let userAgent: String?
    /// JSON text of the entry's details, exactly as hashed.
    public let details: String
    public let alert: Bool
    public let keyId: String
    public let ipSealed: String
    public let uaSealed: String
    public let hash: String

    public init(_ entry: ActivityEntry, sealer: ActivitySealer) {
        seq = entry.seq
        at = entry.at
        kind = entry.kind
        sessionId = entry.sessionId
        ip = sealer.open(entry.ipSealed, .ip, keyId: entry.keyId, chain: entry.chain, seq: entry.seq)
        userAgent = sealer.open(entry.uaSealed, .userAgent, keyId: entry.keyId, chain: entry.chain, seq: entry.seq)
        details = entry.details
        alert = entry.alert
        keyId = entry.keyId
        ipSealed = Base64URL.encode(entry.ipSealed)
        uaSealed = Base64URL.encode(entry.uaSealed)
        hash = Base64URL.encode(entry.hash)
    }
}

/// What an alert event names in the member's event log (the entry stays in the activity log).
public struct AlertReference: Codable, Sendable, Equatable {
    public let seq: Int64
    public let kind: String
    public let at: Int64
}

/// What recording produced, to publish once the transaction has committed.
public struct RecordedActivity: Sendable {
    public var entries: [ActivityEntry] = []
    /// `security.alert` events in the members' logs.
    public var events: [UserEvent] = []

    public init() {}
}

/// Records security activity for every service: appends to the chains in the caller's
/// transaction, adds a `security.alert` event to the member's log for each alert, and after the
/// commit tells the member's live sockets (`publish`). Alerts are also counted and logged.
public struct ActivityRecorder: Sendable {
    public let sealer: ActivitySealer
    let logger: Logger

    public init(sealer: ActivitySealer, logger: Logger) {
        self.sealer = sealer
        self.logger = logger
    }

    /// Appends `items` (and their alerts' events) inside the caller's transaction.
    public func record(_ items: [ActivityItem], at now: Timestamp, engine: DatabaseEngine, in db: any SQLDatabase) async throws -> RecordedActivity {
        var recorded = RecordedActivity()
        recorded.entries = try await ActivityLog.append(items, sealer: sealer, at: now, engine: engine, in: db)
        let alerts = recorded.entries.filter { $0.alert && $0.chain != ActivityLog.serverChain }
        if !alerts.isEmpty {
            recorded.events = try await UserEventLog.append(alerts.map { entry in
                NewUserEvent(userId: entry.chain, type: .securityAlert, data: EventData.json(AlertReference(seq: entry.seq, kind: entry.kind, at: entry.at)),
                             live: EventData.json(ActivityView(entry, sealer: sealer)))
            }, at: now, in: db)
        }
        return recorded
    }

    /// After the commit: the alerts' events (with `alongside`, the other events of the same
    /// transaction, so each member's arrive in order), each entry live to its member, counters
    /// and log lines.
    public func publish(_ recorded: RecordedActivity, with events: EventPublisher, alongside others: [UserEvent] = []) async {
        for entry in recorded.entries where entry.alert {
            Counter(label: "circle_security_alerts_total", dimensions: [("kind", entry.kind)]).increment()
            logger.warning("security alert", metadata: ["kind": "\(entry.kind)", "chain": "\(entry.chain == ActivityLog.serverChain ? "server" : "member")"])
        }
        await events.publish(recorded.events + others)
        var live: [(frame: EventFrame, userIds: [String])] = []
        for entry in recorded.entries where entry.chain != ActivityLog.serverChain {
            if let frame = try? EventFrame(type: .activityNew, data: ActivityView(entry, sealer: sealer)) { live.append((frame, [entry.chain])) }
        }
        await events.publish(live: live)
    }
}
