import CircleCore
import CircleStore
import Crypto
import Synchronization
import VaultStore

/// The incremental SHA-256 of uploads this process has seen from their first byte, so finishing
/// an upload does not read it back. After a restart, or when another replica took part, the hash
/// is computed from storage instead; so an entry not touched for `idle` (an abandoned or expired
/// upload) is dropped, and at most `capacity` are kept.
package actor UploadHashers {
    private struct Entry {
        var offset: Int64
        var hasher: SHA256
        var touched: ContinuousClock.Instant
    }

    private var running: [String: Entry] = [:]
    private let idle: Duration
    private let capacity: Int
    private var lastSweep = ContinuousClock.now

    package init(idle: Duration = .seconds(600), capacity: Int = 4096) {
        self.idle = idle
        self.capacity = capacity
    }

    package func start(_ id: String) { keep(id, Entry(offset: 0, hasher: SHA256(), touched: .now)) }

    /// The hasher to continue from `offset`, if this process holds one that is there.
    package func take(_ id: String, at offset: Int64) -> SHA256? {
        guard let entry = running.removeValue(forKey: id), entry.offset == offset else { return nil }
        return entry.hasher
    }

    package func put(_ id: String, _ hasher: SHA256, at offset: Int64) { keep(id, Entry(offset: offset, hasher: hasher, touched: .now)) }

    package func forget(_ id: String) { running[id] = nil }

    /// How many hashes are held (for tests and metrics).
    package var count: Int { running.count }

    private func keep(_ id: String, _ entry: Entry) {
        running[id] = entry
        let now = ContinuousClock.now
        guard running.count > capacity || now - lastSweep >= min(idle, .seconds(30)) else { return }
        lastSweep = now
        running = running.filter { now - $0.value.touched < idle }
        if running.count > capacity {
            for (id, _) in running.sorted(by: { $0.value.touched < $1.value.touched }).prefix(running.count - capacity) { running[id] = nil }
        }
    }
}

/// A writer's hold on one upload: its token fences every change it makes to the upload's row.
package struct UploadLease: Sendable {
    package let upload: String
    package let token: String
    private let lostFlag = LostFlag()

    init(upload: String) {
        self.upload = upload
        token = Hex.encode(SecureRandom.bytes(16))
    }

    /// True once a renewal found the lease taken over (the holder stalled past its term).
    package var lost: Bool { lostFlag.value.withLock { $0 } }
    func markLost() { lostFlag.value.withLock { $0 = true } }

    private final class LostFlag: Sendable {
        let value = Mutex(false)
    }
}

/// One writer per upload across every vault replica: a lease on the upload's row, renewed while
/// the request streams, released when it ends. A second writer gets `busy`; a crashed writer's
/// lease lapses after `term`. The lease's token guards moving the offset and finishing, and a
/// writer whose lease was lost stops reading its body at the next block.
package struct UploadLeases: Sendable {
    package let store: any DatabaseStore
    package let clock: any WallClock
    package let term: Duration

    package init(store: any DatabaseStore, clock: any WallClock, term: Duration = .seconds(30)) {
        self.store = store
        self.clock = clock
        self.term = term
    }

    private var termMillis: Int64 { term.milliseconds }

    /// Runs `body` holding the lease on `owner`'s upload `id`, released before this returns (so
    /// the client's next request finds it free); `busy` when someone holds it.
    package func holding<T: Sendable>(
        _ id: String, owner: String, busy: @autoclosure () -> any Error, _ body: (UploadLease) async throws -> T
    ) async throws -> T {
        let lease = UploadLease(upload: id)
        let now = clock.now().millis
        let taken = try await store.write { db in
            try await VaultRepository.lease(upload: id, owner: owner, token: lease.token, until: now + termMillis, now: now, in: db)
        }
        guard taken else { throw busy() }
        do {
            let result = try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { await renew(lease) }
                defer { group.cancelAll() }
                return try await body(lease)
            }
            await release(lease)
            return result
        } catch {
            await release(lease)
            throw error
        }
    }

    /// Extends the lease every third of its term until cancelled or lost.
    private func renew(_ lease: UploadLease) async {
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: term / 3)
                let until = clock.now().millis + termMillis
                let held = try await store.write { db in try await VaultRepository.renew(upload: lease.upload, token: lease.token, until: until, in: db) }
                if !held {
                    lease.markLost()
                    return
                }
            } catch is CancellationError {
                return
            } catch {
                // The database did not answer: try again at the next beat; the lease is still
                // ours until its term, and fencing refuses our writes if it lapses meanwhile.
            }
        }
    }

    private func release(_ lease: UploadLease) async {
        _ = try? await store.write { db in try await VaultRepository.releaseLease(upload: lease.upload, token: lease.token, in: db) }
    }
}

/// An upload's request body that ends with `UploadLease.Lost` once its lease is lost.
package struct LeasedBody<Base: AsyncSequence & Sendable>: AsyncSequence, Sendable where Base.Element: Sendable {
    package typealias Element = Base.Element
    let base: Base
    let lease: UploadLease

    package init(_ base: Base, lease: UploadLease) {
        self.base = base
        self.lease = lease
    }

    package struct AsyncIterator: AsyncIteratorProtocol {
        var base: Base.AsyncIterator
        let lease: UploadLease

        package mutating func next() async throws -> Element? {
            guard !lease.lost else { throw LeaseLost() }
            return try await base.next()
        }
    }

    package func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: base.makeAsyncIterator(), lease: lease) }
}

/// The writer's lease went to another writer while it was receiving.
package struct LeaseLost: Error {}
