import CircleBus
import CircleCore
import CircleServerTestSupport
import CircleTestSupport
import GatewayCore
import PresenceStore
import Testing

/// What a gateway tells presence about its sockets (`presence.connections`).
@Suite("Connection reports")
struct ConnectionReporterTests {
    @Test("renewals on time are plain leases; a renewal made after the last lease ran out lists every open socket again (presence may have dropped them)")
    func lateRenewalLists() async throws {
        let bus = LocalBus()
        try await bus.createGroup(stream: ConnectionReport.stream, group: "test")
        let clock = StepClock()
        let reporter = ConnectionReporter(bus: bus, clock: clock, logger: TestServers.quietLogger, lease: .seconds(60), gatewayId: "g1")
        await reporter.renew()
        await reporter.opened(socket: "1", user: "ana")
        await reporter.flush()
        clock.advance(seconds: 20)
        await reporter.renew()
        clock.advance(seconds: 39)
        await reporter.renew()
        // The lease written at 59 s runs to 119 s; this renewal comes at 120 s.
        clock.advance(seconds: 61)
        await reporter.renew()
        clock.advance(seconds: 20)
        await reporter.renew()
        let entries = try await bus.readGroup(stream: ConnectionReport.stream, group: "test", consumer: "c", count: 100, block: nil)
        let reports = entries.compactMap { ConnectionReport(fields: $0.fields) }
        #expect(reports.map { $0.fields["op"] ?? "" } == ["sync", "open", "lease", "lease", "sync", "lease"])
        guard case .sync(_, let until, let sockets) = reports[4] else { Issue.record("no sync"); return }
        #expect(sockets.map(\.socket) == ["1"] && sockets.map(\.user) == ["ana"])
        #expect(until == clock.now().millis - 20_000 + 60_000)
    }
}
