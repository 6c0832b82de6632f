import CircleBus
import CircleCore
import CircleEvents
import CircleServerTestSupport
import CircleTestSupport
import GatewayCore
import PresenceCore
import PresenceStore
import Testing

/// A gateway's lease as presence judges it: not by the clock alone while the reports wait
/// unread, and a gateway dropped anyway lists its sockets again once presence hears from it.
@Suite("Gateway leases")
struct GatewayLeaseTests {
    @Test("a lease waiting unread keeps the sweeper from dropping the gateway; a gateway dropped and then heard from is asked for its sockets and lists them")
    func droppedGatewayListsAgain() async throws {
        try await ServerHarness(.sqlite).run { api, store in
            let ben = try await Member.register("ben", on: api)
            let logger = TestServers.quietLogger
            let bus = LocalBus()
            // Entry ids start with when the entry was added, in milliseconds since 1970, as Redis's.
            let probe = try await bus.add(to: "probe", fields: ["op": "probe"], maxLength: nil)
            #expect(abs(try #require(ConnectionReport.addedAt(entryId: probe)) - Timestamp.now().millis) < 5_000)
            try await bus.createGroup(stream: ConnectionReport.stream, group: ConnectionReport.group)
            // Presence's clock moves; the gateway's stays where its leases are on time.
            let start = Timestamp.now()
            let presenceClock = StepClock(start)
            let presence = PresenceService(store: store, events: EventPublisher(store: store, bus: bus, logger: logger), clock: presenceClock, logger: logger)
            let backlog = ReportBacklog()
            let consumer = ConnectionConsumer(store: store, bus: bus, presence: presence, clock: presenceClock, logger: logger, backlog: backlog)
            let sweeper = PresenceSweeper(store: store, presence: presence, clock: presenceClock, logger: logger, backlog: backlog)
            let reporter = ConnectionReporter(bus: bus, clock: StepClock(start), logger: logger, lease: .seconds(60), gatewayId: "g-lease")

            /// Reads and handles the reports until one with `op` was handled; returns the ops read.
            @Sendable func handle(until op: String) async throws -> [String] {
                var ops: [String] = []
                let deadline = ContinuousClock.now + .seconds(10)
                while !ops.contains(op), ContinuousClock.now < deadline {
                    let entries = try await bus.readGroup(stream: ConnectionReport.stream, group: ConnectionReport.group, consumer: "t", count: 100, block: .seconds(1))
                    try await consumer.handle(entries)
                    try await bus.ack(stream: ConnectionReport.stream, group: ConnectionReport.group, ids: entries.map(\.id))
                    ops += entries.compactMap { $0.fields["op"] }
                }
                return ops
            }
            @Sendable func online() async throws -> Bool {
                try await store.read { db in try await PresenceRepository.hasOpenSocket(ben.id, in: db) }
            }

            try await withThrowingTaskGroup(of: Void.self) { group throws in
                group.addTask { try await reporter.run() }
                #expect(try await handle(until: "sync") == ["sync"])
                await reporter.opened(socket: "s1", user: ben.id)
                #expect(try await handle(until: "open") == ["open"])
                #expect(try await online())

                // Two minutes on, the lease (60 s) has lapsed by the clock; but the consumer's
                // last read was full and its newest entry was added 30 s after the start, so a
                // renewal may wait unread: nothing is dropped.
                presenceClock.advance(seconds: 120)
                backlog.read(start.millis + 30_000, at: presenceClock.now())
                #expect(try await sweeper.sweep().isEmpty)
                #expect(try await online())

                // Read to the end and still no renewal: the gateway is taken for gone.
                backlog.read(nil, at: presenceClock.now())
                #expect(try await sweeper.sweep() == [ben.id])
                #expect(try await !online())

                // The gateway was only slow: its next lease reaches presence, which asks it for
                // its sockets, and its listing brings the member back.
                await reporter.renew()
                #expect(try await handle(until: "sync") == ["lease", "sync"])
                #expect(try await online())
                // Known again: the next lease is taken as it is.
                await reporter.renew()
                #expect(try await handle(until: "lease") == ["lease"])
                #expect(try await online())
                group.cancelAll()
            }
        }
    }
}
