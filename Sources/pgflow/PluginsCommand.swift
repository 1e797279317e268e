import ArgumentParser
import Foundation
import PGFlow

struct PluginsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plugins",
        abstract: "List the plugin catalog (2D editors and other external models), or describe one plugin.",
        discussion: helpText("""
        Plugins are catalogued in Nodes/plugins (and in the folders of $PGFLOW_PLUGIN_PATH); a graph
        names one by name, e.g. EditorCall's "plugin": "style", with its params in "params". Python
        plugins run in the plugin environment that `bash Scripts/setup-plugins.sh` makes (`--full`
        adds torch and diffusers for ip2p); $PGFLOW_PYTHON names another interpreter. The protocol
        for writing one is in Nodes/plugins/README.md.
        """))

    @Argument(help: "A plugin to describe, e.g. style.")
    var name: String?

    @Option(name: .customLong("nodes"), help: ArgumentHelp("The node catalog folder.", valueName: "dir"))
    var nodesDirectory: String?

    func run() throws {
        try reportingErrors {
            let catalog = try loadCatalog(nodesDirectory)
            let python = PluginHost.defaultPython(catalogDirectory: catalog.directory, environment: ProcessInfo.processInfo.environment)
            func status(_ m: PluginManifest) -> String {
                if m.builtin { return "built in" }
                guard m.run.contains("$python") else { return "runs \(m.run[0])" }
                guard let python else { return "needs `bash Scripts/setup-plugins.sh\(m.environment == "full" ? " --full" : "")`" }
                return "\(m.environment) set, \(python)"
            }
            let names = catalog.plugins.keys.sorted()
            guard let name else {
                let width = names.map(\.count).max() ?? 0
                for n in names {
                    let m = catalog.plugins[n]!
                    print(n.padding(toLength: width + 2, withPad: " ", startingAt: 0) + "\(m.kind) \(m.version) — " + firstSentence(m.doc))
                }
                print("\n`pgflow plugins NAME` describes one.")
                return
            }
            guard let m = catalog.plugins[name] else {
                throw ExitMessage(code: 2, "no plugin \"\(name)\"\(Suggest.hint(name, names)); known: \(names.joined(separator: ", "))")
            }
            var out = "\(m.name)  (\(m.kind) plugin, version \(m.version), \(m.deterministic ? "deterministic" : "not deterministic"))\n\n"
            out += wrap(m.doc, indent: "  ") + "\n\n"
            out += "  manifest: \(m.file)\n  status:   \(status(m))\n"
            if !m.builtin {
                out += "  runs:     \(m.run.joined(separator: " "))  (timeout \(Int(m.timeout)) s a request, \(m.workers) worker\(m.workers == 1 ? "" : "s"))\n"
            }
            if !m.params.isEmpty { out += "\nParams (in the node's \"params\"):\n" + describeParams(m.params) }
            print(out, terminator: "")
        }
    }
}
