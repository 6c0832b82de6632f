// circle-openapi-json INPUT.yaml OUTPUT.swift
//
// Build tool (run by the EmbedOpenAPI plugin): reads docs/openapi.yaml, the API contract, and
// writes a Swift file holding it as compact JSON, so every Circle executable can serve the
// document without reading a file at run time. Keys keep the document's order.
import Foundation
import Yams

struct ToolError: Error, CustomStringConvertible {
    let description: String
}

/// Appends the JSON for `node` to `out`.
func emit(_ node: Node, into out: inout String) throws {
    switch node {
    case .mapping(let mapping):
        out += "{"
        for (index, pair) in mapping.enumerated() {
            if index > 0 { out += "," }
            guard case .scalar(let key) = pair.key else { throw ToolError(description: "a mapping key that is not a scalar at \(pair.key.mark.map { "\($0)" } ?? "?")") }
            out += quoted(key.string) + ":"
            try emit(pair.value, into: &out)
        }
        out += "}"
    case .sequence(let sequence):
        out += "["
        for (index, element) in sequence.enumerated() {
            if index > 0 { out += "," }
            try emit(element, into: &out)
        }
        out += "]"
    case .scalar(let scalar):
        switch Tag.Name(rawValue: node.tag.rawValue) {
        case .null: out += "null"
        case .bool: out += node.bool == true ? "true" : "false"
        case .int:
            guard let value = node.int else { throw ToolError(description: "\(scalar.string) is not an integer JSON can hold") }
            out += String(value)
        case .float:
            guard let value = node.float, value.isFinite else { throw ToolError(description: "\(scalar.string) is not a finite number") }
            out += "\(value)"
        default: out += quoted(scalar.string)
        }
    case .alias:
        throw ToolError(description: "YAML aliases are not used in the API document; write the value out")
    }
}

/// A JSON string literal (JSONEncoder's escaping, slashes left alone).
func quoted(_ text: String) -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = .withoutEscapingSlashes
    return String(decoding: (try? encoder.encode(text)) ?? Data("\"\"".utf8), as: UTF8.self)
}

/// A Swift raw string literal holding `text`: enough `#` that nothing inside ends it or escapes.
func swiftLiteral(_ text: String) -> String {
    var hashes = "#"
    while text.contains("\"" + hashes) || text.contains("\\" + hashes) { hashes += "#" }
    return hashes + "\"" + text + "\"" + hashes
}

let arguments = CommandLine.arguments
guard arguments.count == 3 else {
    FileHandle.standardError.write(Data("usage: circle-openapi-json INPUT.yaml OUTPUT.swift\n".utf8))
    exit(2)
}
do {
    let yaml = try String(contentsOfFile: arguments[1], encoding: .utf8)
    guard let root = try Yams.compose(yaml: yaml) else { throw ToolError(description: "\(arguments[1]) is empty") }
    var json = ""
    try emit(root, into: &json)
    let source = """
        // Generated at build time from docs/openapi.yaml by circle-openapi-json. Do not edit.
        enum EmbeddedAPIDocument {
            static let json = \(swiftLiteral(json))
        }

        """
    try source.write(toFile: arguments[2], atomically: true, encoding: .utf8)
} catch {
    FileHandle.standardError.write(Data("circle-openapi-json: \(arguments[1]): \(error)\n".utf8))
    exit(1)
}
