
/// Access levels of a vault file (ARCHITECTURE 5).
package enum VaultLevel: String, Sendable, Codable, CaseIterable {
    case `private`, conversation, `public`
}
