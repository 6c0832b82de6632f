import Configuration
import Foundation

/// Builds the provider hierarchy: command line first, then the environment, then code defaults.
public enum ConfigSources {
    /// A reader over the given command-line values (key to value) and the environment.
    public static func reader(
        commandLine values: [CircleConfigKey: String],
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) -> ConfigReader {
        var mapped: [AbsoluteConfigKey: ConfigValue] = [:]
        for (key, value) in values {
            mapped[AbsoluteConfigKey(ConfigKey(key.rawValue))] = ConfigValue(.string(value), isSecret: key.isSecret)
        }
        let secrets = Set(CircleConfigKey.allCases.filter(\.isSecret).map(\.environmentName))
        return ConfigReader(providers: [
            InMemoryProvider(name: "command line", values: mapped),
            EnvironmentVariablesProvider(environmentVariables: environment, secretsSpecifier: .specific(secrets)),
        ])
    }

    /// A reader over fixed values only (tests build the real application from this).
    public static func reader(values: [CircleConfigKey: String]) -> ConfigReader {
        var mapped: [AbsoluteConfigKey: ConfigValue] = [:]
        for (key, value) in values {
            mapped[AbsoluteConfigKey(ConfigKey(key.rawValue))] = ConfigValue(.string(value), isSecret: key.isSecret)
        }
        return ConfigReader(provider: InMemoryProvider(name: "fixed", values: mapped))
    }
}
