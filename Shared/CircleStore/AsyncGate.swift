import DequeModule

/// A first-come, first-served lock for async code: one holder at a time, others wait in order,
/// except that callers who yield (bulk jobs) wait behind every caller who does not.
actor AsyncGate {
    private var held = false
    private var waiters: Deque<CheckedContinuation<Void, Never>> = []
    private var yielding: Deque<CheckedContinuation<Void, Never>> = []
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
        if let next = waiters.popFirst() ?? yielding.popFirst() {
            next.resume()
        } else {
            held = false
        }
    }

    /// Runs `body` while holding the gate; `yielding`, only once no caller who does not yield
    /// is waiting.
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
