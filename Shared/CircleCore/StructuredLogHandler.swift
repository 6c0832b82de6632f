#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// How log lines are written: `text` is logfmt (`key=value`), `json` is one JSON object per line.
public enum LogFormat: String, Sendable, CaseIterable {
    case text, json
}

/// A swift-log handler writing one structured line per event to standard error.
///
/// Metadata stays structured (never interpolated into the message), so lines can be parsed and
/// filtered. The handler never formats values it was not given: secrets stay out as long as
/// callers keep them out of metadata.
public struct StructuredLogHandler: LogHandler {
    public var logLevel: Logger.Level
    public var metadata: Logger.Metadata = [:]
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private let format: LogFormat

    public init(label: String, level: Logger.Level, format: LogFormat, metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        self.logLevel = level
        self.format = format
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { _, new in new } }
        if let extra = event.metadata { merged.merge(extra) { _, new in new } }
        let time = Self.timestamp()
        let line: String
        switch format {
        case .text: line = Self.logfmt(time: time, level: event.level, label: label, message: "\(event.message)", metadata: merged)
        case .json: line = Self.json(time: time, level: event.level, label: label, message: "\(event.message)", metadata: merged)
        }
        Self.emit(line + "\n")
    }

    static func timestamp() -> String {
        Date().formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true).timeZone(separator: .omitted))
    }

    static func logfmt(time: String, level: Logger.Level, label: String, message: String, metadata: Logger.Metadata) -> String {
        var parts = ["ts=\(time)", "level=\(level)", "logger=\(quoteIfNeeded(label))", "msg=\(quoteIfNeeded(message))"]
        for key in metadata.keys.sorted() {
            parts.append("\(key)=\(quoteIfNeeded(flatten(metadata[key]!)))")
        }
        return parts.joined(separator: " ")
    }

    static func json(time: String, level: Logger.Level, label: String, message: String, metadata: Logger.Metadata) -> String {
        var fields = [("ts", JSONText.quote(time)), ("level", JSONText.quote("\(level)")), ("logger", JSONText.quote(label)), ("msg", JSONText.quote(message))]
        for key in metadata.keys.sorted() {
            fields.append((key, jsonValue(metadata[key]!)))
        }
        return "{" + fields.map { "\(JSONText.quote($0.0)):\($0.1)" }.joined(separator: ",") + "}"
    }

    static func flatten(_ value: Logger.MetadataValue) -> String {
        switch value {
        case .string(let s): s
        case .stringConvertible(let c): c.description
        case .array(let a): "[" + a.map(flatten).joined(separator: ",") + "]"
        case .dictionary(let d): "{" + d.keys.sorted().map { "\($0):\(flatten(d[$0]!))" }.joined(separator: ",") + "}"
        }
    }

    static func jsonValue(_ value: Logger.MetadataValue) -> String {
        switch value {
        case .string(let s): JSONText.quote(s)
        case .stringConvertible(let c): JSONText.quote(c.description)
        case .array(let a): "[" + a.map(jsonValue).joined(separator: ",") + "]"
        case .dictionary(let d): "{" + d.keys.sorted().map { "\(JSONText.quote($0)):\(jsonValue(d[$0]!))" }.joined(separator: ",") + "}"
        }
    }

    static func quoteIfNeeded(_ s: String) -> String {
        if !s.isEmpty, !s.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" || $0.isNewline }) { return s }
        return JSONText.quote(s)
    }

    private static func emit(_ line: String) {
        var line = line
        line.withUTF8 { buffer in
            var offset = 0
            while offset < buffer.count {
                let n = write(2, buffer.baseAddress! + offset, buffer.count - offset)
                if n <= 0 { if errno == EINTR { continue } else { return } }
                offset += n
            }
        }
    }
}

/// Process-wide logging setup; swift-log allows one bootstrap per process.
public enum LoggingSetup {
    private static let once = BootstrapOnce()

    /// Installs the structured handler at the given level and format (first call wins).
    public static func bootstrap(level: Logger.Level, format: LogFormat) {
        once.run {
            LoggingSystem.bootstrap { label in
                StructuredLogHandler(label: label, level: level, format: format)
            }
        }
    }
}

/// Runs a closure at most once per process.
public final class BootstrapOnce: Sendable {
    private let done = Mutex(false)
    public init() {}
    public func run(_ body: () -> Void) {
        let first = done.withLock { done in
            defer { done = true }
            return !done
        }
        if first { body() }
    }
}

/// JSON text helpers shared by logs, problem bodies and event frames.
public enum JSONText {
    /// `s` as a JSON string literal, quotes included.
    public static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                out += "\\u" + String(repeating: "0", count: 4 - String(scalar.value, radix: 16).count) + String(scalar.value, radix: 16)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
