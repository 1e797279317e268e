import Foundation
import PGMedia
import PGTensor
import Testing

/// An exported avatar fine-tuned against a photo: GaussianField from a .ply (a static cloud) →
/// Splat through a CameraFile → NeuralRenderer → Loss. Nothing in the chain is per-frame
/// (issue 18.2: it failed with "splat.features has no value (it did not run)").
@Suite(.serialized) struct StaticChainTests {
    static func graph(steps: Int, target: Bool) -> String {
        let t = target ? ", \"target\": \"photo.frames\"" : ""
        return """
        {"pgflow": 1, "name": "static-chain",
         "nodes": {
           "camera": {"type": "CameraFile", "params": {"path": "camera.json"}},
           "field":  {"type": "GaussianField", "params": {"ply": "scene.ply", "features": 3}},
           "splat":  {"type": "Splat", "in": {"gaussians": "field.gaussians", "camera": "camera.camera"}},
           "render": {"type": "NeuralRenderer", "in": {"features": "splat.features"}, "params": {"channels": 3, "hidden": [8], "seed": 2}},
           "photo":  {"type": "VideoSource", "params": {"path": "photo.png"}},
           "loss":   {"type": "Loss", "in": {"image": "render.rgb"\(t)}, "params": {"w_l1": \(target ? 1 : 0), "w_probe": \(target ? 0 : 1), "probe": "W.npy"}}
         },
         "stages": [{"name": "tune", "optimize": {"loss": "loss.loss", "train": ["field", "render"], "steps": \(steps),
                     "lr": 0.01, "eps": 1e-8, "history": "tune.csv"}}],
         "outputs": ["loss.loss"]}
        """
    }

    @Test func aStaticChainDifferentiatesTrainsAndRuns() throws {
        let (dir, scene, _) = try SplatOracleGradTests.writeScene()
        defer { try? FileManager.default.removeItem(at: dir) }
        let (w, h) = (scene["width"] as! Int, scene["height"] as! Int)
        // The target: a smooth colour ramp the renderer can learn; W for the probe: 3 channels.
        var photo = Tensor(zeros: [3, h, w])
        for y in 0..<h { for x in 0..<w { photo[0, y, x] = Float(x) / Float(w); photo[1, y, x] = Float(y) / Float(h); photo[2, y, x] = 0.5 } }
        try PNGImage.write(photo, to: dir.appendingPathComponent("photo.png"))
        try Tensor(repeating: 0.1, shape: [3, h, w]).writeNPY(to: dir.appendingPathComponent("W.npy"))
        for target in [false, true] {
            try Data(Self.graph(steps: 40, target: target).utf8).write(to: dir.appendingPathComponent("g.json"))
            let grad = try pgflow(["grad", "g.json", "--loss", "loss.loss", "--frame", "0", "-o", "grads.npz"], in: dir)
            #expect(grad.status == 0, "target \(target): \(grad.err)")
            if grad.status == 0 {
                let grads = try NPZ.read(dir.appendingPathComponent("grads.npz"))
                #expect(grads["field.features"].map { $0.scalars.contains { $0 != 0 } } == true, "\(grads.keys.sorted())")
                #expect(grads["render.layer0.weight"].map { $0.scalars.contains { $0 != 0 } } == true, "\(grads.keys.sorted())")
            }
            let until = try pgflow(["exec", "g.json", "--until", "loss"], in: dir)
            #expect(until.status == 0, "target \(target): \(until.err)")
        }
        // Training lowers the loss against the photo.
        let run = try pgflow(["exec", "g.json"], in: dir)
        #expect(run.status == 0, "\(run.err)")
        let rows = try String(contentsOf: dir.appendingPathComponent("tune.csv"), encoding: .utf8).split(separator: "\n").dropFirst()
        let losses = rows.compactMap { Double($0.split(separator: ",")[1]) }
        #expect(losses.count == 40 && losses.last! < 0.7 * losses.first!, "loss \(losses.first ?? -1) → \(losses.last ?? -1)")
    }
}
