import Foundation
import PGFlow
import PGNodes
import Testing

let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let exampleGraphs: [String] = ((try? FileManager.default.contentsOfDirectory(atPath: repositoryRoot.appendingPathComponent("Graphs").path)) ?? [])
    .filter { $0.hasSuffix(".json") }.sorted()
/// The sample clip `Scripts/fetch-sample.sh` downloads; graphs reading it are run only when present.
let sampleClip = repositoryRoot.appendingPathComponent("data/single_face.mp4")
let sampleClipPresent = FileManager.default.fileExists(atPath: sampleClip.path)

func shippedCatalog() throws -> Catalog { try Catalog.load(repositoryRoot.appendingPathComponent("Nodes")) }

@Test(arguments: exampleGraphs)
func exampleGraphValidates(_ name: String) throws {
    let url = repositoryRoot.appendingPathComponent("Graphs").appendingPathComponent(name)
    let graph = try Graph.load(url, catalog: try shippedCatalog())
    #expect(!graph.nodes.isEmpty)
    #expect(graph.vars.contains { $0.name == "out" }, "example graphs write under the var \"out\" so tests can redirect them")
}

/// Runs every example graph end to end with its outputs redirected to a scratch folder, twice:
/// the second run must reuse everything.
@Test(.enabled(if: sampleClipPresent, "needs data/single_face.mp4 (bash Scripts/fetch-sample.sh)"), arguments: exampleGraphs)
func exampleGraphRuns(_ name: String) throws {
    let url = repositoryRoot.appendingPathComponent("Graphs").appendingPathComponent(name)
    let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("pgflow-graphs-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: scratch) }
    let graph = try Graph.load(url, catalog: try shippedCatalog(), overrides: [("out", scratch.appendingPathComponent("out").path)])
    let cache = scratch.appendingPathComponent("cache")
    let first = try Engine(graph: graph, catalog: try shippedCatalog(), operators: Registry.operators, cacheDirectory: cache).run()
    #expect(!first.ran.isEmpty)
    for (target, value) in first.outputs {
        if let path = value["path"]?.string {
            #expect(FileManager.default.fileExists(atPath: path), "\(name): \(target) names \(path), which is missing")
            #expect(path.hasPrefix(scratch.path), "\(name) wrote outside its \"out\" folder: \(path)")
        }
    }
    let second = try Engine(graph: graph, catalog: try shippedCatalog(), operators: Registry.operators, cacheDirectory: cache).run()
    #expect(second.ran.isEmpty, "\(name): second run re-ran \(second.ran)")
}
