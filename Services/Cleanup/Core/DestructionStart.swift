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
        case .server: "destroy everything"
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
        let subject = switch request.kind {
        case .conversation: request.conversationId ?? ""
        case .server: DestructionJobs.serverSubject
        default: identity.userId
        }
        let watchToken = SessionTokens.generate()
        let engine = store.engine
        let security = self.security
        let result = try await store.write { db -> (DestructionJob, Shredded, RecordedActivity, [UserEvent]) in
            try await Self.requireFreshReauthentication(identity, before: "destroying anything", at: now, in: db)
            if request.kind == .conversation {
                switch try await MessageDestruction.isAdmin(identity.userId, of: subject, in: db) {
                case nil: throw Problem.notFound("No such conversation.")
                case false?: throw Problem.forbidden("Only an admin of the conversation can destroy it.")
                case true?: break
                }
            }
            var admins: [(id: String, username: String, createdAt: Int64)] = []
            if request.kind == .server {
                admins = try await ServerDestruction.admins(in: db)
                guard admins.contains(where: { $0.id == identity.userId }) else {
                    throw Problem.forbidden("Only an admin can destroy the server.")
                }
            }
            if let live = try await DestructionJobs.live(kind: request.kind, subject: subject, in: db),
               var running = try await DestructionJobs.lockedJob(live.id, engine: engine, in: db), !running.isDone {
                guard running.isAwaitingApproval, running.approvalExpiresAt <= now.millis else {
                    throw Problem(status: 409, slug: "destruction-running", title: "Already being destroyed",
                                  detail: running.isAwaitingApproval
                                    ? "A destruction of the server is already waiting for approval: /api/v1/destruction/\(running.id)."
                                    : "A destruction of this kind is already running: /api/v1/destruction/\(running.id).")
                }
                // A request nobody approved in time lapses when a new one comes.
                running.step = .cancelled
                running.updatedAt = now.millis
                running.finishedAt = now.millis
                try await DestructionJobs.save(running, in: db)
            }
            let id = DestructionJobs.newId()
            let others = admins.filter { $0.id != identity.userId }
            if request.kind == .server, !others.isEmpty {
                // Another admin must approve: nothing is destroyed yet, every other admin is alerted.
                let job = DestructionJob(id: id, kind: .server, subject: subject, requestedBy: identity.userId, step: .approval,
                                         progress: DestructionProgress(), createdAt: now.millis, updatedAt: now.millis, unreadableAt: 0, finishedAt: 0)
                try await DestructionJobs.insert(job, watchHash: SessionTokens.hash(watchToken), in: db)
                let by = admins.first { $0.id == identity.userId }?.username ?? ""
                let items = [ActivityItem(chain: ActivityLog.serverChain, kind: .destructionRequested, sessionId: identity.sessionId, ip: request.ip,
                                          userAgent: request.userAgent, details: ["kind": "server", "job": id, "awaiting": "approval"])]
                    + others.map { ActivityItem(chain: $0.id, kind: .destructionApprovalRequested, details: ["job": id, "by": by], alert: true) }
                let recorded = try await security.record(items, at: now, engine: engine, in: db)
                return (job, Shredded(), recorded, [])
            }
            var shredded = try await shred(request, subject: subject, job: id, at: now, in: db)
            var details = ["kind": request.kind.rawValue, "job": id]
            if request.kind == .account { details["member"] = identity.userId }
            shredded.activity.append(ActivityItem(
                chain: [.account, .server].contains(request.kind) ? ActivityLog.serverChain : identity.userId, kind: .destructionRequested,
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
        switch request.kind {
        case .account: await events.announce([.member(subject)])
        case .conversation: await events.announce([.conversation(subject)])
        case .files, .links, .server: break
        }
        await security.publish(recorded, with: events, alongside: appended)
        logger.info(job.isAwaitingApproval ? "destruction awaiting approval" : "destruction started",
                    metadata: ["job": "\(job.id)", "kind": "\(job.kind.rawValue)"])
        return (job, watchToken)
    }

    /// A second admin approves a server's destruction: checked, then its keys step runs in the
    /// transaction that starts it. Returns the job and the approver's own watch token (the
    /// keys step ends every session, theirs too).
    package func approve(_ id: String, identity: Identity, ip: String, userAgent: String) async throws -> (job: DestructionJob, watchToken: String) {
        let now = clock.now()
        let watchToken = SessionTokens.generate()
        let engine = store.engine
        let security = self.security
        let (job, shredded, recorded) = try await store.write { db -> (DestructionJob, ServerDestruction.Shredded, RecordedActivity) in
            let admins = try await ServerDestruction.admins(in: db)
            guard let approver = admins.first(where: { $0.id == identity.userId }), var job = try await DestructionJobs.lockedJob(id, engine: engine, in: db),
                  job.kind == .server else {
                throw Problem.notFound("No such destruction job.")
            }
            try await Self.requireFreshReauthentication(identity, before: "approving", at: now, in: db)
            guard admins.contains(where: { $0.id == job.requestedBy }) else {
                throw Self.notAwaiting("Nothing to approve", "The admin who asked is no longer an admin; the request cannot be approved.")
            }
            guard job.isAwaitingApproval, job.approvalExpiresAt > now.millis else {
                throw Self.notAwaiting("Nothing to approve", job.isAwaitingApproval
                    ? "The request lapsed unapproved; an admin may ask again." : "This destruction is not waiting for approval any more.")
            }
            guard job.requestedBy != identity.userId else {
                throw Problem.forbidden("A second admin must approve: the admin who asked cannot.")
            }
            // A second admin is one who was already an admin's account when the request came: an
            // account made since (with an admin invite the requester made) cannot approve.
            guard approver.createdAt < job.createdAt else {
                throw Problem.forbidden("An admin whose account is newer than the request cannot approve it.")
            }
            let shredded = try await ServerDestruction.shredKeys(at: now, in: db)
            job = DestructionJob(id: job.id, kind: job.kind, subject: job.subject, requestedBy: job.requestedBy, step: DestructionStep.plan(.server).first ?? .done,
                                 progress: Self.progress(shredded), createdAt: job.createdAt, updatedAt: now.millis, unreadableAt: now.millis,
                                 finishedAt: 0, approvedBy: identity.userId)
            try await DestructionJobs.approve(job, approverWatchHash: SessionTokens.hash(watchToken), in: db)
            try await DestructionJobs.queueBlobs(Self.blobs(shredded), job: id, in: db)
            let recorded = try await security.record([ActivityItem(
                chain: ActivityLog.serverChain, kind: .destructionApproved, sessionId: identity.sessionId, ip: ip, userAgent: userAgent,
                details: ["kind": "server", "job": id, "approvedBy": identity.userId]
            )], at: now, engine: engine, in: db)
            return (job, shredded, recorded)
        }
        await sessions.announceRevoked(shredded.sessions)
        await security.publish(recorded, with: events)
        logger.info("destruction approved and started", metadata: ["job": "\(job.id)", "kind": "server"])
        return (job, watchToken)
    }

    /// Any admin refuses (or the requester withdraws) a server's destruction waiting for approval.
    package func cancel(_ id: String, identity: Identity) async throws -> DestructionJob {
        let now = clock.now()
        let engine = store.engine
        let security = self.security
        let (job, recorded) = try await store.write { db -> (DestructionJob, RecordedActivity) in
            let admins = try await ServerDestruction.admins(in: db)
            guard admins.contains(where: { $0.id == identity.userId }), var job = try await DestructionJobs.lockedJob(id, engine: engine, in: db),
                  job.kind == .server else {
                throw Problem.notFound("No such destruction job.")
            }
            guard job.isAwaitingApproval else {
                throw Self.notAwaiting("Cannot be cancelled", "Only a destruction waiting for approval can be cancelled; once started it runs to the end.")
            }
            job.step = .cancelled
            job.updatedAt = now.millis
            job.finishedAt = now.millis
            try await DestructionJobs.save(job, in: db)
            let recorded = try await security.record([ActivityItem(
                chain: ActivityLog.serverChain, kind: .destructionCancelled, sessionId: identity.sessionId,
                details: ["kind": "server", "job": id, "cancelledBy": identity.userId]
            )], at: now, engine: engine, in: db)
            return (job, recorded)
        }
        await security.publish(recorded, with: events)
        logger.info("destruction cancelled", metadata: ["job": "\(job.id)", "kind": "server"])
        return job
    }

    /// 403 unless the session re-entered its password in the last 5 minutes (the gateway records it).
    private static func requireFreshReauthentication(_ identity: Identity, before what: String, at now: Timestamp, in db: any SQLDatabase) async throws {
        guard try await Reauthentication.isFresh(sessionId: identity.sessionId, at: now, in: db) else {
            throw Problem(status: 403, slug: "reauthentication-required", title: "Re-authentication required",
                          detail: "Enter your password again (POST /api/v1/account/reauthenticate) within 5 minutes before \(what).")
        }
    }

    /// 409: the server's destruction is not (or no longer) waiting for approval.
    private static func notAwaiting(_ title: String, _ detail: String) -> Problem {
        Problem(status: 409, slug: "destruction-not-awaiting", title: title, detail: detail)
    }

    /// What a server's keys step did, as the job's progress.
    private static func progress(_ shredded: ServerDestruction.Shredded) -> DestructionProgress {
        var progress = DestructionProgress()
        progress.sessions = Int64(shredded.sessions.count)
        progress.links = Int64(shredded.links)
        progress.filesTotal = Int64(shredded.fileIds.count + shredded.uploadIds.count)
        return progress
    }

    /// The blobs a server's keys step left to remove.
    private static func blobs(_ shredded: ServerDestruction.Shredded) -> [(name: String, kind: String)] {
        shredded.fileIds.map { (VaultFileRecord.blobName(ofId: $0), VaultDestruction.Blob.Kind.file.rawValue) }
            + shredded.uploadIds.map { ($0, VaultDestruction.Blob.Kind.upload.rawValue) }
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
        case .server:
            // The only admin: no one else to approve.
            let shredded = try await ServerDestruction.shredKeys(at: now, in: db)
            out.progress = Self.progress(shredded)
            out.blobs = Self.blobs(shredded)
            out.revoked = shredded.sessions
        }
        return out
    }
}
