// circle-embed openapi INPUT.yaml OUTPUT.swift
// circle-embed folder DIRECTORY OUTPUT.swift
//
// Build tool (run by the EmbedOpenAPI and EmbedWebClient plugins): turns files of the repository
// into Swift source, so every binary carries them and a copied binary needs nothing beside it.
// `openapi` writes docs/openapi.yaml as compact JSON (keys in the document's order); `folder`
// writes every file under a folder (the browser client, Web/) as base64 with its path from
// the folder.
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

func openAPI(_ input: String) throws -> String {
    let yaml = try String(contentsOfFile: input, encoding: .utf8)
    guard let root = try Yams.compose(yaml: yaml) else { throw ToolError(description: "\(input) is empty") }
    var json = ""
    try emit(root, into: &json)
    return """
        // Generated at build time from docs/openapi.yaml by circle-embed. Do not edit.
        enum EmbeddedAPIDocument {
            static let json = \(swiftLiteral(json))
        }

        """
}

/// Every file under `directory` but Markdown notes, sorted by path, as base64 (whatever bytes a
/// file holds, the literal is one plain line).
func folder(_ directory: String) throws -> String {
    let base = URL(fileURLWithPath: directory).standardizedFileURL
    guard let walker = FileManager.default.enumerator(at: base, includingPropertiesForKeys: [.isRegularFileKey]) else {
        throw ToolError(description: "\(directory) cannot be read")
    }
    var files: [(path: String, base64: String)] = []
    for case let url as URL in walker {
        guard try url.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile == true, url.pathExtension != "md" else { continue }
        let path = String(url.standardizedFileURL.path.dropFirst(base.path.count))
        files.append((path, try Data(contentsOf: url).base64EncodedString()))
    }
    let entries = files.sorted { $0.path < $1.path }.map { "        (\(quoted($0.path)), \"\($0.base64)\")," }.joined(separator: "\n")
    return """
        // Generated at build time from \(base.lastPathComponent)/ by circle-embed. Do not edit.
        enum EmbeddedFiles {
            /// (path, base64 of the bytes)
            static let all: [(String, String)] = [
        \(entries)
            ]
        }

        """
}

let arguments = CommandLine.arguments
guard arguments.count == 4, ["openapi", "folder"].contains(arguments[1]) else {
    FileHandle.standardError.write(Data("usage: circle-embed openapi INPUT.yaml OUTPUT.swift | circle-embed folder DIRECTORY OUTPUT.swift\n".utf8))
    exit(2)
}
do {
    let source = arguments[1] == "openapi" ? try openAPI(arguments[2]) : try folder(arguments[2])
    try source.write(toFile: arguments[3], atomically: true, encoding: .utf8)
} catch {
    FileHandle.standardError.write(Data("circle-embed: \(arguments[2]): \(error)\n".utf8))
    exit(1)
}
