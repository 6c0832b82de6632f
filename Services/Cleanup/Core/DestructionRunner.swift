import CircleActivity
import CircleCore
import CircleEvents
import CircleStore
import CleanupStore
import Foundation
import GatewayStore
import Logging
import MessagingStore
import PresenceStore
import ServiceLifecycle
import SignalingStore
import SQLKit
import VaultStore

/// Runs destruction jobs to the end (ARCHITECTURE 8): claims one nobody holds, then runs its
/// steps in bounded batches, each batch one transaction that also saves the job's progress and
/// renews the claim, so a crash at any point resumes where the last commit left it (on this or
/// another replica, once the claim lapses) and no batch runs twice. Progress reaches the
/// requester live, at each step and at most every `progressInterval` between.
package struct DestructionRunner: Service {
    package let store: any DatabaseStore
    package let blobs: any BlobStore
    package let events: EventPublisher
    package let security: ActivityRecorder
    package let clock: any WallClock
    package let logger: Logger
    package let interval: Duration
    /// Rows (or blobs) in each batch.
    package let batch: Int
    /// This runner's name in the jobs it claims.
    package let name: String
    /// After each batch the runner rests this many times the batch's own duration, leaving the
    /// database (SQLite's one writer above all) to the members' requests in between.
    package let pace: Pace
    /// Where the embedded server keeps its own secrets (the pepper, the activity key): a
    /// server's destruction overwrites and removes them before anything else it runs. Empty in
    /// the scaled mode, whose secrets live in the operator's secret store.
    package let keyFiles: [String]
    /// Runs once a server's destruction finished (`circle serve` stops: its secrets are gone
    /// from disk, so it must start again with new ones).
    package let serverDestroyed: (@Sendable () async -> Void)?

    package init(store: any DatabaseStore, blobs: any BlobStore, events: EventPublisher, security: ActivityRecorder, clock: any WallClock, logger: Logger,
                 interval: Duration = .seconds(1), batch: Int = 200, name: String = DestructionJobs.newId(), pace: Pace = Pace(busy: 1),
                 keyFiles: [String] = [], serverDestroyed: (@Sendable () async -> Void)? = nil) {
        self.store = store
        self.blobs = blobs
        self.events = events
        self.security = security
        self.clock = clock
        self.logger = logger
        self.interval = interval
        self.batch = batch
        self.name = name
        self.pace = pace
        self.keyFiles = keyFiles
        self.serverDestroyed = serverDestroyed
    }

    package func run() async throws {
        await Sweeping.every(interval, logger: logger, what: "destruction") { _ = try await runAvailable() }
    }

    /// Runs every job it can claim until none is left, or until `batches` batches ran (tests
    /// stop there to act out a crash between two commits). Returns how many batches ran.
    @discardableResult
    package func runAvailable(batches limit: Int = .max) async throws -> Int {
        var ran = 0
        while ran < limit, !Self.stopping {
            let now = clock.now()
            let engine = store.engine
            let name = self.name
            // Polled every second: background work, which waits behind the members and is not use.
            guard try await store.yieldingRead({ db in try await DestructionJobs.anyClaimable(now: now, in: db) }),
                  let claimed = try await store.write({ db in
                try await DestructionJobs.claim(runner: name, now: now, until: now.adding(milliseconds: DestructionJobs.leaseMillis), engine: engine, in: db)
            }) else { return ran }
            logger.info("destruction job claimed", metadata: ["job": "\(claimed.id)", "kind": "\(claimed.kind.rawValue)", "step": "\(claimed.step.rawValue)"])
            var job = claimed
            var announced: ContinuousClock.Instant?
            while ran < limit, !Self.stopping {
                let began = ContinuousClock.now
                guard let after = try await runBatch(job, announced: &announced) else { break }
                job = after
                ran += 1
                // The batch's pages go into the database file now, in the runner's own time,
                // rather than in whichever member's write next crosses SQLite's checkpoint mark.
                try? await store.flushLog(emptying: false)
                if after.isDone { break }
                let rest = await pace.factor(sinceLastUse: store.sinceLastUse())
                if rest > 0 { try? await Task.sleep(for: (ContinuousClock.now - began) * rest) }
            }
            // Stopping for shutdown hands the job over at once; stopping at the batch limit acts
            // out a crash (the claim lapses on its own).
            if Self.stopping {
                try await store.write { db in try await DestructionJobs.release(claimed.id, runner: name, in: db) }
            }
        }
        return ran
    }

    /// The task is cancelled or its service group is shutting down.
    private static var stopping: Bool { Task.isCancelled || Task.isShuttingDownGracefully }

    /// How long the runner rests after a batch, in multiples of the batch's duration: `busy`
    /// while members use the database (or where the store cannot tell), `idle` once nobody else
    /// used it for `quiet`.
    package struct Pace: Sendable {
        package var busy: Double
        package var idle: Double
        package var quiet: Duration

        package init(busy: Double, idle: Double? = nil, quiet: Duration = .seconds(1)) {
            self.busy = busy
            self.idle = idle ?? busy
            self.quiet = quiet
        }

        package func factor(sinceLastUse: Duration?) -> Double {
            guard let sinceLastUse, sinceLastUse >= quiet else { return busy }
            return idle
        }
    }

    /// The batch size and pace for an engine. On SQLite a member's write waits for the batch
    /// holding the one writer (though it never queues behind one: batches yield), and the
    /// batches take CPU and disk from the members' requests, so batches are short (32 rows: about
    /// 2 ms) and the rest twice as long while members are active, a tenth as long while nobody
    /// else used the database for a second; PostgreSQL's batches hold up no other writer
    /// (BENCHMARKS.md).
    package static func tuning(for engine: DatabaseEngine) -> (batch: Int, pace: Pace) {
        engine == .sqlite ? (32, Pace(busy: 2, idle: 0.1)) : (200, Pace(busy: 1))
    }

    /// Progress reaches the requester at most this often (and at every step).
    static let progressInterval = Duration.milliseconds(250)

    /// One batch of `current`'s step (the job as this runner last saved it: it holds the claim,
    /// which the batch's transaction checks); the job after it, or nil when this runner no
    /// longer holds the job. `announced` is when progress last went to the requester.
    private func runBatch(_ current: DestructionJob, announced: inout ContinuousClock.Instant?) async throws -> DestructionJob? {
        let engine = store.engine
        let name = self.name
        let batch = self.batch
        let security = self.security
        let id = current.id
        // Blobs are removed before the batch that forgets them commits: a crash in between
        // removes them again (removal of a missing blob succeeds).
        var removing: [String] = []
        let now = clock.now()
        let until = now.adding(milliseconds: DestructionJobs.leaseMillis)
        if current.kind == .server {
            // The server's own secrets go first (again after a crash: a missing file is gone).
            if current.step == .files {
                for path in keyFiles where try ServerDestruction.destroyKeyFile(path) {
                    logger.notice("server key file destroyed", metadata: ["path": "\(path)"])
                }
            }
            if current.step == .finish {
                // Blobs no row named (a crash between storage and the database) go too.
                let left = try await blobs.listBlobs()
                try await VaultDestruction.remove(left.map { VaultDestruction.Blob(name: $0.name, kind: $0.kind == .file ? .file : .upload) }, from: blobs)
                // Deleted rows leave nothing behind in SQLite's file or its write-ahead log.
                try await store.compact()
            }
        }
        if current.step == .files {
            let pending = try await store.yieldingRead { db in try await DestructionJobs.blobs(job: id, limit: batch, in: db) }
            let toRemove = pending.map { VaultDestruction.Blob(name: $0.name, kind: VaultDestruction.Blob.Kind(rawValue: $0.kind) ?? .file) }
            try await VaultDestruction.remove(toRemove, from: blobs)
            removing = pending.map(\.name)
        }
        let removed = removing
        let outcome = try await store.yieldingWrite { db -> (DestructionJob, RecordedActivity)? in
            guard var job = try await DestructionJobs.hold(id, runner: name, engine: engine, in: db) else { return nil }
            var activity: [ActivityItem] = []
            var finished = false
            switch job.step {
            case .approval, .keys, .done, .cancelled:
                finished = true
            case .messages:
                let which: MessageDestruction.Messages = job.kind == .account ? .sentBy(job.subject) : .inConversation(job.subject)
                let deleted = try await MessageDestruction.delete(which, limit: batch, engine: engine, in: db)
                job.progress.messages += Int64(deleted)
                finished = deleted < batch
            case .files:
                job.progress.files += Int64(try await DestructionJobs.forgetBlobs(removed, job: id, in: db))
                finished = removed.count < batch
            case .records:
                finished = try await removeRecords(of: &job, limit: batch, in: db)
            case .finish:
                try await finish(job, activity: &activity, in: db)
                finished = true
            }
            if finished {
                job.step = job.step.next(for: job.kind)
                if job.isDone { job.finishedAt = now.millis }
            }
            job.updatedAt = now.millis
            try await DestructionJobs.save(job, leaseUntil: until, in: db)
            return (job, try await security.record(activity, at: now, engine: engine, in: db))
        }
        guard let (job, recorded) = outcome else { return nil }
        await security.publish(recorded, with: events)
        if job.step != current.step || announced.map({ ContinuousClock.now - $0 >= Self.progressInterval }) ?? true,
           let frame = try? EventFrame(type: .destructionProgress, data: DestructionView(job, at: now)) {
            await events.publish(live: [(frame, [job.requestedBy])])
            announced = ContinuousClock.now
        }
        if job.isDone {
            logger.info("destruction job finished", metadata: ["job": "\(job.id)", "kind": "\(job.kind.rawValue)"])
            // Nothing of what went stays in the database's own log either.
            do {
                try await store.flushLog(emptying: true)
            } catch {
                logger.warning("the database log could not be emptied after a destruction", metadata: ["error": "\(error)"])
            }
            if job.kind == .server {
                logger.notice(keyFiles.isEmpty
                    ? "the server was destroyed: delete AUTH_PEPPER and ACTIVITY_KEYS from your secret store, set new ones and restart every service"
                    : "the server was destroyed: start it again for an empty server with new keys")
                await serverDestroyed?()
            }
        }
        return job
    }

    /// The records step: true once nothing of it is left.
    private func removeRecords(of job: inout DestructionJob, limit: Int, in db: any SQLDatabase) async throws -> Bool {
        switch job.kind {
        case .account:
            let chain = try await ActivityLog.deleteChain(job.subject, limit: limit, in: db)
            let events = try await UserEventLog.deleteAll(of: job.subject, limit: limit, in: db)
            let sessions = try await AccountShredding.deleteSessions(userId: job.subject, limit: limit, in: db)
            let reads = try await MessageDestruction.deleteReadMarkers(ofUser: job.subject, in: db)
            job.progress.records += Int64(chain + events + sessions + reads)
            return chain < limit && events < limit && sessions < limit
        case .conversation:
            job.progress.records += Int64(try await CallDestruction.deleteCalls(ofConversation: job.subject, in: db))
            try await MessageDestruction.deleteConversation(job.subject, in: db)
            return true
        case .server:
            let tables = try await ServerDestruction.tables(engine: store.engine, in: db)
            try await ServerDestruction.deleteRows(of: tables, keepingJob: job.id, engine: store.engine, in: db)
            job.progress.records += Int64(tables.count)
            return true
        case .files, .links:
            return true
        }
    }

    /// The last step: presence of a destroyed account, and the record that it happened (for an
    /// account, only a tombstone in the server's chain: who and when, nothing else).
    private func finish(_ job: DestructionJob, activity: inout [ActivityItem], in db: any SQLDatabase) async throws {
        if job.kind == .account { try await PresenceDestruction.delete(userId: job.subject, in: db) }
        let chain = [.account, .server].contains(job.kind) ? ActivityLog.serverChain : job.requestedBy
        var details = ["kind": job.kind.rawValue, "job": job.id]
        if job.kind == .account { details["member"] = job.subject }
        activity.append(ActivityItem(chain: chain, kind: .destructionFinished, details: details))
    }
}

/// A job as its requester sees it (`GET /api/v1/destruction/{id}` and `destruction.progress`).
package struct DestructionView: Codable, Sendable, Equatable {
    package let id: String
    package let kind: String
    package let subject: String
    package let state: String
    package let step: String
    package let progress: DestructionProgress
    package let createdAt: Int64
    package let unreadableAt: Int64
    package let finishedAt: Int64
    package let url: String
    /// Who asked, and (a server's destruction) the second admin who approved it.
    package let requestedBy: String
    package let approvedBy: String?
    /// A server's destruction waiting for approval lapses then.
    package let approvalExpiresAt: Int64?

    /// The job as it stands at `now` (a request left unapproved past its time has lapsed).
    package init(_ job: DestructionJob, at now: Timestamp) {
        id = job.id
        kind = job.kind.rawValue
        subject = job.subject
        state = switch job.step {
        case .approval: job.approvalExpiresAt <= now.millis ? "lapsed" : "awaiting-approval"
        case .cancelled: "cancelled"
        case .done: "done"
        default: "running"
        }
        requestedBy = job.requestedBy
        approvedBy = job.approvedBy.isEmpty ? nil : job.approvedBy
        approvalExpiresAt = job.isAwaitingApproval ? job.approvalExpiresAt : nil
        step = job.step.rawValue
        progress = job.progress
        createdAt = job.createdAt
        unreadableAt = job.unreadableAt
        finishedAt = job.finishedAt
        url = "/api/v1/destruction/\(job.id)"
    }
}
