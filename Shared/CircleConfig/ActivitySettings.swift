import CircleCore
import Configuration
import Foundation

/// The security activity log's configuration: the keys that seal IP addresses and user agents
/// (the first seals, every one opens what it sealed) and how long entries are kept.
public struct ActivitySettings: Sendable {
    public struct Key: Sendable, Equatable {
        public let id: String
        public let bytes: [UInt8]

        public init(id: String, bytes: [UInt8]) {
            self.id = id
            self.bytes = bytes
        }
    }

    public var keys: [Key]
    public var retention: Duration

    public init(keys: [Key], retention: Duration = .seconds(365 * 86_400)) {
        precondition(!keys.isEmpty, "the activity log needs a key")
        self.keys = keys
        self.retention = retention
    }
}

extension SettingsLoader {
    /// Reads the activity keys and retention. Without `activity.keys` the embedded mode keeps a
    /// generated key in `activity.keyFile`; the scaled mode requires them, since every replica
    /// that records or reads activity must share them.
    public static func loadActivity(from reader: ConfigReader, settings: CircleSettings) throws -> ActivitySettings {
        try loadActivity(from: reader, requireKeys: settings.isScaled, createKeyFile: true)
    }

    /// The same, for a command that reads a database of either mode: without `activity.keys` it
    /// opens the embedded key file if there is one (`createKeyFile` false: it never makes one).
    public static func loadActivity(from reader: ConfigReader, requireKeys: Bool, createKeyFile: Bool) throws -> ActivitySettings {
        func string(_ key: CircleConfigKey) -> String? {
            reader.string(forKey: ConfigKey(key.rawValue), isSecret: key.isSecret)?.trimmingCharacters(in: .whitespaces).nilIfEmpty
        }
        var keys: [ActivitySettings.Key] = []
        if let text = string(.activityKeys) {
            for item in text.split(separator: ",") {
                let parts = item.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard parts.count == 2, !parts[0].isEmpty, parts[0].count <= 32, parts[0].allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }),
                      let bytes = Data(base64Encoded: parts[1]) ?? Base64URL.decode(parts[1]), bytes.count == 32 else {
                    throw ConfigError(.activityKeys, "must be id:base64 pairs separated by commas, each key 32 bytes (for example k1:$(openssl rand -base64 32))")
                }
                guard !keys.contains(where: { $0.id == parts[0] }) else { throw ConfigError(.activityKeys, "names the key \(parts[0]) twice") }
                keys.append(.init(id: parts[0], bytes: Array(bytes)))
            }
        } else if requireKeys {
            throw ConfigError(.activityKeys, "is required in the scaled mode: every replica must share them (set ACTIVITY_KEYS)")
        } else {
            let path = string(.activityKeyFile) ?? "./data/activity.key"
            guard createKeyFile || FileManager.default.fileExists(atPath: path) else {
                throw ConfigError(.activityKeys, "no activity keys: set ACTIVITY_KEYS as the services have it, or run where \(path) is")
            }
            keys = [.init(id: "local", bytes: try loadOrCreateKeyFile(path, key: .activityKeyFile))]
        }
        var retention: Duration = .seconds(365 * 86_400)
        if let text = string(.activityRetention) {
            guard let duration = parseDuration(text), duration >= .seconds(60) else {
                throw ConfigError(.activityRetention, "must be a duration of at least a minute such as 90s, 30m, 12h or 365d (got \(text))")
            }
            retention = duration
        }
        return ActivitySettings(keys: keys, retention: retention)
    }
}
