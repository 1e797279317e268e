import Foundation
import PGFlow
import PGKernels
import PGMedia
@testable import PGNodes
import PGTensor
import Testing

/// GaussianExport through the engine: a static cloud comes back from its .ply exactly, and a
/// posed GaussianField frame is written as the field computes it.
@Suite struct GaussianExportTests {
    static func run(_ graph: String, in dir: URL) throws -> RunSummary {
        let url = dir.appendingPathComponent("g.json")
        try Data(graph.utf8).write(to: url)
        let catalog = try Catalog.load(shippedCatalog)
        return try Engine(graph: try Graph.load(url, catalog: catalog), catalog: catalog, operators: Registry.operators,
                          cacheDirectory: dir.appendingPathComponent("cache"), options: RunOptions(threads: 2)).run()
    }

    @Test(arguments: [false, true])
    func aStaticCloudRoundTripsThroughPLY(isotropic: Bool) throws {
        let dir = VideoNodeFixtures.tempFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let g = SplatScenes.gaussians(count: 40, channels: 5, seed: 11, isotropic: isotropic)
        func t(_ k: String) -> Tensor { g[k]!.tensor! }
        try GaussianPLY(means: t("means"), opacityLogits: t("opacity_logits"), logScales: t("log_scales"),
                        quats: t("quats"), features: t("features")).write(to: dir.appendingPathComponent("in.ply"))
        // A sink fed only static values consumes them as one frame.
        let s = try Self.run("""
        {"pgflow": 1, "nodes": {
          "cloud":  {"type": "GaussianCloud", "params": {"path": "in.ply"}},
          "export": {"type": "GaussianExport", "in": {"gaussians": "cloud.gaussians"}, "params": {"path": "out/cloud.ply"}}
        }, "outputs": ["export.file"]}
        """, in: dir)
        let file = try #require(s.outputs.first?.value["path"]?.string)
        let back = try GaussianPLY.read(URL(fileURLWithPath: file))
        #expect(back.means == t("means") && back.logScales == t("log_scales") && back.quats == t("quats"))
        #expect(back.opacityLogits == t("opacity_logits") && back.features == t("features"))
        // Channels 0–2 are also the degree-0 colour a 3DGS viewer shows.
        let rgb = try #require(back.rgb)
        for i in 0..<40 { for c in 0..<3 {
            #expect(abs(rgb[i, c] - max(0, t("features")[i, c])) < 1e-5)
        } }
    }

    @Test func aPosedFieldFrameIsWrittenAsTheFieldComputesIt() throws {
        let dir = VideoNodeFixtures.tempFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fieldParams: [String: JSON] = ["uv": .int(16), "features": .int(4), "feature_noise": .double(0.3)]
        let s = try Self.run("""
        {"pgflow": 1, "nodes": {
          "actor":  {"type": "Performance", "params": {"frames": 3, "width": 64, "height": 64, "seed": 5}},
          "field":  {"type": "GaussianField", "in": {"tracking": "actor.tracking"},
                     "params": {"uv": 16, "features": 4, "feature_noise": 0.3}},
          "export": {"type": "GaussianExport", "in": {"gaussians": "field.gaussians"}, "params": {"path": "frame2.ply", "frame": 2}},
          "late":   {"type": "GaussianExport", "in": {"gaussians": "field.gaussians"}, "params": {"path": "frame9.ply", "frame": 9}}
        }, "outputs": ["export.file"]}
        """, in: dir)
        #expect(s.ran["export"] != nil)
        let back = try GaussianPLY.read(dir.appendingPathComponent("frame2.ply"))

        let ctx = RunContext.standalone()
        let actor = try Performance(params: try VideoNodeFixtures.params("Performance", ["frames": 3, "width": 64, "height": 64, "seed": 5], base: dir))
        let field = try FieldFixtures.field(fieldParams)
        let tracking = try actor.evaluate(Inputs([:]), frame: 2, context: ctx)["tracking"]!
        let p = try field.initialParameters(Inputs([:]), context: ctx)
        let g = try field.evaluate(Inputs(["tracking": tracking], parameters: p), frame: 2, context: ctx)["gaussians"]!
        #expect(back.count == g["means"]!.tensor!.shape[0] && back.count > 100)
        #expect(back.means == g["means"]!.tensor! && back.features == g["features"]!.tensor!)
        #expect(back.quats == g["quats"]!.tensor! && back.logScales == g["log_scales"]!.tensor!)

        // A frame the clip does not have is an error that says so.
        #expect {
            try Self.run(String(data: try Data(contentsOf: dir.appendingPathComponent("g.json")), encoding: .utf8)!
                .replacingOccurrences(of: "\"outputs\": [\"export.file\"]", with: "\"outputs\": [\"late.file\"]"), in: dir)
        } throws: { "\($0)".contains("param 'frame' is 9, but the clip has 3 frames (0…2)") }
    }
}
