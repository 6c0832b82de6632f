/// Invalid configuration: names the key and says what is wrong, without echoing secret values.
public struct ConfigError: Error, CustomStringConvertible, Sendable, Equatable {
    public let key: String
    public let message: String

    public init(key: String, message: String) {
        self.key = key
        self.message = message
    }

    public init(_ key: CircleConfigKey, _ message: String) {
        self.init(key: key.rawValue, message: message)
    }

    public var description: String { "configuration error: \(key): \(message)" }
}
