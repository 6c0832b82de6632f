/// The bounds calls live within (ARCHITECTURE 6, 9): each names what it protects.
package enum CallLimits {
    /// Members one call rings at most; in a larger conversation the rest may join without being rung.
    package static let maximumRung = 50
    /// Devices in one mesh call: each sends its media to every other, so a laptop's uplink is the bound.
    package static let maximumMeshDevices = 4
    /// Viewers of one broadcast while the broadcaster sends to each directly (no SFU yet).
    package static let maximumBroadcastViewers = 8
    /// Signals one device may relay per ten seconds: an offer, an answer and a few dozen ICE
    /// candidates per connection, with room for restarts and media changes.
    package static let signalsPerTenSeconds = 400
    /// A joined device that shows nothing (no heartbeat, every 10 s) for this long has dropped out.
    package static let silentDevice: Int64 = 30_000
    /// Calls one history page lists at most.
    package static let maximumHistoryPage = 100
}
