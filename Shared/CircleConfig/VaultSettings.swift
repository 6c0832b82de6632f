import Configuration
import Foundation

/// What the vault (and the cleanup of its files) is configured with.
public struct VaultSettings: Sendable, Equatable {
    /// Folder of stored files and unfinished uploads.
    public var path: String
    /// Largest stored file, in bytes (its encrypted length).
    public var maxFileSize: Int64
    /// Bytes per member, unfinished uploads included.
    public var quota: Int64
    /// How long an unfinished upload is kept.
    public var uploadExpiry: Duration
    /// Unfinished uploads a member may hold at once (each is a row and a file until it expires).
    public var maxUnfinishedUploads: Int
    /// Whether share-link uses are recorded with the X-Forwarded-For address (`http.trustForwardedFor`).
    public var trustForwardedFor: Bool
    /// A file not downloaded for this long is deleted by cleanup; nil keeps files however idle.
    public var idleFileRetention: Duration?
    /// The S3-compatible bucket that holds the files instead of `path`, when configured.
    public var s3: VaultS3Settings?

    public init(
        path: String = "./data/vault", maxFileSize: Int64 = 4 << 30, quota: Int64 = 10 << 30,
        uploadExpiry: Duration = .seconds(86_400), maxUnfinishedUploads: Int = 20, trustForwardedFor: Bool = false, idleFileRetention: Duration? = nil,
        s3: VaultS3Settings? = nil
    ) {
        self.s3 = s3
        self.idleFileRetention = idleFileRetention
        self.maxUnfinishedUploads = maxUnfinishedUploads
        self.path = path
        self.maxFileSize = maxFileSize
        self.quota = quota
        self.uploadExpiry = uploadExpiry
        self.trustForwardedFor = trustForwardedFor
    }
}

/// An S3-compatible bucket for the vault's files.
public struct VaultS3Settings: Sendable, Equatable {
    public var endpoint: String
    public var bucket: String
    public var region: String
    public var accessKey: String
    public var secretKey: String

    public init(endpoint: String, bucket: String, region: String = "us-east-1", accessKey: String, secretKey: String) {
        self.endpoint = endpoint
        self.bucket = bucket
        self.region = region
        self.accessKey = accessKey
        self.secretKey = secretKey
    }
}

extension SettingsLoader {
    /// Reads the `vault.*` keys.
    public static func loadVault(from reader: ConfigReader) throws -> VaultSettings {
        func string(_ key: CircleConfigKey) -> String? {
            reader.string(forKey: ConfigKey(key.rawValue))?.trimmingCharacters(in: .whitespaces).nilIfEmpty
        }
        func bytes(_ key: CircleConfigKey, default value: Int64) throws -> Int64 {
            guard let text = string(key) else { return value }
            guard let number = Int64(text), number > 0 else { throw ConfigError(key, "must be a positive number of bytes (got \(text))") }
            return number
        }
        var settings = VaultSettings()
        settings.path = string(.vaultPath) ?? settings.path
        settings.maxFileSize = try bytes(.vaultMaxFileSize, default: settings.maxFileSize)
        settings.quota = try bytes(.vaultQuota, default: settings.quota)
        if let text = string(.vaultUploadExpiry) {
            guard let duration = parseDuration(text), duration >= .seconds(60) else {
                throw ConfigError(.vaultUploadExpiry, "must be a duration of at least a minute such as 90s, 30m, 12h or 7d (got \(text))")
            }
            settings.uploadExpiry = duration
        }
        if let text = string(.vaultMaxUnfinishedUploads) {
            guard let count = Int(text), (1...10_000).contains(count) else {
                throw ConfigError(.vaultMaxUnfinishedUploads, "must be a whole number from 1 to 10000 (got \(text))")
            }
            settings.maxUnfinishedUploads = count
        }
        if let text = string(.vaultIdleFileRetention), text != "0", text.lowercased() != "off" {
            guard let duration = parseDuration(text), duration >= .seconds(86_400) else {
                throw ConfigError(.vaultIdleFileRetention, "must be 0 (off) or a duration of at least a day such as 90d (got \(text))")
            }
            settings.idleFileRetention = duration
        }
        if let endpoint = string(.vaultS3Endpoint) {
            guard let url = URL(string: endpoint), ["http", "https"].contains(url.scheme?.lowercased() ?? ""), url.host != nil,
                  url.path.isEmpty || url.path == "/", url.query == nil else {
                throw ConfigError(.vaultS3Endpoint, "must be an http(s) address with no path, such as http://minio:9000 (got \(endpoint))")
            }
            guard let bucket = string(.vaultS3Bucket) else { throw ConfigError(.vaultS3Bucket, "is required with vault.s3.endpoint") }
            // S3's bucket naming rules (3-63 lowercase letters, digits, dots and hyphens).
            guard (3...63).contains(bucket.count), bucket.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "-" || $0 == ".") }) else {
                throw ConfigError(.vaultS3Bucket, "must be 3 to 63 lowercase letters, digits, dots or hyphens (got \(bucket))")
            }
            guard let accessKey = string(.vaultS3AccessKey) else { throw ConfigError(.vaultS3AccessKey, "is required with vault.s3.endpoint") }
            guard let secretKey = string(.vaultS3SecretKey) else { throw ConfigError(.vaultS3SecretKey, "is required with vault.s3.endpoint") }
            settings.s3 = VaultS3Settings(endpoint: endpoint, bucket: bucket, region: string(.vaultS3Region) ?? "us-east-1",
                                          accessKey: accessKey, secretKey: secretKey)
        }
        if let text = string(.httpTrustForwardedFor) {
            guard let trust = Bool(text.lowercased()) else { throw ConfigError(.httpTrustForwardedFor, "must be true or false (got \(text))") }
            settings.trustForwardedFor = trust
        }
        return settings
    }
}
