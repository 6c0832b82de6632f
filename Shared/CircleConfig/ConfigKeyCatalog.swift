/// Every configuration key Circle reads, with its documentation.
///
/// The same key is `--http-port` on the command line, `HTTP_PORT` in the environment and
/// `http.port` inside the code; the README's table and each executable's `--help` come from here.
public enum CircleConfigKey: String, CaseIterable, Sendable {
    case httpHost = "http.host"
    case httpPort = "http.port"
    case httpBodyLimit = "http.bodyLimit"
    case postgresURL = "postgres.url"
    case postgresPoolSize = "postgres.poolSize"
    case redisURL = "redis.url"
    case redisPrefix = "redis.prefix"
    case sqlitePath = "sqlite.path"
    case logLevel = "log.level"
    case logFormat = "log.format"
    case httpPublicURL = "http.publicURL"
    case httpTrustForwardedFor = "http.trustForwardedFor"
    case authPepper = "auth.pepper"
    case authPepperFile = "auth.pepperFile"
    case authRegistration = "auth.registration"
    case webRoot = "web.root"
    case socketPingInterval = "socket.pingInterval"
    case socketSilenceLimit = "socket.silenceLimit"
    case socketMaxPerSession = "socket.maxPerSession"
    case socketMaxPerUser = "socket.maxPerUser"
    case presenceLease = "presence.lease"
    case eventsRetention = "events.retention"
    case vaultPath = "vault.path"
    case vaultMaxFileSize = "vault.maxFileSize"
    case vaultQuota = "vault.quota"
    case vaultUploadExpiry = "vault.uploadExpiry"
    case vaultMaxUnfinishedUploads = "vault.maxUnfinishedUploads"
    case vaultIdleFileRetention = "vault.idleFileRetention"
    case vaultS3Endpoint = "vault.s3.endpoint"
    case vaultS3Bucket = "vault.s3.bucket"
    case vaultS3Region = "vault.s3.region"
    case vaultS3AccessKey = "vault.s3.accessKey"
    case vaultS3SecretKey = "vault.s3.secretKey"
    case activityKeys = "activity.keys"
    case activityKeyFile = "activity.keyFile"
    case activityRetention = "activity.retention"
    case callsRingTimeout = "calls.ringTimeout"
    case turnSecret = "turn.secret"
    case turnURLs = "turn.urls"
    case turnTTL = "turn.ttl"
    case sessionsIdleTimeout = "sessions.idleTimeout"
    case sessionsMaxAge = "sessions.maxAge"
    case limitsRates = "limits.rates"
    case metricsToken = "metrics.token"

    /// The environment variable that sets this key.
    public var environmentName: String {
        // As swift-configuration's environment provider: `.` becomes `_`, and a lowercase letter
        // followed by an uppercase one gets `_` between them (`http.publicURL` is HTTP_PUBLIC_URL).
        var out = ""
        var previousWasLower = false
        for character in rawValue {
            if character == "." {
                out += "_"
                previousWasLower = false
                continue
            }
            if character.isUppercase, previousWasLower { out += "_" }
            out += character.uppercased()
            previousWasLower = character.isLowercase
        }
        return out
    }

    /// The long command-line option that sets this key, without the leading dashes.
    public var optionName: String { environmentName.lowercased().replacingOccurrences(of: "_", with: "-") }

    /// Values of these keys are never logged or echoed.
    public var isSecret: Bool { self == .postgresURL || self == .redisURL || self == .authPepper || self == .activityKeys || self == .turnSecret || self == .metricsToken
        || self == .vaultS3SecretKey }

    /// What the key does, for `--help` and the README.
    public var summary: String {
        switch self {
        case .httpHost: "Address to listen on."
        case .httpPort: "Port to listen on."
        case .httpBodyLimit: "Largest accepted request body, in bytes."
        case .postgresURL: "PostgreSQL URL (postgres://user:password@host:port/database?sslmode=disable|require); selects the scaled mode with redis.url."
        case .postgresPoolSize: "Most PostgreSQL connections this process opens."
        case .redisURL: "Redis URL (redis://[:password@]host:port[/db]); selects the scaled mode with postgres.url."
        case .redisPrefix: "Prefix of every Redis channel and stream name, so deployments can share one Redis."
        case .sqlitePath: "SQLite database file of the embedded mode (its folder is created)."
        case .logLevel: "Log level: trace, debug, info, notice, warning, error or critical."
        case .logFormat: "Log line format: text (logfmt) or json."
        case .httpPublicURL: "The address people use to reach this server, for invite links."
        case .httpTrustForwardedFor: "Take the client address from the last X-Forwarded-For entry, the one the proxy appended (only behind one proxy that appends it): true or false."
        case .authPepper: "Server secret (base64, at least 32 bytes) mixed into every stored login verifier and bundle wrap; never stored in the database. Required in the scaled mode."
        case .authPepperFile: "Where the embedded mode keeps its generated pepper when auth.pepper is not set."
        case .authRegistration: "Who may register: invite (with an invite from `circle invite create`) or open."
        case .webRoot: "Serve the browser client from this folder (Web/ of the repository, for development) instead of the copy built into the binary."
        case .socketPingInterval: "How often the gateway pings each realtime socket, as 25s or 1m."
        case .socketSilenceLimit: "How long a realtime socket may send nothing (not even a pong) before the gateway closes it, as 60s or 2m."
        case .socketMaxPerSession: "Realtime sockets one session (a device and its tabs) may hold on one gateway; a new one past it closes the oldest with 4009."
        case .socketMaxPerUser: "Realtime sockets one member may hold on one gateway, over all their sessions; a new one past it closes the oldest with 4009."
        case .presenceLease: "How long presence trusts a gateway's list of sockets without hearing from it (renewed every third of it); a gateway that dies without saying so has its members shown offline at most this long after."
        case .eventsRetention: "How long the per-user event log is kept for clients to resume from, as 90s, 30m, 12h or 7d."
        case .vaultPath: "Folder of the vault's encrypted files and unfinished uploads (shared by every vault and cleanup replica)."
        case .vaultMaxFileSize: "Largest stored (encrypted) file, in bytes."
        case .vaultQuota: "Bytes each member may store in the vault, unfinished uploads included."
        case .vaultUploadExpiry: "How long an unfinished upload is kept for resuming, as 90s, 30m, 12h or 7d."
        case .vaultMaxUnfinishedUploads: "Unfinished uploads a member may have at once; one more is refused until one finishes, is cancelled or expires."
        case .vaultIdleFileRetention: "Retention for files nobody downloads: a file not downloaded (by its owner, a member of its conversation or a link) for this long is deleted, as 90d or 365d; off (0) by default."
        case .vaultS3Endpoint: "Keep the vault's files in an S3-compatible bucket (MinIO, Ceph RGW, Garage, AWS) at this http(s) address instead of vault.path, so vault and cleanup replicas on different machines share them; objects are addressed path-style."
        case .vaultS3Bucket: "The bucket of the vault's files (with vault.s3.endpoint); it must exist."
        case .vaultS3Region: "The bucket's region, for request signing (with vault.s3.endpoint)."
        case .vaultS3AccessKey: "The access key id for the bucket (with vault.s3.endpoint)."
        case .vaultS3SecretKey: "The secret access key for the bucket (with vault.s3.endpoint). Prefer the environment: command lines are visible to other users."
        case .activityKeys: "Keys that seal the IP address and user agent in the security activity log, as id:base64 pairs separated by commas (each 32 bytes, for example from `openssl rand -base64 32`); the first seals new entries, the others still open older ones. Required in the scaled mode by every service that records activity."
        case .activityKeyFile: "Where the embedded mode keeps its generated activity key when activity.keys is not set."
        case .activityRetention: "How long security activity is kept, as 90s, 30m, 12h or 365d."
        case .callsRingTimeout: "How long a call rings before it is missed, as 45s or 1m."
        case .turnSecret: "The TURN REST API secret shared with coturn (its static-auth-secret, with use-auth-secret): calls get short-lived TURN credentials made from it. Without it calls connect directly, which works on a LAN."
        case .turnURLs: "TURN and STUN addresses handed to calls, separated by commas, as turn:turn.example.org:3478?transport=udp,turns:turn.example.org:5349,stun:turn.example.org:3478."
        case .turnTTL: "How long TURN credentials last, as 1h or 12h (a call on a relay longer than this loses it at the next refresh)."
        case .sessionsIdleTimeout: "A session unused this long ends (every service checks it; the device signs in again), as 12h or 30d."
        case .sessionsMaxAge: "A session ends this long after it was created, however much it is used, as 30d or 180d."
        case .metricsToken: "A bearer token (at least 32 characters) that lets a scraper read /metrics from another machine; without it /metrics answers only loopback connections."
        case .limitsRates: "Changes named rate limits (docs/API.md lists them with their defaults), as name=capacity/duration pairs separated by commas: register=10/1h,message-send=600/1m."
        }
    }

    /// The default, as a person reads it.
    public var defaultDescription: String {
        switch self {
        case .httpHost: "127.0.0.1"
        case .httpPort: "8080 for `circle serve`; 8081-8086 for the services"
        case .httpBodyLimit: "1048576"
        case .postgresURL: "none (embedded SQLite)"
        case .postgresPoolSize: "10"
        case .redisURL: "none (in-process bus)"
        case .redisPrefix: "circle:"
        case .sqlitePath: "./data/circle.sqlite"
        case .logLevel: "info"
        case .logFormat: "text"
        case .httpPublicURL: "http://localhost:<http.port>"
        case .httpTrustForwardedFor: "false"
        case .authPepper: "none"
        case .authPepperFile: "./data/pepper.key"
        case .authRegistration: "invite"
        case .webRoot: "(built in)"
        case .socketPingInterval: "25s"
        case .socketSilenceLimit: "60s"
        case .presenceLease: "60s"
        case .socketMaxPerSession: "8"
        case .socketMaxPerUser: "32"
        case .eventsRetention: "7d"
        case .vaultPath: "./data/vault"
        case .vaultMaxFileSize: "4294967296 (4 GiB)"
        case .vaultQuota: "10737418240 (10 GiB)"
        case .vaultUploadExpiry: "24h"
        case .vaultMaxUnfinishedUploads: "20"
        case .vaultIdleFileRetention: "0 (off)"
        case .vaultS3Endpoint: "none (files in vault.path)"
        case .vaultS3Bucket: "none"
        case .vaultS3Region: "us-east-1"
        case .vaultS3AccessKey: "none"
        case .vaultS3SecretKey: "none"
        case .activityKeys: "none"
        case .activityKeyFile: "./data/activity.key"
        case .activityRetention: "365d"
        case .callsRingTimeout: "45s"
        case .turnSecret: "none (no TURN)"
        case .turnURLs: "none"
        case .turnTTL: "12h"
        case .sessionsIdleTimeout: "30d"
        case .sessionsMaxAge: "180d"
        case .limitsRates: "none (the defaults)"
        case .metricsToken: "none (loopback only)"
        }
    }

    /// The line shown by `--help` for this key.
    public var help: String { "\(summary) (env \(environmentName); default \(defaultDescription))" }
}

#if canImport(FoundationEssentials)
import FoundationEssentials
#endif
import Foundation
