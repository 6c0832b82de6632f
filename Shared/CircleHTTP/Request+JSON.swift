import CircleCore
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// A request body type that names its members, so unknown ones are refused rather than ignored.
public protocol StrictDecodable: Decodable {
    static var allowedKeys: Set<String> { get }
}

extension Request {
    /// Reads and decodes a JSON body with clear 4xx answers: wrong content type (415), body over
    /// the limit (413), malformed JSON, a wrong type or a missing member (400), unknown members (400).
    public func decodeJSON<T: Decodable>(as type: T.Type, context: some CircleContext) async throws -> T {
        let contentType = headers[.contentType]?.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased()
        guard contentType == "application/json" else {
            throw Problem.unsupportedMediaType("Send the body as application/json.")
        }
        let body = self.body
        let buffer: ByteBuffer
        do {
            buffer = try await body.collect(upTo: context.bodyLimit)
        } catch is NIOTooManyBytesError {
            throw Problem.payloadTooLarge("The request body is larger than the limit of \(context.bodyLimit) bytes.")
        }
        return try JSONBody.decode(type, from: Data(buffer: buffer))
    }

    /// As `decodeJSON`, for a body that may be left out: nil when the request has none.
    public func decodeOptionalJSON<T: Decodable>(as type: T.Type, context: some CircleContext) async throws -> T? {
        if headers[.contentType] == nil, headers[.contentLength] == nil || headers[.contentLength] == "0" {
            // A body without a type is refused as one, not ignored.
            let empty = ((try? await body.collect(upTo: 0))?.readableBytes ?? 1) == 0
            guard empty else { throw Problem.unsupportedMediaType("Send the body as application/json.") }
            return nil
        }
        return try await decodeJSON(as: type, context: context)
    }
}

/// JSON decoding with messages a client developer can act on.
public enum JSONBody {
    public static func decode<T: Decodable>(_ type: T.Type, from data: Data) throws -> T {
        // One parse: a strict type's member names are checked in the same pass that decodes it.
        do {
            if let strict = T.self as? any StrictDecodable.Type {
                return try decodeStrict(strict, from: data) as! T
            }
            return try JSONDecoder().decode(T.self, from: data)
        } catch let error as DecodingError {
            if case .dataCorrupted(let context) = error, context.codingPath.isEmpty, context.debugDescription.hasPrefix("The given data was not valid JSON") {
                throw Problem.badRequest("The body is not valid JSON.")
            }
            throw Problem.badRequest(describe(error))
        }
    }

    static func decodeStrict<T: StrictDecodable>(_ type: T.Type, from data: Data) throws -> T {
        try JSONDecoder().decode(Strict<T>.self, from: data).value
    }

    /// Decodes `T` after refusing members it does not name.
    struct Strict<T: StrictDecodable>: Decodable {
        let value: T

        init(from decoder: any Decoder) throws {
            let container: KeyedDecodingContainer<AnyKey>
            do {
                container = try decoder.container(keyedBy: AnyKey.self)
            } catch {
                throw Problem.badRequest("The body must be a JSON object.")
            }
            let unknown = Set(container.allKeys.map(\.stringValue)).subtracting(T.allowedKeys)
            if !unknown.isEmpty {
                throw Problem.badRequest("Unknown member\(unknown.count == 1 ? "" : "s"): \(unknown.sorted().joined(separator: ", ")).")
            }
            value = try T(from: decoder)
        }
    }

    struct AnyKey: CodingKey {
        let stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    static func describe(_ error: DecodingError) -> String {
        func path(_ codingPath: [any CodingKey]) -> String {
            let joined = codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
            return joined.isEmpty ? "the body" : "`\(joined)`"
        }
        switch error {
        case .typeMismatch(let type, let context):
            return "\(path(context.codingPath)) must be \(typeName(type))."
        case .valueNotFound(let type, let context):
            return "\(path(context.codingPath)) must be \(typeName(type)), not null."
        case .keyNotFound(let key, let context):
            return "\(path(context.codingPath + [key])) is required."
        case .dataCorrupted(let context):
            return "\(path(context.codingPath)) is invalid: \(context.debugDescription)"
        @unknown default:
            return "The body does not match the expected shape."
        }
    }

    static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Int.Type, is Int64.Type, is Int32.Type, is UInt.Type, is UInt64.Type: "an integer"
        case is Double.Type, is Float.Type: "a number"
        case is Bool.Type: "true or false"
        case is [Any].Type: "an array"
        default: "an object"
        }
    }
}
