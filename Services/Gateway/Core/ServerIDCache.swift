import CircleStore
import GatewayStore

/// The server id, loaded once.
package actor ServerIDCache {
    private let store: any DatabaseStore
    private var cached: String?

    package init(store: any DatabaseStore) { self.store = store }

    package func value() async throws -> String {
        if let cached { return cached }
        let id = try await ServerIdentity.load(from: store)
        cached = id
        return id
    }
}
