import Foundation
import PGFlow
import PGKernels
@testable import PGNodes
import PGTensor
import Testing

/// Per-frame tracking of the built-in head: a different seeded pose for every frame.
struct FieldTrackingSource: FrameSource {
    static let type = "FieldTrackingSource"
    static let version = 1
    init(params: Params) throws {}
    func frameCount(_ inputs: Inputs, context: RunContext) throws -> Int { 3 }
    func evaluate(_ inputs: Inputs, frame: Int?, context: RunContext) throws -> [String: Value] {
        ["tracking": FieldFixtures.tracking(for: HeadModel.model, seed: UInt64(frame ?? 0) + 1).value]
    }
}

/// A test-only loss: Σ w·means + Σ w·quats + Σ w·features + 0.5·laplacian + 0.3·sparsity, with
/// fixed weights w_i = sin(0.37·i + c).
struct FieldProbeLoss: Differentiable {
    static let type = "FieldProbeLoss"
    static let version = 1
    init(params: Params) throws {}
    static func weights(_ count: Int, _ c: Float) -> [Float] { (0..<count).map { sin(0.37 * Float($0) + c) } }

    static func value(_ g: Value, laplacian: Double, sparsity: Double) -> Double {
        var total = 0.5 * laplacian + 0.3 * sparsity
        for (key, c) in [("means", Float(0)), ("quats", 1), ("features", 2)] {
            let t = g[key]!.tensor!
            total += zip(t.scalars, weights(t.count, c)).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        return total
    }

    func forward(_ inputs: Inputs, frame: Int?, context: RunContext) throws -> (outputs: [String: Value], saved: Saved) {
        let g = try inputs.value("gaussians")
        let loss = Self.value(g, laplacian: try inputs.number("laplacian"), sparsity: try inputs.number("sparsity"))
        return (["loss": .tensor(Tensor(scalar: Float(loss)))], Saved(g))
    }

    func vjp(_ cotangents: [String: Value], saved: Saved, inputs: Inputs, frame: Int?, context: RunContext) throws -> Gradients {
        let g: Value = try saved.get()
        let c = cotangents["loss"]?.number ?? 0
        var record: [String: Value] = [:]
        for (key, k) in [("means", Float(0)), ("quats", 1), ("features", 2)] {
            let t = g[key]!.tensor!
            record[key] = .tensor(Tensor(shape: t.shape, scalars: Self.weights(t.count, k).map { $0 * Float(c) }))
        }
        return Gradients(inputs: ["gaussians": .record(record), "laplacian": .number(0.5 * c), "sparsity": .number(0.3 * c)])
    }
}

@Suite struct GaussianFieldEngineTests {
    static let catalogFiles = [
        "FieldTrackingSource.json": """
        {"type": "FieldTrackingSource", "doc": "Seeded per-frame tracking of the built-in head.",
         "outputs": {"tracking": {"type": "Tracking", "rate": "per-frame"}}}
        """,
        "FieldProbeLoss.json": """
        {"type": "FieldProbeLoss", "doc": "A fixed linear probe of Gaussians plus two regularisers.",
         "inputs": {"gaussians": {"type": "Gaussians", "rate": "per-frame", "differentiable": true},
                    "laplacian": {"type": "Scalar", "rate": "per-frame", "differentiable": true},
                    "sparsity": {"type": "Scalar", "rate": "per-frame", "differentiable": true}},
         "outputs": {"loss": {"type": "Scalar", "rate": "per-frame", "differentiable": true}}}
        """,
    ]

    @Test func engineGradientsReachEveryGroupAndMatchFiniteDifferences() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("pgflow-field-\(UUID().uuidString)")
        let nodes = root.appendingPathComponent("Nodes")
        try FileManager.default.createDirectory(at: nodes, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: root) }
        try FileManager.default.copyItem(at: shippedCatalog.appendingPathComponent("GaussianField.json"),
                                         to: nodes.appendingPathComponent("GaussianField.json"))
        for (name, text) in Self.catalogFiles { try Data(text.utf8).write(to: nodes.appendingPathComponent(name)) }
        let graphURL = root.appendingPathComponent("field.json")
        try Data("""
        {"pgflow": 1, "name": "field-gradients", "outputs": ["loss.loss"],
         "nodes": {
           "track": {"type": "FieldTrackingSource"},
           "field": {"type": "GaussianField", "in": {"tracking": "track.tracking"}, "params": {"uv": 12, "features": 3}},
           "loss":  {"type": "FieldProbeLoss", "in": {"gaussians": "field.gaussians", "laplacian": "field.reg_laplacian",
                                                     "sparsity": "field.reg_opacity"}}
         }}
        """.utf8).write(to: graphURL)
        let catalog = try Catalog.load(nodes)
        let engine = try Engine(graph: try Graph.load(graphURL, catalog: catalog),
                                catalog: catalog, operators: [GaussianField.self, FieldTrackingSource.self, FieldProbeLoss.self],
                                cacheDirectory: root.appendingPathComponent("cache"), options: RunOptions(threads: 2))
        let grads = try engine.gradients(loss: PortRef(node: "loss", port: "loss"), frame: 1)
        #expect(grads.map(\.0) == ["field.displacement", "field.features", "field.log_scale", "field.offset", "field.opacity", "field.rotation"])

        // The same loss computed directly, differentiated by central differences.
        let op = try FieldFixtures.field(["uv": .int(12), "features": .int(3)])
        let ctx = RunContext.standalone()
        let p0 = try op.initialParameters(Inputs([:]), context: ctx)
        let tracking = FieldFixtures.tracking(for: HeadModel.model, seed: 2).value
        func loss(_ p: [String: Tensor]) throws -> Double {
            let o = try op.evaluate(Inputs(["tracking": tracking], parameters: p), frame: 1, context: ctx)
            return FieldProbeLoss.value(o["gaussians"]!, laplacian: o["reg_laplacian"]!.number!, sparsity: o["reg_opacity"]!.number!)
        }
        var rng = SplitMix64(seed: 7)
        for (name, g) in grads {
            let group = String(name.dropFirst("field.".count))
            let t = p0[group]!
            #expect(g.shape == t.shape)
            // Entries that matter: for ΔM, vertices under some Gaussian.
            var candidates = Array(0..<t.count)
            if group == "displacement" {
                let s = try op.surface()
                candidates = Array(Set(s.embedding.faces.flatMap { f in (0..<3).flatMap { k in (0..<3).map { 3 * Int(s.model.faces[3 * Int(f) + k]) + $0 } } })).sorted()
            }
            for _ in 0..<6 {
                let i = candidates[Int(rng.next() % UInt64(candidates.count))]
                let h: Float = 1e-2
                var plus = p0, minus = p0
                plus[group]!.scalars[i] += h
                minus[group]!.scalars[i] -= h
                let fd = (try loss(plus) - loss(minus)) / Double(plus[group]!.scalars[i] - minus[group]!.scalars[i])
                #expect(abs(Double(g.scalars[i]) - fd) < 2e-3 * max(1, abs(fd)), "seed 7 \(name)[\(i)]: engine \(g.scalars[i]) vs finite difference \(fd)")
            }
        }
    }
}
