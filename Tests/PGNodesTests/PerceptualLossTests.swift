import Foundation
import PGFlow
@testable import PGNodes
import PGTensor
import Testing

/// PerceptualLoss with the lpips plugin: its distance against LPIPS written again in NumPy
/// (Tests/Fixtures/plugins/lpips_reference.py) on a seeded random AlexNet with LPIPS's real linear
/// layers, its image gradient against central differences of that distance, and the error a user
/// without AlexNet weights gets.
@Suite(.enabled(if: FileManager.default.fileExists(atPath: repositoryRoot.appendingPathComponent(".venv/.pgflow-plugins-full").path),
                "needs the full plugin environment (torch, LPIPS's linear layers): bash Scripts/setup-plugins.sh --full"))
struct PerceptualLossTests {
    static let python = repositoryRoot.appendingPathComponent(".venv/bin/python3")
    static let fixture = repositoryRoot.appendingPathComponent("Tests/Fixtures/plugins/lpips_reference.py")
    static let linear = repositoryRoot.appendingPathComponent(".venv/share/pgflow/models/lpips-alex-v0.1.pth")

    @discardableResult
    static func fixture(_ arguments: [String]) throws -> String {
        let p = Process()
        p.executableURL = python
        p.arguments = [fixture.path] + arguments
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        try #require(p.terminationStatus == 0, "lpips_reference.py \(arguments.first ?? "") failed")
        return text
    }

    static func node(backbone: String?) throws -> PerceptualLoss {
        let params: [(key: String, value: JSON)] = backbone.map { [("backbone", .string($0))] } ?? []
        return try PerceptualLoss(params: Params(["plugin": .string("lpips"), "params": .object(params)], baseDirectory: shippedCatalog))
    }

    static func images() -> (Tensor, Tensor) {
        var rng = SplitMix64(seed: 21)
        let a = Tensor(shape: [3, 64, 64], scalars: (0..<(3 * 64 * 64)).map { _ in Float(rng.uniformOpen()) })
        let b = Tensor(shape: a.shape, scalars: a.scalars.map { min(1, max(0, $0 + Float(rng.uniformOpen() - 0.5) * 0.3)) })
        return (a, b)
    }

    @Test func theDistanceMatchesNumPyAndTheGradientMatchesCentralDifferences() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pgflow-lpips-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let backbone = dir.appendingPathComponent("alexnet.pth").path
        try Self.fixture(["backbone", backbone])
        let (image, target) = Self.images()
        try image.npyDataHWC().write(to: dir.appendingPathComponent("a.npy"))
        try target.npyDataHWC().write(to: dir.appendingPathComponent("b.npy"))
        let reference = try #require(Double(try Self.fixture(["distance", backbone, Self.linear.path, dir.appendingPathComponent("a.npy").path,
                                                               dir.appendingPathComponent("b.npy").path]).trimmingCharacters(in: .whitespacesAndNewlines)))

        let catalog = try Catalog.load(shippedCatalog)
        let host = PluginHost(catalog: catalog.plugins, python: PluginHost.defaultPython(catalogDirectory: shippedCatalog, environment: [:]), threads: 2)
        defer { host.shutdown() }
        let ctx = RunContext(nodeID: "lpips", nodeType: "PerceptualLoss", graphDirectory: shippedCatalog, plugins: host)
        let node = try Self.node(backbone: backbone)
        func distance(_ x: Tensor) throws -> Double {
            try #require(try node.evaluate(Inputs(["image": .tensor(x), "target": .tensor(target)]), frame: 0, context: ctx)["loss"]?.number)
        }
        let inputs = Inputs(["image": .tensor(image), "target": .tensor(target)])
        let (out, saved) = try node.forward(inputs, frame: 0, context: ctx)
        let d = try #require(out["loss"]?.number)
        #expect(reference > 0.001 && abs(d - reference) <= 1e-5 * reference, "plugin \(d), NumPy \(reference)")
        #expect(abs(try distance(image) - d) <= 1e-7 * d, "evaluate and forward agree")

        // ⟨∂d/∂I, v⟩ against (d(I + εv) − d(I − εv)) / 2ε, and the cotangent scales the gradient.
        let g = try #require(try node.vjp(["loss": .number(3)], saved: saved, inputs: inputs, frame: 0, context: ctx).inputs["image"]?.tensor)
        var rng = SplitMix64(seed: 4)
        let v = Tensor(shape: image.shape, scalars: (0..<image.count).map { _ in Float(rng.uniformOpen() - 0.5) })
        let eps: Float = 1e-2
        let plus = Tensor(shape: image.shape, scalars: zip(image.scalars, v.scalars).map { $0 + eps * $1 })
        let minus = Tensor(shape: image.shape, scalars: zip(image.scalars, v.scalars).map { $0 - eps * $1 })
        let fd = (try distance(plus) - (try distance(minus))) / Double(2 * eps)
        let analytic = zip(g.scalars, v.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) } / 3
        #expect(abs(fd) > 1e-4 && abs(analytic - fd) <= 0.02 * abs(fd), "analytic \(analytic), central differences \(fd)")
    }

    /// Inside an optimize stage, as a user's edit stage uses it: a renderer trained through
    /// Loss.perceptual alone brings LPIPS down.
    @Test func anOptimizeStageTrainsThroughIt() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pgflow-lpips-stage-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let backbone = dir.appendingPathComponent("alexnet.pth").path
        try Self.fixture(["backbone", backbone])
        let graph = """
        {"pgflow": 1, "name": "lpips-stage",
         "nodes": {
           "noise":  {"type": "Noise", "params": {"channels": 8, "width": 64, "height": 64, "seed": 3}},
           "photo":  {"type": "Noise", "params": {"channels": 3, "width": 64, "height": 64, "seed": 5}},
           "render": {"type": "NeuralRenderer", "in": {"features": "noise.image"}, "params": {"channels": 8, "hidden": [16], "seed": 1}},
           "lpips":  {"type": "PerceptualLoss", "in": {"image": "render.rgb", "target": "photo.image"},
                      "params": {"params": {"backbone": "\(backbone)"}}},
           "loss":   {"type": "Loss", "in": {"image": "render.rgb", "target": "photo.image", "perceptual": "lpips.loss"},
                      "params": {"w_l1": 0, "w_perceptual": 1}}
         },
         "stages": [{"name": "fit", "optimize": {"loss": "loss.loss", "train": ["render"], "steps": 30, "lr": 0.01, "eps": 1e-8}}]}
        """
        let url = dir.appendingPathComponent("graph.json")
        try Data(graph.utf8).write(to: url)
        let catalog = try Catalog.load(shippedCatalog)
        let engine = try Engine(graph: try Graph.load(url, catalog: catalog), catalog: catalog, operators: Registry.operators,
                                cacheDirectory: dir.appendingPathComponent("cache"), options: RunOptions(threads: 2))
        let history = try #require(try engine.run().histories["fit"])
        let column = try #require(history.names.firstIndex(of: "terms.perceptual"), "columns \(history.names)")
        let first = history.rows.first![column], last = history.rows.last![column]
        #expect(first > 0 && last < 0.8 * first, "LPIPS \(first) → \(last) in 30 steps")
    }

    @Test func withoutAlexNetWeightsTheErrorSaysWhatIsMissing() throws {
        let catalog = try Catalog.load(shippedCatalog)
        let host = PluginHost(catalog: catalog.plugins, python: PluginHost.defaultPython(catalogDirectory: shippedCatalog, environment: [:]), threads: 2)
        defer { host.shutdown() }
        let ctx = RunContext(nodeID: "lpips", nodeType: "PerceptualLoss", graphDirectory: shippedCatalog, plugins: host)
        let (image, target) = Self.images()
        #expect {
            _ = try Self.node(backbone: nil).evaluate(Inputs(["image": .tensor(image), "target": .tensor(target)]), frame: 0, context: ctx)
        } throws: { error in
            let text = "\(error)"
            return text.contains("backbone") && text.contains("lpips") && text.contains("cannot download")
        }
    }
}
