import ArgumentParser
import Foundation
import PGFlow

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check a graph against the node catalog without running it.",
        discussion: helpText("""
        Reports every problem at once, each as file:line:column: json.path: message — unknown node
        types and params, ill-typed or out-of-range values, dangling links, port type and rate
        mismatches, missing inputs, cycles, bad stages, input files that do not exist. Exits 0 when
        the graph is valid, 2 when not.
        """))

    @OptionGroup var options: GraphOptions

    func run() throws {
        try reportingErrors {
            let (graph, catalog) = try options.load()
            let missing = graph.fileProblems(catalog)
            if !missing.isEmpty { throw ValidationError(missing) }
            print("\(options.graph): valid (\(graph.nodes.count) nodes, \(graph.stages.count) stages)")
        }
    }
}
