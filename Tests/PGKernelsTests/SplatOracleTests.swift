import Foundation
import Testing
@testable import PGKernels

/// The oracle of shared/oracle (copied into Fixtures/): a scene and what an independent PyTorch
/// Float64 implementation computed from it.
struct SplatOracle {
    var scene: RefScene
    /// [H][W][C] flattened, as in the file.
    var lossWeights: [Double]
    var image: [Double]           // [H, W, C]
    var alpha: [Double]           // [H, W]
    var loss: Double
    var grads: [String: [Double]]

    static func load() throws -> SplatOracle {
        func json(_ name: String) throws -> [String: Any] {
            let url = try #require(Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: "json"))
            let object = try JSONSerialization.jsonObject(with: Data(contentsOf: url))
            return try #require(object as? [String: Any])
        }
        func flat(_ any: Any?) -> [Double] {
            if let a = any as? [Any] { return a.flatMap { flat($0) } }
            if let n = any as? NSNumber { return [n.doubleValue] }
            return []
        }
        let s = try json("splat-scene"), e = try json("splat-expected")
        let cam = try #require(s["camera"] as? [String: Any])
        let channels = try #require((s["channels"] as? NSNumber)?.intValue)
        let camera = RefCamera(fx: flat(cam["fx"])[0], fy: flat(cam["fy"])[0], cx: flat(cam["cx"])[0],
                               cy: flat(cam["cy"])[0], width: try #require((s["width"] as? NSNumber)?.intValue),
                               height: try #require((s["height"] as? NSNumber)?.intValue),
                               worldToCamera: flat(cam["world_to_camera"]), near: flat(cam["near_plane"])[0])
        let scene = RefScene(channels: channels, isotropic: false, means: flat(s["means"]), logScales: flat(s["log_scales"]),
                             quats: flat(s["quats_wxyz"]), logits: flat(s["opacity_logits"]), features: flat(s["features"]),
                             camera: camera, background: flat(s["background"]))
        let g = try #require(e["grads"] as? [String: Any])
        return SplatOracle(scene: scene, lossWeights: flat(s["loss_weights_W"]), image: flat(e["image"]),
                           alpha: flat(e["render_alpha"]), loss: flat(e["loss"])[0],
                           grads: g.mapValues { flat($0) })
    }

    /// [H, W, C] → [C, H, W].
    func channelsFirst(_ hwc: [Double]) -> [Double] {
        let c = scene.channels, hw = scene.camera.width * scene.camera.height
        var out = [Double](repeating: 0, count: hwc.count)
        for p in 0..<hw { for ch in 0..<c { out[ch * hw + p] = hwc[p * c + ch] } }
        return out
    }
}

/// The oracle's rule: |x − ref| ≤ 1e-4·|ref| + 1e-5·max|ref|, elementwise.
func expectClose(_ x: [Double], _ ref: [Double], _ what: String, rel: Double = 1e-4, ofMax: Double = 1e-5,
                 seed: UInt64? = nil, sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(x.count == ref.count, "\(what): \(x.count) values, expected \(ref.count)", sourceLocation: sourceLocation)
    guard x.count == ref.count else { return }
    let scale = ref.map(abs).max() ?? 0
    var bad = 0, worst = 0, worstExcess = -Double.infinity
    for i in 0..<x.count {
        let excess = abs(x[i] - ref[i]) - (rel * abs(ref[i]) + ofMax * scale)
        if excess > 0 || x[i].isNaN { bad += 1 }
        if excess > worstExcess { worstExcess = excess; worst = i }
    }
    let seedText = seed.map { " (seed \($0))" } ?? ""
    #expect(bad == 0, "\(what)\(seedText): \(bad) of \(x.count) outside tolerance; worst at \(worst): \(x[worst]) vs \(ref[worst]), max |ref| \(scale)",
            sourceLocation: sourceLocation)
}

@Suite("Splat oracle")
struct SplatOracleTests {
    @Test func fastKernelMatchesOracle() throws {
        let oracle = try SplatOracle.load()
        let s = oracle.scene
        let ws = SplatWorkspace()
        let (image, tape) = SplatKernel.rasterize(s.splat, camera: s.camera.splat,
                                            options: SplatOptions(background: s.background.map(Float.init)),
                                            workspace: ws)
        expectClose(image.features.map(Double.init), oracle.channelsFirst(oracle.image), "image")
        expectClose(image.alpha.map(Double.init), oracle.alpha, "alpha")
        let weights = oracle.channelsFirst(oracle.lossWeights)
        let loss = zip(image.features, weights).reduce(0.0) { $0 + Double($1.0) * $1.1 }
        #expect(abs(loss - oracle.loss) <= 1e-4 * abs(oracle.loss), "loss \(loss) vs \(oracle.loss)")

        let g = SplatKernel.rasterizeVJP(tape, vFeatures: weights.map(Float.init), vAlpha: nil, vDepth: nil, workspace: ws)
        expectClose(g.vMeans.map(Double.init), oracle.grads["means"]!, "dL/dmeans")
        expectClose(g.vLogScales.map(Double.init), oracle.grads["log_scales"]!, "dL/dlog_scales")
        expectClose(g.vQuats.map(Double.init), oracle.grads["quats_wxyz"]!, "dL/dquats")
        expectClose(g.vOpacityLogits.map(Double.init), oracle.grads["opacity_logits"]!, "dL/dopacity_logits")
        expectClose(g.vFeatures.map(Double.init), oracle.grads["features"]!, "dL/dfeatures")
    }

    @Test func referenceMatchesOracle() throws {
        let oracle = try SplatOracle.load()
        let s = oracle.scene
        let out = refRender(s)
        expectClose(out.image, oracle.channelsFirst(oracle.image), "reference image", rel: 1e-9, ofMax: 1e-10)
        expectClose(out.alpha, oracle.alpha, "reference alpha", rel: 1e-9, ofMax: 1e-10)
        let weights = oracle.channelsFirst(oracle.lossWeights)
        let zeros = [Double](repeating: 0, count: out.alpha.count)
        let grads = refGradient(s, out, vImage: weights, vAlpha: zeros, vDepth: zeros, depthMode: .accumulated)
        // Reassemble the oracle's per-parameter arrays in the reference's per-Gaussian layout.
        let o = oracle.grads
        var expected: [[Double]] = []
        for i in 0..<s.count {
            var row: [Double] = Array(o["means"]![3 * i..<3 * i + 3])
            row += o["log_scales"]![3 * i..<3 * i + 3]
            row += o["quats_wxyz"]![4 * i..<4 * i + 4]
            row.append(o["opacity_logits"]![i])
            row += o["features"]![s.channels * i..<s.channels * (i + 1)]
            expected.append(row)
        }
        expectClose(grads.flatMap { $0 }, expected.flatMap { $0 }, "reference gradient", rel: 1e-6, ofMax: 1e-7)
    }
}
