import CircleCore
import Configuration
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Who may register.
public enum RegistrationPolicy: String, Sendable, CaseIterable {
    case invite, open
}

/// What the gateway (accounts, sessions, the realtime socket) is configured with.
public struct GatewaySettings: Sendable, Equatable {
    /// The server secret behind login verifiers and bundle wraps.
    public var pepper: [UInt8]
    public var registration: RegistrationPolicy
    public var publicURL: String
    public var trustForwardedFor: Bool
    /// A folder to serve the browser client from (development); nil serves the built-in copy.
    public var webRoot: String?
    /// How often each realtime socket is pinged.
    public var socketPingInterval: Duration
    /// How long a realtime socket may stay silent (no frame, not even a pong) before it is closed.
    public var socketSilenceLimit: Duration
    /// How long presence trusts this gateway's list of sockets without a renewal.
    public var presenceLease: Duration
    /// Realtime sockets one session, and one member, may hold on one gateway (a new one past
    /// either closes the oldest).
    public var socketsPerSession: Int
    public var socketsPerUser: Int

    public init(
        pepper: [UInt8], registration: RegistrationPolicy = .invite, publicURL: String,
        trustForwardedFor: Bool = false, webRoot: String? = nil,
        socketPingInterval: Duration = .seconds(25), socketSilenceLimit: Duration = .seconds(60), presenceLease: Duration = .seconds(60),
        socketsPerSession: Int = 8, socketsPerUser: Int = 32
    ) {
        self.presenceLease = presenceLease
        self.socketsPerSession = socketsPerSession
        self.socketsPerUser = socketsPerUser
        self.pepper = pepper
        self.registration = registration
        self.publicURL = publicURL
        self.trustForwardedFor = trustForwardedFor
        self.webRoot = webRoot
        self.socketPingInterval = socketPingInterval
        self.socketSilenceLimit = socketSilenceLimit
    }
}

extension SettingsLoader {
    /// Reads the gateway's keys. Without `auth.pepper`, the embedded mode keeps a generated pepper
    /// in `auth.pepperFile`; the scaled mode requires it, since every replica must share it.
    public static func loadGateway(from reader: ConfigReader, settings: CircleSettings) throws -> GatewaySettings {
        func string(_ key: CircleConfigKey) -> String? {
            reader.string(forKey: ConfigKey(key.rawValue), isSecret: key.isSecret)?.trimmingCharacters(in: .whitespaces).nilIfEmpty
        }
        let pepper: [UInt8]
        if let text = string(.authPepper) {
            guard let bytes = Data(base64Encoded: text) ?? Base64URL.decode(text), bytes.count >= 32 else {
                throw ConfigError(.authPepper, "must be base64 of at least 32 random bytes (for example from `openssl rand -base64 32`)")
            }
            pepper = Array(bytes)
        } else if settings.isScaled {
            throw ConfigError(.authPepper, "is required in the scaled mode: every replica must share it (set AUTH_PEPPER)")
        } else {
            pepper = try loadOrCreateKeyFile(string(.authPepperFile) ?? "./data/pepper.key", key: .authPepperFile)
        }
        let registrationText = string(.authRegistration) ?? "invite"
        guard let registration = RegistrationPolicy(rawValue: registrationText.lowercased()) else {
            throw ConfigError(.authRegistration, "must be invite or open (got \(registrationText))")
        }
        let publicURL = string(.httpPublicURL) ?? "http://localhost:\(settings.http.port)"
        guard let url = URL(string: publicURL), ["http", "https"].contains(url.scheme ?? ""), url.host != nil else {
            throw ConfigError(.httpPublicURL, "must be an http:// or https:// address (got \(publicURL))")
        }
        let trustText = string(.httpTrustForwardedFor) ?? "false"
        guard let trust = Bool(trustText.lowercased()) else {
            throw ConfigError(.httpTrustForwardedFor, "must be true or false (got \(trustText))")
        }
        let pingText = string(.socketPingInterval) ?? "25s"
        guard let ping = parseDuration(pingText), ping >= .seconds(1) else {
            throw ConfigError(.socketPingInterval, "must be a duration of at least a second such as 25s or 1m (got \(pingText))")
        }
        let silenceText = string(.socketSilenceLimit) ?? "60s"
        guard let silence = parseDuration(silenceText), silence > ping else {
            throw ConfigError(.socketSilenceLimit, "must be a duration longer than socket.pingInterval such as 60s or 2m (got \(silenceText))")
        }
        let leaseText = string(.presenceLease) ?? "60s"
        guard let lease = parseDuration(leaseText), lease >= .seconds(3), lease <= .seconds(3600) else {
            throw ConfigError(.presenceLease, "must be a duration from 3s to 1h such as 60s (got \(leaseText))")
        }
        func count(_ key: CircleConfigKey, default value: Int) throws -> Int {
            guard let text = string(key) else { return value }
            guard let number = Int(text), (1...100_000).contains(number) else { throw ConfigError(key, "must be a whole number from 1 to 100000 (got \(text))") }
            return number
        }
        let perSession = try count(.socketMaxPerSession, default: 8)
        let perUser = try count(.socketMaxPerUser, default: 32)
        guard perUser >= perSession else { throw ConfigError(.socketMaxPerUser, "must be at least socket.maxPerSession (\(perSession))") }
        return GatewaySettings(
            pepper: pepper, registration: registration,
            publicURL: publicURL.hasSuffix("/") ? String(publicURL.dropLast()) : publicURL,
            trustForwardedFor: trust,
            webRoot: string(.webRoot),
            socketPingInterval: ping, socketSilenceLimit: silence, presenceLease: lease,
            socketsPerSession: perSession, socketsPerUser: perUser
        )
    }

    /// Reads `events.retention` in seconds.
    public static func loadEventRetention(from reader: ConfigReader) throws -> Duration {
        let text = reader.string(forKey: ConfigKey(CircleConfigKey.eventsRetention.rawValue))?.trimmingCharacters(in: .whitespaces).nilIfEmpty ?? "7d"
        guard let duration = parseDuration(text), duration >= .seconds(60) else {
            throw ConfigError(.eventsRetention, "must be a duration of at least a minute such as 90s, 30m, 12h or 7d (got \(text))")
        }
        return duration
    }

    /// Parses `90s`, `30m`, `12h`, `7d`.
    public static func parseDuration(_ text: String) -> Duration? {
        guard let unit = text.last, let number = Int64(text.dropLast()), number >= 0 else { return nil }
        switch unit {
        case "s": return .seconds(number)
        case "m": return .seconds(number * 60)
        case "h": return .seconds(number * 3600)
        case "d": return .seconds(number * 86400)
        default: return nil
        }
    }

    /// Reads a secret kept in a file, or creates the file with 32 random bytes (mode 0600).
    static func loadOrCreateKeyFile(_ path: String, key: CircleConfigKey) throws -> [UInt8] {
        if let data = FileManager.default.contents(atPath: path) {
            guard data.count >= 32 else { throw ConfigError(key, "\(path) holds fewer than 32 bytes") }
            return Array(data)
        }
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
        do {
            try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        } catch {
            throw ConfigError(key, "cannot create \(folder.path): \(error.localizedDescription)")
        }
        let bytes = SecureRandom.bytes(32)
        // Created with 0600 from the start, and never overwritten (O_EXCL).
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else { throw ConfigError(key, "cannot create \(path) (errno \(errno))") }
        defer { close(fd) }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, 32) }
        guard written == 32, fsync(fd) == 0 else { throw ConfigError(key, "cannot write \(path)") }
        return bytes
    }
}

extension String {
    var nilIfEmpty: String? { isEmpty ? nil : self }
}
