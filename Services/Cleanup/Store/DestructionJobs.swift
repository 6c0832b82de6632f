import CircleCore
import CircleStore
import Foundation
import SQLKit

/// What a destruction job destroys (ARCHITECTURE 8).
package enum DestructionKind: String, Codable, Sendable, CaseIterable {
    /// The requester's account: keys, sessions, messages, files, links, activity, presence.
    case account
    /// A conversation, for every member: messages, envelopes, ops, attachments, read markers.
    case conversation
    /// Every file of the requester (and its links).
    case files
    /// Every share link of the requester.
    case links
    /// The whole server, from an admin's browser (`circle destroy --everything` on the host
    /// does the same at once): every key, account, message and file.
    case server
}

/// Where a job is: the step it runs next. `keys` runs in the request's own transaction, so a job
/// is stored after it; the others run in bounded batches in the cleanup service. A server's
/// destruction requested while the server has another admin waits in `approval` (nothing
/// destroyed yet) until a second admin approves it, and ends as `cancelled` when refused or
/// left past `DestructionJobs.approvalMillis`.
package enum DestructionStep: String, Codable, Sendable {
    case approval, keys, messages, files, records, finish, done, cancelled

    /// The steps after `keys` that a job of `kind` runs, in order.
    package static func plan(_ kind: DestructionKind) -> [DestructionStep] {
        switch kind {
        case .account, .conversation: [.messages, .files, .records, .finish]
        case .files: [.files, .finish]
        case .links: [.finish]
        case .server: [.files, .records, .finish]
        }
    }

    /// The step after this one for `kind`.
    package func next(for kind: DestructionKind) -> DestructionStep {
        let steps = Self.plan(kind)
        guard let index = steps.firstIndex(of: self), index + 1 < steps.count else { return .done }
        return steps[index + 1]
    }
}

/// How far a job got, as the requester sees it ("keys destroyed · 1,204 of 3,530 messages").
package struct DestructionProgress: Codable, Sendable, Equatable {
    package var sessions: Int64 = 0
    package var envelopes: Int64 = 0
    package var links: Int64 = 0
    package var messages: Int64 = 0
    package var messagesTotal: Int64 = 0
    package var files: Int64 = 0
    package var filesTotal: Int64 = 0
    package var records: Int64 = 0

    package init() {}
}

/// One job as stored.
package struct DestructionJob: Sendable, Equatable {
    package let id: String
    package let kind: DestructionKind
    /// The account, conversation or owner it destroys.
    package let subject: String
    package let requestedBy: String
    package var step: DestructionStep
    package var progress: DestructionProgress
    package let createdAt: Int64
    package var updatedAt: Int64
    /// When the keys step committed: from then on nothing the server keeps opens the data.
    package let unreadableAt: Int64
    package var finishedAt: Int64
    /// The second admin who approved a server's destruction ("" for every other job).
    package var approvedBy: String

    package init(id: String, kind: DestructionKind, subject: String, requestedBy: String, step: DestructionStep, progress: DestructionProgress,
                 createdAt: Int64, updatedAt: Int64, unreadableAt: Int64, finishedAt: Int64, approvedBy: String = "") {
        self.id = id
        self.kind = kind
        self.subject = subject
        self.requestedBy = requestedBy
        self.step = step
        self.progress = progress
        self.createdAt = createdAt
        self.updatedAt = updatedAt
        self.unreadableAt = unreadableAt
        self.finishedAt = finishedAt
        self.approvedBy = approvedBy
    }

    /// Nothing more will happen to it: finished, or a request refused or left to lapse.
    package var isDone: Bool { step == .done || step == .cancelled }

    /// A server's destruction waiting for a second admin.
    package var isAwaitingApproval: Bool { step == .approval }

    /// When an unapproved request lapses.
    package var approvalExpiresAt: Int64 { createdAt + DestructionJobs.approvalMillis }
}

/// SQL for `destruction_jobs` and `destruction_blobs`; the cleanup service is their only writer.
package enum DestructionJobs {
    /// How long a runner holds a job without renewing its claim.
    package static let leaseMillis: Int64 = 30_000
    /// How long a server's destruction waits for a second admin's approval.
    package static let approvalMillis: Int64 = 15 * 60_000
    /// The subject of a server's destruction (at most one live: the unique index).
    package static let serverSubject = "server"

    static let encoder = JSONEncoder()
    static let decoder = JSONDecoder()

    package static func newId() -> String { Base64URL.encode(SecureRandom.bytes(16)) }

    /// Stores a job. One awaiting approval is never claimable (its lease never lapses) until
    /// `approve` starts it.
    package static func insert(_ job: DestructionJob, watchHash: String, in db: any SQLDatabase) async throws {
        let lease: Int64 = job.isAwaitingApproval ? .max : 0
        try await db.raw("""
            INSERT INTO destruction_jobs (id, kind, subject, requested_by, watch_hash, state, step, progress, created_at, updated_at,
                                          finished_at, unreadable_at, runner, lease_until)
            VALUES (\(bind: job.id), \(bind: job.kind.rawValue), \(bind: job.subject), \(bind: job.requestedBy), \(bind: watchHash),
                    \(bind: state(job)), \(bind: job.step.rawValue), \(bind: try progressText(job.progress)),
                    \(bind: job.createdAt), \(bind: job.updatedAt), \(bind: job.finishedAt), \(bind: job.unreadableAt), '', \(bind: lease))
            """).run()
    }

    /// The stored state: `done` for every job nothing more happens to (the live index and the
    /// claims skip those).
    static func state(_ job: DestructionJob) -> String {
        job.isDone ? "done" : job.isAwaitingApproval ? "awaiting" : "running"
    }

    /// Starts an approved server destruction: its keys step ran in this transaction; from now on
    /// any runner may claim it.
    package static func approve(_ job: DestructionJob, approverWatchHash: String, in db: any SQLDatabase) async throws {
        try await db.raw("""
            UPDATE destruction_jobs SET step = \(bind: job.step.rawValue), state = \(bind: state(job)), progress = \(bind: try progressText(job.progress)),
                   updated_at = \(bind: job.updatedAt), unreadable_at = \(bind: job.unreadableAt), approved_by = \(bind: job.approvedBy),
                   approver_watch_hash = \(bind: approverWatchHash), lease_until = 0
            WHERE id = \(bind: job.id) AND step = 'approval'
            """).run()
    }

    /// The server destructions waiting for approval (not lapsed) or running, for admins to see.
    package static func liveServerJobs(at now: Timestamp, in db: any SQLDatabase) async throws -> [DestructionJob] {
        try await db.raw("""
            SELECT * FROM destruction_jobs WHERE kind = 'server' AND state <> 'done'
              AND NOT (step = 'approval' AND created_at <= \(bind: now.millis - approvalMillis)) ORDER BY created_at DESC
            """).all().map(decode)
    }

    /// The unfinished job of this kind and subject, if any (at most one: a unique index).
    package static func live(kind: DestructionKind, subject: String, in db: any SQLDatabase) async throws -> DestructionJob? {
        try await db.raw("""
            SELECT * FROM destruction_jobs WHERE kind = \(bind: kind.rawValue) AND subject = \(bind: subject) AND state <> 'done'
            """).first().map(decode)
    }

    /// The job with the hashes of the tokens that may follow it (the requester's, and the
    /// approver's once a server's destruction was approved).
    package static func job(_ id: String, in db: any SQLDatabase) async throws -> (job: DestructionJob, watchHashes: [String])? {
        guard let row = try await db.raw("SELECT * FROM destruction_jobs WHERE id = \(bind: id)").first() else { return nil }
        let hashes = [try row.decode(column: "watch_hash", as: String.self), try row.decode(column: "approver_watch_hash", as: String.self)]
        return (try decode(row), hashes.filter { !$0.isEmpty })
    }

    /// The job, locked for this transaction (approving and cancelling decide on what they read).
    package static func lockedJob(_ id: String, engine: DatabaseEngine, in db: any SQLDatabase) async throws -> DestructionJob? {
        let lock = engine == .postgres ? " FOR UPDATE" : ""
        return try await db.raw("SELECT * FROM destruction_jobs WHERE id = \(bind: id)\(unsafeRaw: lock)").first().map(decode)
    }

    /// The requester's latest jobs, newest first.
    package static func jobs(requestedBy userId: String, limit: Int, in db: any SQLDatabase) async throws -> [DestructionJob] {
        try await db.raw("""
            SELECT * FROM destruction_jobs WHERE requested_by = \(bind: userId) ORDER BY created_at DESC, id LIMIT \(bind: limit)
            """).all().map(decode)
    }

    /// Whether some unfinished job is free to claim (a read, so an idle runner writes nothing).
    package static func anyClaimable(now: Timestamp, in db: any SQLDatabase) async throws -> Bool {
        try await db.raw("SELECT 1 AS one FROM destruction_jobs WHERE state <> 'done' AND lease_until < \(bind: now.millis) LIMIT 1").first() != nil
    }

    /// Claims the oldest unfinished job nobody holds (or whose holder stopped renewing) for
    /// `runner` until `until`; nil when there is none. Replicas on PostgreSQL skip rows another
    /// is claiming; SQLite writes are serial.
    package static func claim(runner: String, now: Timestamp, until: Timestamp, engine: DatabaseEngine, in db: any SQLDatabase) async throws -> DestructionJob? {
        let lock = engine == .postgres ? " FOR UPDATE SKIP LOCKED" : ""
        guard let row = try await db.raw("""
            SELECT id FROM destruction_jobs WHERE state <> 'done' AND lease_until < \(bind: now.millis)
            ORDER BY created_at, id LIMIT 1\(unsafeRaw: lock)
            """).first() else { return nil }
        let id = try row.decode(column: "id", as: String.self)
        return try await db.raw("""
            UPDATE destruction_jobs SET runner = \(bind: runner), lease_until = \(bind: until.millis) WHERE id = \(bind: id) RETURNING *
            """).first().map(decode)
    }

    /// The job, locked for this transaction, when `runner` still holds it (the batch's `save`
    /// renews the claim); nil when another runner took it over.
    package static func hold(_ id: String, runner: String, engine: DatabaseEngine, in db: any SQLDatabase) async throws -> DestructionJob? {
        let lock = engine == .postgres ? " FOR UPDATE" : ""
        guard let row = try await db.raw("""
            SELECT * FROM destruction_jobs WHERE id = \(bind: id) AND runner = \(bind: runner) AND state <> 'done'\(unsafeRaw: lock)
            """).first() else { return nil }
        return try decode(row)
    }

    /// Saves a job's step and progress (inside the transaction of the batch that made them).
    /// `leaseUntil` renews the claim of the runner that holds it (its batch), unless the job is done.
    package static func save(_ job: DestructionJob, leaseUntil: Timestamp? = nil, in db: any SQLDatabase) async throws {
        let lease = job.isDone ? 0 : leaseUntil?.millis
        try await db.raw("""
            UPDATE destruction_jobs SET step = \(bind: job.step.rawValue), state = \(bind: state(job)),
                   progress = \(bind: try progressText(job.progress)), updated_at = \(bind: job.updatedAt), finished_at = \(bind: job.finishedAt),
                   lease_until = COALESCE(\(bind: lease), lease_until)
            WHERE id = \(bind: job.id)
            """).run()
    }

    /// Lets another runner take the job at once (a runner stopping between batches).
    package static func release(_ id: String, runner: String, in db: any SQLDatabase) async throws {
        try await db.raw("UPDATE destruction_jobs SET lease_until = 0 WHERE id = \(bind: id) AND runner = \(bind: runner)").run()
    }

    // MARK: Blobs waiting for removal

    package static func queueBlobs(_ blobs: [(name: String, kind: String)], job: String, in db: any SQLDatabase) async throws {
        for chunk in stride(from: 0, to: blobs.count, by: 200).map({ Array(blobs[$0..<min($0 + 200, blobs.count)]) }) {
            var query = SQLQueryString("INSERT INTO destruction_blobs (job_id, name, kind) VALUES ")
            for (index, blob) in chunk.enumerated() {
                if index > 0 { query += ", " }
                query += "(\(bind: job), \(bind: blob.name), \(bind: blob.kind))"
            }
            query += " ON CONFLICT DO NOTHING"
            try await db.raw(query).run()
        }
    }

    package static func blobs(job: String, limit: Int, in db: any SQLDatabase) async throws -> [(name: String, kind: String)] {
        try await db.raw("SELECT name, kind FROM destruction_blobs WHERE job_id = \(bind: job) ORDER BY name LIMIT \(bind: limit)").all().map {
            (try $0.decode(column: "name", as: String.self), try $0.decode(column: "kind", as: String.self))
        }
    }

    /// Forgets removed blobs; returns how many rows went (none when another runner got there first).
    package static func forgetBlobs(_ names: [String], job: String, in db: any SQLDatabase) async throws -> Int {
        guard !names.isEmpty else { return 0 }
        var query = SQLQueryString("DELETE FROM destruction_blobs WHERE job_id = \(bind: job) AND name IN (")
        query.appendBinds(names)
        query += ") RETURNING name"
        return try await db.raw(query).all().count
    }

    // MARK: Coding

    static func progressText(_ progress: DestructionProgress) throws -> String {
        String(decoding: try encoder.encode(progress), as: UTF8.self)
    }

    static func decode(_ row: any SQLRow) throws -> DestructionJob {
        let kind = try row.decode(column: "kind", as: String.self)
        let step = try row.decode(column: "step", as: String.self)
        guard let kind = DestructionKind(rawValue: kind), let step = DestructionStep(rawValue: step) else {
            throw StoreError.corrupt("unknown destruction job kind or step")
        }
        return DestructionJob(
            id: try row.decode(column: "id", as: String.self), kind: kind,
            subject: try row.decode(column: "subject", as: String.self),
            requestedBy: try row.decode(column: "requested_by", as: String.self),
            step: step,
            progress: try decoder.decode(DestructionProgress.self, from: Data(try row.decode(column: "progress", as: String.self).utf8)),
            createdAt: try row.decode(column: "created_at", as: Int64.self),
            updatedAt: try row.decode(column: "updated_at", as: Int64.self),
            unreadableAt: try row.decode(column: "unreadable_at", as: Int64.self),
            finishedAt: try row.decode(column: "finished_at", as: Int64.self),
            approvedBy: try row.decode(column: "approved_by", as: String.self)
        )
    }
}
