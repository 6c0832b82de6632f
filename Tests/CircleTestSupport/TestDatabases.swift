import CircleStore
import Foundation
import Logging

/// Opens a fresh database of either engine for one test.
public enum TestDatabases {
    public struct Opened: Sendable {
        public let store: any DatabaseStore
        let close: @Sendable () async -> Void
        public func close() async { await close() }
    }

    public static func open(_ engine: DatabaseEngine, suite: String) async throws -> Opened {
        let logger = TestServers.quietLogger
        switch engine {
        case .sqlite:
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("circle-store-\(UUID().uuidString)")
            let store = try await SQLiteStore.open(path: folder.appendingPathComponent("test.sqlite").path, logger: logger)
            return Opened(store: store) {
                try? await store.close()
                try? FileManager.default.removeItem(at: folder)
            }
        case .postgres:
            let settings = try await TestServers.freshPostgresDatabase(suite: suite)
            let store = try PostgresStore(settings: settings, logger: logger)
            let runner = Task { try await store.run() }
            return Opened(store: store) { runner.cancel(); _ = await runner.result }
        }
    }
}

