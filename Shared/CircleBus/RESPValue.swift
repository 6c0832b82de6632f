import NIOCore

/// A Redis reply, decoded by hiredis's reader.
public enum RESPValue: Sendable, Equatable {
    case simpleString(String)
    case error(String)
    case integer(Int64)
    case bulk(ByteBuffer)
    case null
    case array([RESPValue])

    /// The value as text, for bulk and simple strings.
    public var string: String? {
        switch self {
        case .simpleString(let s): s
        case .bulk(let b): String(buffer: b)
        default: nil
        }
    }

    public var array: [RESPValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    public var integer: Int64? {
        if case .integer(let i) = self { return i }
        return nil
    }

    /// Whether Redis answered with an error.
    public var isError: Bool {
        if case .error = self { return true }
        return false
    }
}

/// Encodes a command as a RESP array of bulk strings.
package enum RESPEncoder {
    package static func encode(_ arguments: [ByteBuffer], into buffer: inout ByteBuffer) {
        buffer.writeStaticString("*")
        buffer.writeString(String(arguments.count))
        buffer.writeStaticString("\r\n")
        for argument in arguments {
            buffer.writeStaticString("$")
            buffer.writeString(String(argument.readableBytes))
            buffer.writeStaticString("\r\n")
            var copy = argument
            buffer.writeBuffer(&copy)
            buffer.writeStaticString("\r\n")
        }
    }
}
