import Foundation
import PGFlow
import PGNodes
import PGTensor
import Testing

/// Graphs/edit.json at toy size on the real clip: reconstruct, edit by iterative dataset update
/// with face-aware style editing and ExprLoss, render, and report against the per-frame edit.
@Suite(.enabled(if: sampleClipPresent && facePlugins, "needs data/single_face.mp4 and the plugin environment (bash Scripts/fetch-sample.sh; bash Scripts/setup-plugins.sh)"))
struct EditGraphTests {
    @Test func editingRunsTheDatasetUpdateAndReRunsOnlyTheEditWhenTheStyleChanges() throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("pgflow-edit-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let out = scratch.appendingPathComponent("out").path
        func run(_ vars: [(String, String)]) throws -> RunSummary {
            let url = repositoryRoot.appendingPathComponent("Graphs/edit.json")
            let graph = try Graph.load(url, catalog: try shippedCatalog(), overrides: [("out", out)] + ExampleRun.of("edit.json").vars + vars)
            return try Engine(graph: graph, catalog: try shippedCatalog(), operators: Registry.operators,
                              cacheDirectory: scratch.appendingPathComponent("cache"), options: RunOptions(threads: 2)).run()
        }
        let first = try run([])
        // 8 steps, every 1, at most once per frame: each frame was edited (crop and whole frame)
        // the first time it was drawn, and only then.
        let history = try #require(first.histories["edit"])
        let edits = Int(try #require(history.rows.last?.last))
        #expect(edits >= 1 && edits <= 8)
        #expect(first.ran["stage:edit"]?.contains("dataset update: \(edits) edits of \(edits) frames at steps 0") == true, "\(first.ran)")
        for term in ["terms.l1", "terms.stable", "terms.expression", "terms.opacity", "edits"] {
            #expect(history.names.contains(term), "the edit history should have \(term): \(history.names)")
        }
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/metrics.json"))) as! [String: Any]
        let summary = try #require(report["summary"] as? [String: Any])
        for key in ["flicker_vs_per_frame", "colour_distance_to_per_frame", "colour_distance_to_reference", "per_frame_flicker"] {
            #expect(summary[key] is Double, "metrics.json should state \(key): \(summary)")
        }
        for file in ["edited.mp4", "comparison.mp4", "per-frame-metrics.json", "edit-loss.csv"] {
            #expect(FileManager.default.fileExists(atPath: out + "/" + file), "\(file) is missing")
        }
        // Another style: the reconstruction is reused, the edit stage and what follows run again.
        let second = try run([("edit", #"{"style": "7", "input": "source"}"#)])
        #expect(second.cached.contains("stage:reconstruct"), "\(second.cached)")
        #expect(second.ran["stage:edit"] != nil && second.ran["track"] == nil && second.ran["detect"] == nil, "\(second.ran)")
    }
}
