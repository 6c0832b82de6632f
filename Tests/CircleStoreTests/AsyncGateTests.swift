@testable import CircleStore
import Testing

/// The gate SQLite's callers queue at.
@Suite("Async gate")
struct AsyncGateTests {
    /// Who held the gate, in order.
    actor Order {
        var names: [String] = []
        func add(_ name: String) { names.append(name) }
    }

    /// Waits until `count` callers wait at the gate.
    static func waitFor(_ count: Int, at gate: AsyncGate) async throws {
        let deadline = ContinuousClock.now + .seconds(5)
        while await gate.waiting < count {
            guard ContinuousClock.now < deadline else { throw CancellationError() }
            await Task.yield()
        }
    }

    @Test("callers go in order of arrival, except that bulk work (yielding) goes after every other caller, and only the others count as use")
    func yieldingGoesLast() async throws {
        let gate = AsyncGate()
        let order = Order()
        await gate.acquire()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await gate.withGate(yielding: true) { await order.add("bulk") } }
            try await Self.waitFor(1, at: gate)
            group.addTask { try await gate.withGate { await order.add("first member") } }
            try await Self.waitFor(2, at: gate)
            group.addTask { try await gate.withGate { await order.add("second member") } }
            try await Self.waitFor(3, at: gate)
            await gate.release()
            try await group.waitForAll()
        }
        #expect(await order.names == ["first member", "second member", "bulk"])
        let used = try #require(await gate.lastUse)
        try await gate.withGate(yielding: true) {}
        #expect(await gate.lastUse == used, "bulk work is not use")
        try await gate.withGate {}
        #expect(try #require(await gate.lastUse) > used)
        #expect(await gate.waiting == 0)
    }

    @Test("a steady stream of other callers does not starve bulk work: it goes after at most yieldingPatience of them")
    func yieldingIsNotStarved() async throws {
        let gate = AsyncGate()
        let order = Order()
        let others = AsyncGate.yieldingPatience + 4
        await gate.acquire()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await gate.withGate(yielding: true) { await order.add("bulk") } }
            try await Self.waitFor(1, at: gate)
            for index in 0..<others {
                group.addTask { try await gate.withGate { await order.add("member \(index)") } }
                try await Self.waitFor(index + 2, at: gate)
            }
            await gate.release()
            try await group.waitForAll()
        }
        let names = await order.names
        #expect(names.firstIndex(of: "bulk") == AsyncGate.yieldingPatience)
        #expect(names.filter { $0 != "bulk" } == (0..<others).map { "member \($0)" })
    }
}
