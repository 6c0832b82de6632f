import Configuration
import Foundation

/// What the signaling service is configured with: ring time and the TURN server it hands out
/// credentials for (ARCHITECTURE 6).
public struct CallSettings: Sendable, Equatable {
    /// How long a call rings before it is missed.
    public var ringTimeout: Duration
    /// The TURN REST API secret shared with coturn (`static-auth-secret`); nil: no TURN.
    public var turnSecret: [UInt8]?
    /// `turn:`/`turns:` addresses given credentials, and `stun:` addresses given as they are.
    public var turnURLs: [String]
    /// How long TURN credentials last.
    public var turnTTL: Duration

    public init(ringTimeout: Duration = .seconds(45), turnSecret: [UInt8]? = nil, turnURLs: [String] = [], turnTTL: Duration = .seconds(12 * 3600)) {
        self.ringTimeout = ringTimeout
        self.turnSecret = turnSecret
        self.turnURLs = turnURLs
        self.turnTTL = turnTTL
    }

    /// Whether a TURN server is configured.
    public var hasTURN: Bool { turnSecret != nil && turnURLs.contains { !$0.hasPrefix("stun:") } }
}

extension SettingsLoader {
    /// Reads `calls.ringTimeout` and the `turn.*` keys.
    public static func loadCalls(from reader: ConfigReader) throws -> CallSettings {
        func string(_ key: CircleConfigKey) -> String? {
            reader.string(forKey: ConfigKey(key.rawValue), isSecret: key.isSecret)?.trimmingCharacters(in: .whitespaces).nilIfEmpty
        }
        var settings = CallSettings()
        if let text = string(.callsRingTimeout) {
            guard let duration = parseDuration(text), duration >= .seconds(1), duration <= .seconds(300) else {
                throw ConfigError(.callsRingTimeout, "must be a duration from 1s to 5m such as 45s (got \(text))")
            }
            settings.ringTimeout = duration
        }
        if let text = string(.turnSecret) {
            guard text.utf8.count >= 16 else {
                throw ConfigError(.turnSecret, "must be at least 16 characters (the static-auth-secret of coturn, for example from `openssl rand -hex 32`)")
            }
            settings.turnSecret = Array(text.utf8)
        }
        if let text = string(.turnURLs) {
            for url in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !url.isEmpty {
                guard ["turn:", "turns:", "stun:", "stuns:"].contains(where: { url.hasPrefix($0) }), url.count > 6, url.count <= 200,
                      !url.contains(where: { $0.isWhitespace || $0 == "\"" }) else {
                    throw ConfigError(.turnURLs, "must be turn:, turns: or stun: addresses separated by commas, as turn:turn.example.org:3478?transport=udp (got \(url))")
                }
                settings.turnURLs.append(url)
            }
        }
        if settings.turnSecret != nil, !settings.turnURLs.contains(where: { $0.hasPrefix("turn") }) {
            throw ConfigError(.turnURLs, "must name at least one turn: address when turn.secret is set")
        }
        if settings.turnSecret == nil, settings.turnURLs.contains(where: { $0.hasPrefix("turn") }) {
            throw ConfigError(.turnSecret, "is required for the turn: addresses in turn.urls (coturn's static-auth-secret)")
        }
        if let text = string(.turnTTL) {
            guard let duration = parseDuration(text), duration >= .seconds(60), duration <= .seconds(7 * 86_400) else {
                throw ConfigError(.turnTTL, "must be a duration from 1m to 7d such as 12h (got \(text))")
            }
            settings.turnTTL = duration
        }
        return settings
    }
}
