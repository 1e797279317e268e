import Foundation
import PGFlow
import PGNodes
import PGTensor
import Testing

/// The whole first pipeline at toy size: make the synthetic sample (64², 10 frames), reconstruct
/// it (a few steps), and check what a user gets — the videos, the held-out report, the loss
/// history, the exported weights — and that changing only an encoder setting re-runs only the
/// encoders.
@Suite struct ReconstructPipelineTests {
    @Test func theTinyPipelineRunsEndToEndAndReRunsOnlyWhatChanged() throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("pgflow-reconstruct-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let out = scratch.appendingPathComponent("out").path
        let cache = scratch.appendingPathComponent("cache")
        func run(_ name: String, _ vars: [(String, String)]) throws -> RunSummary {
            let url = repositoryRoot.appendingPathComponent("Graphs/\(name)")
            let graph = try Graph.load(url, catalog: try shippedCatalog(), overrides: [("out", out)] + vars)
            return try Engine(graph: graph, catalog: try shippedCatalog(), operators: Registry.operators, cacheDirectory: cache,
                              options: RunOptions(threads: 2)).run()
        }
        _ = try run("make-sample.json", [("size", "64"), ("frames", "10")])
        let settings = [("size", "64"), ("uv", "32"), ("steps", "8"),
                        ("video", out + "/sample.mp4"), ("matte", out + "/sample_matte.mp4"), ("tracking", out + "/sample_tracking.json")]
        let first = try run("reconstruct.json", settings)

        // Trained on frames 0–5 (60% of 10), measured on 6–9.
        let history = first.histories["reconstruct"]!
        #expect(history.rows.count == 8)
        for term in ["loss", "terms.l1", "terms.dssim", "terms.stable", "terms.mask", "terms.laplacian", "terms.offset", "terms.scale"] {
            #expect(history.names.contains(term), "the loss history should have \(term)")
        }
        let loss = history.names.firstIndex(of: "loss")!
        #expect(history.rows.last![loss] < history.rows.first![loss])
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/report.json"))) as! [String: Any]
        let summary = report["summary"] as! [String: Any]
        #expect(summary["frames"] as? Int == 4 && summary["first_frame"] as? Int == 6)
        let trained = try #require(summary["psnr"] as? Double, "psnr missing from \(summary)")
        let weights = try NPZ.read(URL(fileURLWithPath: out + "/weights/render.npz"))
        #expect(weights["layer0.weight"]?.shape == [128, 32, 3, 3])
        #expect(try NPZ.read(URL(fileURLWithPath: out + "/weights/field.npz"))["features"]?.shape[1] == 32)
        for file in ["reconstruction.mp4", "comparison.mp4", "reconstruct-loss.csv"] {
            #expect(FileManager.default.fileExists(atPath: out + "/" + file), "\(file) is missing")
        }

        // Only a run-stage setting changes: training, rendering and metrics come from the cache.
        let second = try run("reconstruct.json", settings + [("crf", "23")])
        #expect(Set(second.ran.keys) == ["video", "compare"], "re-ran \(second.ran)")

        // What the held-out PSNR means: training made the render closer to the unseen frames than
        // the untrained avatar is (0 steps; measured 11.5 dB after 8 steps here).
        _ = try run("reconstruct.json", settings.filter { $0.0 != "steps" } + [("steps", "0")])
        let untrained = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + "/report.json"))) as! [String: Any]
        let before = try #require((untrained["summary"] as? [String: Any])?["psnr"] as? Double)
        #expect(trained > before + 1, "held-out PSNR \(before) dB untrained, \(trained) dB after 8 steps")
    }
}
