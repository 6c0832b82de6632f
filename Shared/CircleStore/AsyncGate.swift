import DequeModule

/// A first-come, first-served lock for async code: one holder at a time, others wait in order,
/// except that callers who yield (background work) wait behind callers who do not, though never
/// behind more than `yieldingPatience` of them in a row (a steady load does not starve them).
actor AsyncGate {
    private var held = false
    private var waiters: Deque<CheckedContinuation<Void, Never>> = []
    private var yielding: Deque<CheckedContinuation<Void, Never>> = []
    /// Callers who do not yield let in while a yielding one waited, since one last got in.
    private var passedOver = 0
    static let yieldingPatience = 16
    /// When a caller who does not yield last let the gate go.
    private(set) var lastUse: ContinuousClock.Instant?

    /// How many callers wait.
    var waiting: Int { waiters.count + yielding.count }

    func acquire(yielding yields: Bool = false) async {
        if !held {
            held = true
            return
        }
        await withCheckedContinuation { continuation in
            if yields { yielding.append(continuation) } else { waiters.append(continuation) }
        }
    }

    func release(yielding yields: Bool = false) {
        if !yields { lastUse = .now }
        if !yielding.isEmpty, waiters.isEmpty || passedOver >= Self.yieldingPatience {
            passedOver = 0
            yielding.removeFirst().resume()
        } else if let next = waiters.popFirst() {
            if !yielding.isEmpty { passedOver += 1 }
            next.resume()
        } else {
            held = false
        }
    }

    /// Runs `body` while holding the gate; `yielding`, behind the callers who do not yield (see
    /// the type).
    nonisolated func withGate<R: Sendable>(yielding: Bool = false, _ body: () async throws -> R) async throws -> R {
        await acquire(yielding: yielding)
        do {
            let result = try await body()
            await release(yielding: yielding)
            return result
        } catch {
            await release(yielding: yielding)
            throw error
        }
    }
}
