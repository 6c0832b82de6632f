import Foundation
import Configuration

extension SettingsLoader {
    /// The files the embedded server keeps its own secrets in: the pepper file unless
    /// `auth.pepper` is given, the activity key file unless `activity.keys` is (the scaled mode
    /// gives both, from the operator's secret store). What a server's destruction removes.
    public static func keyFiles(from reader: ConfigReader) -> [String] {
        func string(_ key: CircleConfigKey) -> String? {
            reader.string(forKey: ConfigKey(key.rawValue), isSecret: key.isSecret)?.trimmingCharacters(in: .whitespaces).nilIfEmpty
        }
        var files: [String] = []
        if string(.authPepper) == nil { files.append(string(.authPepperFile) ?? "./data/pepper.key") }
        if string(.activityKeys) == nil { files.append(string(.activityKeyFile) ?? "./data/activity.key") }
        return files
    }
}
