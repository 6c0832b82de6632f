import CircleActivity
import CircleCore
import CircleEvents
import CircleHTTP
import CircleStore
import CleanupStore
import Foundation
import GatewayStore
import Logging
import MessagingStore
import SQLKit
import VaultStore

/// Starts destruction jobs (ARCHITECTURE 8): checks that the caller may, then runs the job's
/// first step, the one that makes the data unreadable, in the same transaction that stores the
/// job, so "accepted" already means "nothing the server keeps opens it". The cleanup service's
/// `DestructionRunner` removes the rest.
package struct DestructionStart: Sendable {
    package let store: any DatabaseStore
    package let events: EventPublisher
    package let sessions: SessionValidator
    package let security: ActivityRecorder
    package let clock: any WallClock
    package let logger: Logger

    package init(store: any DatabaseStore, events: EventPublisher, sessions: SessionValidator, security: ActivityRecorder, clock: any WallClock, logger: Logger) {
        self.store = store
        self.events = events
        self.sessions = sessions
        self.security = security
        self.clock = clock
        self.logger = logger
    }

    /// The phrase the requester types to confirm each kind.
    package static func phrase(_ kind: DestructionKind) -> String {
        switch kind {
        case .account: "destroy my account"
        case .conversation: "destroy this conversation"
        case .files: "destroy all my files"
        case .links: "revoke all my links"
        }
    }

    /// What the caller asked for, checked.
    package struct Request: Sendable {
        package let kind: DestructionKind
        package let conversationId: String?
        package let identity: Identity
        package let ip: String
        package let userAgent: String

        package init(kind: DestructionKind, conversationId: String?, identity: Identity, ip: String, userAgent: String) {
            self.kind = kind
            self.conversationId = conversationId
            self.identity = identity
            self.ip = ip
            self.userAgent = userAgent
        }
    }

    /// What the first step did, for the job and for telling people after the commit.
    private struct Shredded {
        var progress = DestructionProgress()
        var blobs: [(name: String, kind: String)] = []
        var events: [NewUserEvent] = []
        var revoked: [String] = []
        var activity: [ActivityItem] = []
    }

    /// Runs the first step and stores the job; returns it with the token that lets the requester
    /// follow it after their sessions end (an account's destruction ends them all).
    package func start(_ request: Request) async throws -> (job: DestructionJob, watchToken: String) {
        let now = clock.now()
        let identity = request.identity
        let subject = request.kind == .conversation ? (request.conversationId ?? "") : identity.userId
        let watchToken = SessionTokens.generate()
        let engine = store.engine
        let security = self.security
        let result = try await store.write { db -> (DestructionJob, Shredded, RecordedActivity, [UserEvent]) in
            guard try await Reauthentication.isFresh(sessionId: identity.sessionId, at: now, in: db) else {
                throw Problem(status: 403, slug: "reauthentication-required", title: "Re-authentication required",
                              detail: "Enter your password again (POST /api/v1/account/reauthenticate) within 5 minutes before destroying anything.")
            }
            if request.kind == .conversation {
                switch try await MessageDestruction.isAdmin(identity.userId, of: subject, in: db) {
                case nil: throw Problem.notFound("No such conversation.")
                case false?: throw Problem.forbidden("Only an admin of the conversation can destroy it.")
                case true?: break
                }
            }
            if let running = try await DestructionJobs.live(kind: request.kind, subject: subject, in: db) {
                throw Problem(status: 409, slug: "destruction-running", title: "Already being destroyed",
                              detail: "A destruction of this kind is already running: /api/v1/destruction/\(running.id).")
            }
            let id = DestructionJobs.newId()
            var shredded = try await shred(request, subject: subject, job: id, at: now, in: db)
            var details = ["kind": request.kind.rawValue, "job": id]
            if request.kind == .account { details["member"] = identity.userId }
            shredded.activity.append(ActivityItem(
                chain: request.kind == .account ? ActivityLog.serverChain : identity.userId, kind: .destructionRequested,
                sessionId: identity.sessionId, ip: request.ip, userAgent: request.userAgent, details: details
            ))
            let steps = DestructionStep.plan(request.kind)
            let job = DestructionJob(id: id, kind: request.kind, subject: subject, requestedBy: identity.userId, step: steps.first ?? .done,
                                     progress: shredded.progress, createdAt: now.millis, updatedAt: now.millis, unreadableAt: now.millis,
                                     finishedAt: 0)
            try await DestructionJobs.insert(job, watchHash: SessionTokens.hash(watchToken), in: db)
            try await DestructionJobs.queueBlobs(shredded.blobs, job: id, in: db)
            let recorded = try await security.record(shredded.activity, at: now, engine: engine, in: db)
            return (job, shredded, recorded, try await UserEventLog.append(shredded.events, at: now, in: db))
        }
        let (job, shredded, recorded, appended) = result
        await sessions.announceRevoked(shredded.revoked)
        await security.publish(recorded, with: events, alongside: appended)
        logger.info("destruction started", metadata: ["job": "\(job.id)", "kind": "\(job.kind.rawValue)"])
        return (job, watchToken)
    }

    /// The keys step of each kind, in the job's transaction.
    private func shred(_ request: Request, subject: String, job: String, at now: Timestamp, in db: any SQLDatabase) async throws -> Shredded {
        var out = Shredded()
        switch request.kind {
        case .account:
            let userId = subject
            // Tell the member's co-members before the memberships are read for anything else.
            let contacts = try await ConversationMembers.contacts(of: userId, in: db)
            out.revoked = try await AccountShredding.shred(userId: userId, at: now, in: db)
            out.progress.sessions = Int64(out.revoked.count)
            out.progress.envelopes = Int64(try await MessageDestruction.shredEnvelopes(ofUser: userId, in: db))
            let files = try await VaultDestruction.shredFiles(ofOwner: userId, in: db)
            out.blobs = files.blobs.map { ($0.name, $0.kind.rawValue) }
            out.progress.filesTotal = Int64(files.blobs.count)
            out.progress.links = Int64(files.links)
            out.progress.messagesTotal = try await MessageDestruction.count(.sentBy(userId), in: db)
            out.events = out.revoked.map { NewUserEvent(userId: userId, type: .sessionRevoked, data: EventData.json(["sessionId": $0])) }
                + contacts.sorted().map { NewUserEvent(userId: $0, type: .memberLeft, data: EventData.json(["userId": userId])) }
        case .conversation:
            let shredded = try await MessageDestruction.shredConversation(subject, in: db)
            out.progress.envelopes = Int64(shredded.envelopes)
            let files = try await VaultDestruction.shredFiles(ofConversation: subject, in: db)
            out.blobs = files.blobs.map { ($0.name, $0.kind.rawValue) }
            out.progress.filesTotal = Int64(files.blobs.count)
            out.progress.messagesTotal = try await MessageDestruction.count(.inConversation(subject), in: db)
            out.events = shredded.members.sorted().map { NewUserEvent(userId: $0, type: .conversationDestroyed, data: EventData.json(["conversationId": subject])) }
                + files.owners.sorted { $0.key < $1.key }.flatMap { owner, ids in
                    ids.map { NewUserEvent(userId: owner, type: .vaultFileDeleted, data: EventData.json(["fileId": $0])) }
                }
        case .files:
            let files = try await VaultDestruction.shredFiles(ofOwner: subject, in: db)
            out.blobs = files.blobs.map { ($0.name, $0.kind.rawValue) }
            out.progress.filesTotal = Int64(files.blobs.count)
            out.progress.links = Int64(files.links)
            out.events = files.fileIds.map { NewUserEvent(userId: subject, type: .vaultFileDeleted, data: EventData.json(["fileId": $0])) }
        case .links:
            out.progress.links = Int64(try await VaultDestruction.revokeLinks(ofOwner: subject, at: now, in: db))
        }
        return out
    }
}
