import Foundation
import PGFlow
import PGKernels
@testable import PGNodes
import PGTensor
import Testing

/// The NeuralRenderer, Loss, Metrics and Noise nodes: their gradients against finite differences,
/// weights through NPZ, metric values against hand-computed ones, and a renderer fitted through
/// the engine as a user's graph would do it.
@Suite struct RendererLossTests {
    typealias F = VideoNodeFixtures
    let ctx = RunContext.standalone()

    static func random(_ shape: [Int], seed: UInt64, lo: Float = 0, hi: Float = 1) -> Tensor {
        var rng = SplitMix64(seed: seed)
        return Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in
            lo + (hi - lo) * Float(Double(rng.next() >> 11) / 9_007_199_254_740_992)
        })
    }

    static var tinyRenderer: [String: Any] { ["channels": 3, "hidden": [4, 5], "seed": 9] }

    @Test func rendererGradientsMatchFiniteDifferences() throws {
        let node = try NeuralRenderer(params: try F.params("NeuralRenderer", Self.tinyRenderer, base: F.tempFolder()))
        let p = try node.initialParameters(Inputs([:]), context: ctx)
        #expect(p.keys.sorted() == ["layer0.bias", "layer0.weight", "layer1.bias", "layer1.weight", "layer2.bias", "layer2.weight"])
        #expect(p["layer0.weight"]!.shape == [4, 3, 3, 3] && p["layer2.weight"]!.shape == [3, 5, 1, 1])
        try expectRendererGradients(node, p, features: [3, 6, 5], seed: 2)
    }

    /// The renderer's VJP (features and every weight) against finite differences, with non-zero
    /// biases so every layer's bias gradient is exercised away from ReLU kinks.
    func expectRendererGradients(_ node: NeuralRenderer, _ p: [String: Tensor], features: [Int], seed: UInt64) throws {
        var q = p
        for (k, t) in p where k.hasSuffix("bias") { q[k] = Self.random(t.shape, seed: seed + 2, lo: 0.05, hi: 0.2) }
        let inputs = Inputs(["features": .tensor(Self.random(features, seed: seed, lo: -1, hi: 1))], parameters: q)
        let check = GradientCheck(seed: seed + 1, samples: 10, step: 1e-3, absolute: 1e-3, relative: 2e-2)
        let mismatches = try check.check(node, inputs: inputs, wrt: ["features"], outputs: ["rgb"], context: ctx)
        #expect(mismatches.isEmpty, "\(mismatches)")
    }

    @Test func rendererLayersTakeTheirOwnKernelSizesAndActivations() throws {
        var given = Self.tinyRenderer
        given["kernel_size"] = [5, 3]
        given["activation"] = ["identity", "sigmoid"]   // smooth, so finite differences cross no ReLU kink
        let node = try NeuralRenderer(params: try F.params("NeuralRenderer", given, base: F.tempFolder()))
        #expect(node.configuration.layers.map(\.kernelSize) == [5, 3, 1])
        #expect(node.configuration.layers.map(\.activation) == [.identity, .sigmoid, .sigmoid])
        let p = try node.initialParameters(Inputs([:]), context: ctx)
        #expect(p["layer0.weight"]!.shape == [4, 3, 5, 5] && p["layer1.weight"]!.shape == [5, 4, 3, 3])
        try expectRendererGradients(node, p, features: [3, 7, 6], seed: 8)

        given["kernel_size"] = [5, 3, 3]
        #expect { try NeuralRenderer(params: try F.params("NeuralRenderer", given, base: F.tempFolder())) } throws: {
            "\($0)" == "param 'kernel_size' has 3 values for 2 hidden layers; give one, or one per layer"
        }
        given["kernel_size"] = [4, 3]
        #expect { try NeuralRenderer(params: try F.params("NeuralRenderer", given, base: F.tempFolder())) } throws: {
            "\($0)".contains("param 'kernel_size' should be odd")
        }
        // Validation checks each element against the enum's values before anything runs.
        let dir = F.tempFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("g.json")
        try Data("""
        {"pgflow": 1, "nodes": {
          "noise":  {"type": "Noise", "params": {"channels": 3, "width": 8, "height": 8}},
          "render": {"type": "NeuralRenderer", "in": {"features": "noise.image"},
                     "params": {"channels": 3, "hidden": [4, 5], "activation": ["relu", "tanh"]}}
        }, "outputs": ["render.rgb"]}
        """.utf8).write(to: url)
        #expect { try Graph.load(url, catalog: try Catalog.load(shippedCatalog)) } throws: {
            "\($0)".contains("nodes.render.params.activation: ")
                && "\($0)".contains("element 1 should be one of \"relu\", \"sigmoid\", \"identity\", got \"tanh\"")
        }
    }

    @Test func rendererWeightsRoundTripThroughNPZAndBadFilesAreNamed() throws {
        let dir = F.tempFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = NeuralRendererNet.Configuration(inputChannels: 3, hiddenChannels: [4, 5])
        let net = NeuralRendererNet(configuration: config, seed: 77)
        try NPZ.write(net.namedParameters.map { ($0.name, $0.tensor) }, to: dir.appendingPathComponent("w.npz"))
        var given = Self.tinyRenderer
        given["weights"] = "w.npz"
        let node = try NeuralRenderer(params: try F.params("NeuralRenderer", given, base: dir))
        let p = try node.initialParameters(Inputs([:]), context: ctx)
        let features = Self.random([3, 7, 6], seed: 5)
        let rgb = try node.evaluate(Inputs(["features": .tensor(features)], parameters: p), frame: 0, context: ctx)["rgb"]!.tensor!
        #expect(rgb == net(features))

        given["hidden"] = [4, 6]
        let wrong = try NeuralRenderer(params: try F.params("NeuralRenderer", given, base: dir))
        do { _ = try wrong.initialParameters(Inputs([:]), context: ctx); Issue.record("no error") } catch {
            #expect("\(error)".contains("w.npz does not fit the configured renderer"))
            #expect("\(error)".contains("layer1.weight has shape [5, 4, 3, 3], expected [6, 4, 3, 3]"))
        }
        do {
            _ = try node.evaluate(Inputs(["features": .tensor(Self.random([4, 5, 5], seed: 1))], parameters: p), frame: 0, context: ctx)
            Issue.record("no error")
        } catch {
            #expect("\(error)" == "input 'features' should be [3, H, W] (param 'channels'), got [4, 5, 5]")
        }
    }

    /// Inputs for every Loss term on a 5×6 frame.
    func lossInputs() throws -> Inputs {
        Inputs(["image": .tensor(Self.random([3, 5, 6], seed: 11)), "target": .tensor(Self.random([3, 5, 6], seed: 12)),
                "features": .tensor(Self.random([5, 5, 6], seed: 13)), "alpha": .tensor(Self.random([1, 5, 6], seed: 14)),
                "matte": .tensor(Self.random([1, 5, 6], seed: 15)),
                "laplacian": .tensor(Tensor(scalar: 0.3)), "offset": .tensor(Tensor(scalar: 0.02)), "scale": .tensor(Tensor(scalar: 0.5)),
                "opacity": .tensor(Tensor(scalar: -1.2)), "expression": .tensor(Tensor(scalar: 0.7)), "extra": .tensor(Tensor(scalar: 2))])
    }

    @Test(arguments: ["l1", "dssim", "mse", "huber", "stable", "mask", "probe", "laplacian", "offset", "scale", "opacity", "expression", "extra"])
    func everyLossTermsGradientMatchesFiniteDifferences(term: String) throws {
        let dir = F.tempFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        try Self.random([3, 5, 6], seed: 16, lo: -1, hi: 1).writeNPY(to: dir.appendingPathComponent("w.npy"))
        var given: [String: Any] = ["w_l1": 0, "probe": "w.npy"]
        given["w_\(term)"] = 0.75
        if term == "huber" { given["huber_delta"] = 0.2 }
        let node = try Loss(params: try F.params("Loss", given, base: dir))
        let inputs = try lossInputs()
        let out = try node.evaluate(inputs, frame: 0, context: ctx)
        let terms = out["terms"]!.record!
        #expect(terms.keys.sorted() == [term])
        #expect(abs(out["loss"]!.number! - 0.75 * terms[term]!.number!) < 1e-6)
        let check = GradientCheck(seed: 5, samples: 12, step: 1e-3, absolute: 2e-4, relative: 2e-2)
        let mismatches = try check.check(node, inputs: inputs, wrt: ["image", "features", "alpha", "laplacian", "offset", "scale",
                                                                     "opacity", "expression", "extra"],
                                         outputs: ["loss"], context: ctx)
        #expect(mismatches.isEmpty, "\(term): \(mismatches)")
    }

    @Test func lossTermsHaveTheirDefiningValues() throws {
        let inputs = try lossInputs()
        let dir = F.tempFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let paper = try Loss(params: try F.params("Loss", ["w_l1": 0.25, "w_stable": 0.5, "w_dssim": 0.5, "w_mask": 0.5,
                                                           "w_laplacian": 100, "w_offset": 100, "w_scale": 1], base: dir))
        let out = try paper.evaluate(inputs, frame: 0, context: ctx)
        let t = out["terms"]!.record!.mapValues { $0.number! }
        let image = inputs["image"]!.tensor!, target = inputs["target"]!.tensor!
        let features = inputs["features"]!.tensor!, alpha = inputs["alpha"]!.tensor!, matte = inputs["matte"]!.tensor!
        func l1(_ a: [Float], _ b: [Float]) -> Double { zip(a, b).reduce(0.0) { $0 + Double(abs($1.0 - $1.1)) } / Double(a.count) }
        #expect(abs(t["l1"]! - l1(image.scalars, target.scalars)) < 1e-6)
        #expect(abs(t["stable"]! - l1(Array(features.scalars[0..<90]), target.scalars)) < 1e-6)
        #expect(abs(t["mask"]! - l1(alpha.scalars, matte.scalars)) < 1e-6)
        #expect(abs(t["dssim"]! - (1 - Double(Kernels.ssim(image, target)))) < 1e-6)
        let expected = 0.25 * t["l1"]! + 0.5 * t["stable"]! + 0.5 * t["dssim"]! + 0.5 * t["mask"]! + 100 * 0.3 + 100 * 0.02 + 0.5
        #expect(abs(out["loss"]!.number! - expected) < 1e-4)

        let missing = try Loss(params: try F.params("Loss", ["w_l1": 0, "w_mask": 1], base: dir))
        do { _ = try missing.evaluate(Inputs(["image": inputs["image"]!]), frame: 0, context: ctx); Issue.record("no error") } catch {
            #expect("\(error)" == "w_mask is set but input 'alpha' is not connected")
        }
    }

    @Test func metricsReportKnownValuesForTheFramesAsked() throws {
        let dir = F.tempFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let node = try Metrics(params: try F.params("Metrics", ["path": "report/m.json", "frames": "50%:"], base: dir))
        // Frame t is the reference plus 0.1·(t mod 2): MSE 0.01 (PSNR 20 dB) on odd frames, exact on even ones.
        let reference = (0..<4).map { Self.random([3, 8, 8], seed: UInt64($0), lo: 0.2, hi: 0.8) }
        let frames = reference.enumerated().map { t, r in Tensor(shape: r.shape, scalars: r.scalars.map { $0 + 0.1 * Float(t % 2) }) }
        var t = 0
        let stream = FrameStream(count: 4) {
            guard t < 4 else { return nil }
            defer { t += 1 }
            return (t, Inputs(["image": .tensor(frames[t]), "reference": .tensor(reference[t])]))
        }
        let out = try node.consume(stream, inputs: Inputs([:]), context: ctx)
        let m = out["metrics"]!.record!.mapValues { $0.number! }
        #expect(m["frames"] == 2)
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("report/m.json"))) as! [String: Any]
        let perFrame = report["per_frame"] as! [[String: Any]]
        #expect(perFrame.map { $0["frame"] as! Int } == [2, 3])
        #expect(perFrame[0]["psnr"] as? String == "inf")
        #expect(abs((perFrame[1]["psnr"] as! Double) - 20) < 1e-3)
        #expect(abs((perFrame[1]["l1"] as! Double) - 0.1) < 1e-5)
        // psnr is +inf on average (one exact frame); the PSNR of the mean MSE is 10·log10(1/0.005).
        #expect(abs(m["psnr_of_mean_mse"]! - 10 * log10(200)) < 1e-3)
        #expect(m["ssim"]! < 1 && m["ssim"]! > 0.9)
        let flickerByHand = zip(frames[2].scalars, frames[3].scalars).reduce(0.0) { $0 + Double(abs($1.0 - $1.1)) } / 192
        #expect(abs(m["flicker"]! - flickerByHand) < 1e-6)
    }

    /// With a mask every metric counts only the subject, and relative flicker compares the result's
    /// frame-to-frame change with the reference's own.
    @Test func maskedMetricsAndRelativeFlicker() throws {
        let dir = F.tempFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let node = try Metrics(params: try F.params("Metrics", ["path": "m.json"], base: dir))
        // 1×4×4 frames: the left half is the subject (mask 1). On it the reference brightens by
        // 0.1 a frame and the result by 0.2, so the (masked) flicker is 0.2 against the reference's
        // 0.1; outside it the result is off by 0.5, which the mask must hide.
        var mask = Tensor(zeros: [1, 4, 4])
        for y in 0..<4 { for x in 0..<2 { mask[0, y, x] = 1 } }
        func frame(_ t: Int, subject: Float, rest: Float) -> Tensor {
            var f = Tensor(zeros: [1, 4, 4])
            for y in 0..<4 { for x in 0..<4 { f[0, y, x] = x < 2 ? subject : rest } }
            return f
        }
        let reference = (0..<3).map { frame($0, subject: 0.3 + 0.1 * Float($0), rest: 0.2) }
        let image = (0..<3).map { frame($0, subject: 0.5 + 0.2 * Float($0), rest: 0.7) }
        var t = 0
        let stream = FrameStream(count: 3) {
            guard t < 3 else { return nil }
            defer { t += 1 }
            return (t, Inputs(["image": .tensor(image[t]), "reference": .tensor(reference[t]), "mask": .tensor(mask)]))
        }
        let m = try node.consume(stream, inputs: Inputs([:]), context: ctx)["metrics"]!.record!.mapValues { $0.number! }
        // |result − reference| on the subject: 0.2, 0.3, 0.4 → mean 0.3 (the 0.5 outside is ignored).
        #expect(abs(m["l1"]! - 0.3) < 1e-5, "\(m)")
        #expect(abs(m["flicker"]! - 0.2) < 1e-5 && abs(m["reference_flicker"]! - 0.1) < 1e-5, "\(m)")
        #expect(abs(m["relative_flicker"]! - 2) < 1e-4, "\(m)")
        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("m.json"))) as! [String: Any]
        #expect(report["masked"] as? Bool == true)
    }

    /// Noise features → NeuralRenderer → Loss(L1) against a photo (the head fixture), trained by an
    /// optimize stage: the loss falls ≥10×, the exported weights reproduce the final loss in a
    /// second graph that starts from them.
    @Test func aGraphFitsTheRendererToAPhoto() throws {
        let dir = F.tempFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let photo = FieldFixtures.directory.appendingPathComponent("field-head-expressive.png").path
        func graph(_ name: String, weights: String?) -> String {
            let w = weights.map { ", \"weights\": \"\($0)\"" } ?? ""
            return """
            {"pgflow": 1, "name": "\(name)",
             "nodes": {
               "noise":  {"type": "Noise", "params": {"channels": 8, "width": 16, "height": 16, "seed": 3}},
               "photo":  {"type": "VideoSource", "params": {"path": "\(photo)", "size": [16, 16]}},
               "render": {"type": "NeuralRenderer", "in": {"features": "noise.image"},
                          "params": {"channels": 8, "hidden": [16, 16], "seed": 1\(w)}},
               "loss":   {"type": "Loss", "in": {"image": "render.rgb", "target": "photo.frames"}, "params": {"w_l1": 1}}
             },
             "stages": [{"name": "fit", "optimize": {"loss": "loss.loss", "train": ["render"], "steps": \(weights == nil ? 300 : 1),
                         "lr": 0.01, "eps": 1e-8, "export": "\(weights == nil ? "weights" : "tuned")"}}]}
            """
        }
        func run(_ name: String, weights: String?) throws -> LossHistory {
            let url = dir.appendingPathComponent("\(name).json")
            try Data(graph(name, weights: weights).utf8).write(to: url)
            let catalog = try Catalog.load(shippedCatalog)
            let engine = try Engine(graph: try Graph.load(url, catalog: catalog), catalog: catalog, operators: Registry.operators,
                                    cacheDirectory: dir.appendingPathComponent("cache"), options: RunOptions(threads: 2))
            return try engine.run().histories["fit"]!
        }
        let fit = try run("fit", weights: nil)
        let l1 = fit.names.firstIndex(of: "terms.l1")!
        let first = fit.rows.first![l1], last = fit.rows.last![l1]
        #expect(last * 10 <= first, "L1 \(first) → \(last) in 300 steps")

        // The first step of a graph that starts from the exported weights sees (nearly) the final loss.
        // It exports elsewhere: a run may not write the weights file it reads.
        let resumed = try run("resume", weights: "weights/render.npz")
        #expect(abs(resumed.rows[0][l1] - last) < 0.02, "exported weights give L1 \(resumed.rows[0][l1]), training ended at \(last)")
    }
}
