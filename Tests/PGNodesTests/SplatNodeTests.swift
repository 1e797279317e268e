import Foundation
import PGFlow
import PGKernels
import PGMedia
@testable import PGNodes
import PGTensor
import Testing

/// A small seeded head-like cloud as a `Gaussians` record, and a camera record that sees it.
enum SplatScenes {
    static func gaussians(count n: Int, channels c: Int, seed: UInt64, isotropic: Bool = false) -> [String: Value] {
        var state = seed
        func uniform() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(state >> 40) / Float(1 << 24)
        }
        var means: [Float] = [], scales: [Float] = [], quats: [Float] = [], logits: [Float] = [], feats: [Float] = []
        for _ in 0..<n {
            let u = 2 * uniform() - 1, phi = 2 * Float.pi * uniform(), s = (1 - u * u).squareRoot()
            means += [0.09 * s * cos(phi), 0.11 * u, 0.09 * s * sin(phi)]
            scales += (0..<(isotropic ? 1 : 3)).map { _ in log(0.02) + 0.5 * (uniform() - 0.5) }
            quats += (0..<4).map { _ in uniform() - 0.5 }
            logits.append(1 + 2 * (uniform() - 0.5))
            feats += (0..<c).map { _ in uniform() }
        }
        return ["means": .tensor(Tensor(shape: [n, 3], scalars: means)),
                "log_scales": .tensor(Tensor(shape: [n, isotropic ? 1 : 3], scalars: scales)),
                "quats": .tensor(Tensor(shape: [n, 4], scalars: quats)),
                "opacity_logits": .tensor(Tensor(shape: [n], scalars: logits)),
                "features": .tensor(Tensor(shape: [n, c], scalars: feats))]
    }

    /// A few large, faint Gaussians in front of the camera: their α = 1/255 contours lie far
    /// outside the image and transmittance never nears 1e-4, so the rendered image is smooth in
    /// every parameter (the depth order too) and Float32 finite differences are meaningful.
    static func smooth(count n: Int, channels c: Int, isotropic: Bool) -> [String: Value] {
        var g = gaussians(count: n, channels: c, seed: 12, isotropic: isotropic)
        func map(_ key: String, _ f: (Int, Float) -> Float) {
            let t = g[key]!.tensor!
            g[key] = .tensor(Tensor(shape: t.shape, scalars: t.scalars.enumerated().map { f($0, $1) }))
        }
        // Depths 3 cm apart: a step never swaps the blending order (a true jump of the image).
        map("means") { i, x in i % 3 == 2 ? -0.075 + 0.03 * Float(i / 3) : 0.3 * x }
        map("log_scales") { i, _ in log(0.15) + 0.1 * Float(i % 5 - 2) }
        map("opacity_logits") { _, x in x - 2 }
        return g
    }

    static let worldToCamera: [Float] = [0.96, 0, 0.28, 0.01, 0, 1, 0, -0.02, -0.28, 0, 0.96, 0.45, 0, 0, 0, 1]

    static func camera(width: Int = 40, height: Int = 32) -> [String: Value] {
        ["fx": .number(Double(width) * 1.6), "fy": .number(Double(width) * 1.65), "cx": .number(Double(width) * 0.48),
         "cy": .number(Double(height) * 0.52), "width": .number(Double(width)), "height": .number(Double(height)),
         "world_to_camera": .tensor(Tensor(shape: [4, 4], scalars: worldToCamera))]
    }
}

func params(_ values: [String: JSON]) -> Params {
    // The catalog's defaults, as validation would fill them in.
    var all: [String: JSON] = ["background": .int(0), "isotropic": .bool(false), "near": .double(0.01),
                               "depth_mode": .string("expected"), "features": .string("auto")]
    for (k, v) in values { all[k] = v }
    return Params(all, baseDirectory: FileManager.default.temporaryDirectory)
}

@Suite("Splat nodes")
struct SplatNodeTests {
    @Test func splatNodeMatchesTheKernelForAnyFrame() throws {
        let node = try Splat(params: params(["background": .array([.double(0.25), .double(-1), .double(0.5)])]))
        let inputs = Inputs(["gaussians": .record(SplatScenes.gaussians(count: 50, channels: 3, seed: 3)),
                             "camera": .record(SplatScenes.camera())])
        let ctx = RunContext.standalone()
        let once = try node.evaluate(inputs, frame: nil, context: ctx)
        let perFrame = try node.evaluate(inputs, frame: 7, context: ctx)
        #expect(once == perFrame, "a static scene renders the same whatever the frame")
        let features = try #require(once["features"]?.tensor), alpha = try #require(once["alpha"]?.tensor)
        let depth = try #require(once["depth"]?.tensor)
        #expect(features.shape == [3, 32, 40] && alpha.shape == [1, 32, 40] && depth.shape == [1, 32, 40])

        let (g, _) = try Splat.gaussians(SplatScenes.gaussians(count: 50, channels: 3, seed: 3), isotropic: false)
        let cam = SplatCamera(fx: 64, fy: 66, cx: 19.2, cy: 16.64, width: 40, height: 32,
                              worldToCamera: SplatScenes.worldToCamera)
        let (direct, _) = SplatKernel.rasterize(g, camera: cam, options: SplatOptions(background: [0.25, -1, 0.5]),
                                                workspace: SplatWorkspace())
        #expect(features.scalars == direct.features && alpha.scalars == direct.alpha && depth.scalars == direct.depth)
        #expect(alpha.scalars.contains { $0 > 0.5 }, "the camera should see the cloud")
        #expect(features.scalars[0] == 0.25 && features.scalars[32 * 40] == -1, "corners show the per-channel background")
    }

    @Test func sizeParamsScaleTheIntrinsics() throws {
        let g = SplatScenes.gaussians(count: 40, channels: 2, seed: 4)
        let half = try Splat(params: params(["width": .int(20)]))
        let out = try half.evaluate(Inputs(["gaussians": .record(g), "camera": .record(SplatScenes.camera())]),
                                    frame: nil, context: .standalone())
        // Rendering at 20 × 16 through the 40 × 32 camera is rendering through its half-size twin.
        let twin = try Splat(params: params([:])).evaluate(
            Inputs(["gaussians": .record(g), "camera": .record(SplatScenes.camera(width: 20, height: 16))]),
            frame: nil, context: .standalone())
        #expect(out["features"]?.tensor?.shape == [2, 16, 20])
        let a = try #require(out["features"]?.tensor?.scalars), b = try #require(twin["features"]?.tensor?.scalars)
        #expect(zip(a, b).allSatisfy { abs($0 - $1) <= 1e-5 })
    }

    @Test func isotropicCloudsAndClearErrors() throws {
        let iso = SplatScenes.gaussians(count: 30, channels: 4, seed: 5, isotropic: true)
        var noQuats = iso
        noQuats["quats"] = nil
        let strict = try Splat(params: params(["isotropic": .bool(true)]))
        let out = try strict.evaluate(Inputs(["gaussians": .record(noQuats), "camera": .record(SplatScenes.camera())]),
                                      frame: 0, context: .standalone())
        #expect(out["features"]?.tensor?.shape == [4, 32, 40])

        let aniso = SplatScenes.gaussians(count: 30, channels: 4, seed: 5)
        var tooMany = aniso
        tooMany["features"] = .tensor(Tensor(zeros: [30, 65]))
        var badMeans = aniso
        badMeans["means"] = .tensor(Tensor(zeros: [30, 2]))
        var missingQuats = aniso
        missingQuats["quats"] = nil
        let plain = try Splat(params: params([:]))
        let cases: [(Splat, [String: Value], String)] = [
            (strict, aniso, "log_scales should be [30, 1]"),
            (plain, tooMany, "1 to 64 feature channels"),
            (plain, badMeans, "means should be [N, 3]"),
            (plain, missingQuats, "no 'quats'"),
            (try Splat(params: params(["background": .array([.double(1), .double(2)])])), aniso, "background"),
        ]
        for (node, g, phrase) in cases {
            #expect {
                _ = try node.evaluate(Inputs(["gaussians": .record(g), "camera": .record(SplatScenes.camera())]),
                                      frame: nil, context: .standalone())
            } throws: { error in
                "\(error)".contains(phrase)
            }
        }
    }

    /// The node's VJP against central differences of its own Float32 forward (PGFlow's
    /// GradientCheck), on a scene without threshold jumps (see `SplatScenes.smooth`); jumpy
    /// scenes are covered by the kernel's tests against a Float64 reference. The node must also
    /// hand back exactly what the kernel computes, in the record's layout.
    @Test(arguments: [false, true])
    func vjpMatchesFiniteDifferences(_ isotropic: Bool) throws {
        let node = try Splat(params: params(["background": .double(0.3), "depth_mode": .string("accumulated")]))
        let smooth = Inputs(["gaussians": .record(SplatScenes.smooth(count: 6, channels: 2, isotropic: isotropic)),
                             "camera": .record(SplatScenes.camera(width: 24, height: 20))])
        let outputs = ["features", "alpha", "depth"]
        var wrt = ["gaussians.means", "gaussians.log_scales", "gaussians.opacity_logits", "gaussians.features"]
        if !isotropic { wrt.append("gaussians.quats") }
        let check = GradientCheck(seed: isotropic ? 4 : 3, samples: 12, step: 1e-3, absolute: 2e-3, relative: 1e-2)
        let mismatches = try check.check(node, inputs: smooth, wrt: wrt, outputs: outputs)
        #expect(mismatches.isEmpty, "seed \(check.seed): \(mismatches)")

        let g = SplatScenes.gaussians(count: 12, channels: 2, seed: 9, isotropic: isotropic)
        let inputs = Inputs(["gaussians": .record(g), "camera": .record(SplatScenes.camera(width: 24, height: 20))])
        // Exactly the kernel's gradients, in the record's layout.
        let (out, saved) = try node.forward(inputs, frame: nil, context: .standalone())
        var rng = SplitMix64(seed: 5)
        func random(_ t: Tensor) -> Tensor { Tensor(shape: t.shape, scalars: t.scalars.map { _ in Float(rng.next() % 1000) / 500 - 1 }) }
        let v = outputs.reduce(into: [String: Value]()) { $0[$1] = .tensor(random(out[$1]!.tensor!)) }
        let nodeGrads = try #require(try node.vjp(v, saved: saved, inputs: inputs, frame: nil, context: .standalone())
            .inputs["gaussians"]?.record)
        let (kg, _) = try Splat.gaussians(g, isotropic: false)
        let (_, tape) = SplatKernel.rasterize(kg, camera: try node.camera(SplatScenes.camera(width: 24, height: 20)),
                                              options: SplatOptions(background: [0.3, 0.3], depthMode: .accumulated),
                                              workspace: SplatWorkspace())
        let k = SplatKernel.rasterizeVJP(tape, vFeatures: v["features"]!.tensor!.scalars, vAlpha: v["alpha"]!.tensor!.scalars,
                                         vDepth: v["depth"]!.tensor!.scalars, workspace: SplatWorkspace())
        #expect(nodeGrads["means"]?.tensor?.scalars == k.vMeans)
        #expect(nodeGrads["log_scales"]?.tensor?.scalars == k.vLogScales)
        #expect(nodeGrads["opacity_logits"]?.tensor?.scalars == k.vOpacityLogits)
        #expect(nodeGrads["features"]?.tensor?.scalars == k.vFeatures)
        #expect(nodeGrads["quats"]?.tensor?.scalars == k.vQuats)
    }

    @Test func vjpReturnsTheInputLayout() throws {
        let node = try Splat(params: params([:]))
        var g = SplatScenes.gaussians(count: 10, channels: 3, seed: 10, isotropic: true)
        g["quats"] = nil
        let inputs = Inputs(["gaussians": .record(g), "camera": .record(SplatScenes.camera())])
        let (out, saved) = try node.forward(inputs, frame: nil, context: .standalone())
        let v = ["alpha": Value.tensor(Tensor(repeating: 1, shape: out["alpha"]!.tensor!.shape))]
        let grads = try node.vjp(v, saved: saved, inputs: inputs, frame: nil, context: .standalone())
        let r = try #require(grads.inputs["gaussians"]?.record)
        #expect(Set(r.keys) == Set(g.keys))
        for (k, value) in g { #expect(r[k]?.tensor?.shape == value.tensor?.shape, "gradient of \(k)") }
        #expect(r["features"]!.tensor!.scalars.allSatisfy { $0 == 0 }, "alpha does not depend on features")
        #expect(r["opacity_logits"]!.tensor!.scalars.contains { $0 > 0 }, "more opacity, more alpha")
    }

    @Test func cameraFileReadsTheRecordAndRejectsBadFiles() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("splat-camera-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let good = dir.appendingPathComponent("cam.json")
        try Data("""
        {"fx": 500, "fy": 510.5, "cx": 255.5, "cy": 250, "width": 512, "height": 500, "note": "ignored",
         "world_to_camera": [[1, 0, 0, 0.1], [0, 1, 0, 0], [0, 0, 1, 2.5], [0, 0, 0, 1]]}
        """.utf8).write(to: good)
        let node = try CameraFile(params: Params(["path": .string("cam.json")], baseDirectory: dir))
        let cam = try #require(try node.evaluate(Inputs([:]), frame: nil, context: .standalone())["camera"]?.record)
        #expect(cam["fx"]?.number == 500 && cam["fy"]?.number == 510.5 && cam["width"]?.number == 512)
        #expect(cam["world_to_camera"]?.tensor == Tensor(shape: [4, 4], scalars: [1, 0, 0, 0.1, 0, 1, 0, 0, 0, 0, 1, 2.5, 0, 0, 0, 1]))

        let bad: [(String, String)] = [
            ("{\"fy\": 1, \"cx\": 0, \"cy\": 0, \"width\": 4, \"height\": 4, \"world_to_camera\": []}", "'fx' is missing"),
            ("{\"fx\": -1, \"fy\": 1, \"cx\": 0, \"cy\": 0, \"width\": 4, \"height\": 4}", "positive"),
            ("{\"fx\": 1, \"fy\": 1, \"cx\": 0, \"cy\": 0, \"width\": 4.5, \"height\": 4}", "integers"),
            ("{\"fx\": 1, \"fy\": 1, \"cx\": 0, \"cy\": 0, \"width\": 4, \"height\": 4, \"world_to_camera\": [[1, 0, 0], [0, 1, 0]]}", "four rows"),
            ("{\"fx\": 1, \"fy\": 1, \"cx\": 0, \"cy\": 0, \"width\": 4, \"height\": 4, \"world_to_camera\": [[1,0,0,0],[0,1,0,0],[0,0,1,0],[0,0,2,1]]}", "last row"),
            ("[1, 2]", "JSON object"),
            ("{not json", "not valid JSON"),
        ]
        for (i, (text, phrase)) in bad.enumerated() {
            let url = dir.appendingPathComponent("bad\(i).json")
            try Data(text.utf8).write(to: url)
            #expect { try CameraFile.read(url) } throws: { "\($0)".contains(phrase) && "\($0)".contains("bad\(i).json") }
        }
        #expect { try CameraFile.read(dir.appendingPathComponent("missing.json")) } throws: { "\($0)".contains("no such file") }
    }

    @Test func gaussianCloudLoadsPLYFeatures() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("splat-cloud-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let n = 5
        let plain = GaussianPLY(means: Tensor(zeros: [n, 3]), sphericalHarmonicsDC: Tensor(repeating: 1, shape: [n, 3]),
                                opacityLogits: Tensor(zeros: [n]), logScales: Tensor(zeros: [n, 1]))
        var neural = plain
        neural.features = Tensor(repeating: 2, shape: [n, 8])
        neural.quats = Tensor(repeating: 0.5, shape: [n, 4])
        try plain.write(to: dir.appendingPathComponent("plain.ply"))
        try neural.write(to: dir.appendingPathComponent("neural.ply"), format: .ascii)
        func load(_ file: String, _ features: String) throws -> [String: Value] {
            let node = try GaussianCloud(params: Params(["path": .string(file), "features": .string(features)], baseDirectory: dir))
            return try #require(try node.evaluate(Inputs([:]), frame: nil, context: .standalone())["gaussians"]?.record)
        }
        let a = try load("plain.ply", "auto")
        #expect(a["features"]?.tensor?.shape == [n, 3] && abs(a["features"]!.tensor!.scalars[0] - 0.7820948) < 1e-6)
        #expect(a["log_scales"]?.tensor?.shape == [n, 1])
        #expect(a["quats"]?.tensor?.scalars.prefix(4) == [1, 0, 0, 0], "no rot_* means identity rotations")
        let b = try load("neural.ply", "auto")
        #expect(b["features"]?.tensor == Tensor(repeating: 2, shape: [n, 8]))
        #expect(b["quats"]?.tensor == Tensor(repeating: 0.5, shape: [n, 4]))
        #expect(try load("neural.ply", "rgb")["features"]?.tensor?.shape == [n, 3])
        #expect { try load("plain.ply", "neural") } throws: { "\($0)".contains("f_feat") }

        // What the cloud node loads, the Splat node renders.
        let out = try Splat(params: params([:])).evaluate(Inputs(["gaussians": .record(b), "camera": .record(SplatScenes.camera())]),
                                                           frame: nil, context: .standalone())
        #expect(out["features"]?.tensor?.shape == [8, 32, 40])
    }
}
