import Foundation
import PackagePlugin

/// Turns the browser client (Web/) into Swift source for the target it is applied to
/// (CircleWebClient), so `circle serve` and `circle-gateway` serve it from anywhere. Every file
/// is an input: changing, adding or removing one rebuilds.
@main
struct EmbedWebClient: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) async throws -> [Command] {
        let web = context.package.directoryURL.appending(path: "Web")
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedFiles.swift")
        var inputs: [URL] = [web]
        if let walker = FileManager.default.enumerator(at: web, includingPropertiesForKeys: nil) {
            for case let url as URL in walker { inputs.append(url) }
        }
        return [
            .buildCommand(
                displayName: "Embedding the web client (Web/)",
                executable: try context.tool(named: "circle-embed").url,
                arguments: ["folder", web.path(), output.path()],
                inputFiles: inputs,
                outputFiles: [output]
            )
        ]
    }
}
