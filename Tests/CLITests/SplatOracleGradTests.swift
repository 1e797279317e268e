import Foundation
import PGMedia
import PGTensor
import Testing

/// `pgflow grad` on the Splat oracle scene, as a user would check pgflow against another
/// implementation: the scene's Gaussians as a 3DGS .ply trained by a GaussianField in static-cloud
/// mode, its camera as a CameraFile, Loss's probe term Σ image·W with W from an .npy. The
/// gradients pgflow writes must equal the PyTorch oracle's (Tests/PGKernelsTests/Fixtures).
@Suite struct SplatOracleGradTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("PGKernelsTests/Fixtures")

    /// The oracle scene written into a fresh folder as scene.ply, camera.json and W.npy.
    static func writeScene() throws -> (dir: URL, scene: [String: Any], expected: [String: Any]) {
        let scene = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.fixtures.appendingPathComponent("splat-scene.json"))) as! [String: Any]
        let expected = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.fixtures.appendingPathComponent("splat-expected.json"))) as! [String: Any]
        let n = scene["num_gaussians"] as! Int, c = scene["channels"] as! Int
        let w = scene["width"] as! Int, h = scene["height"] as! Int
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pgflow-oracle-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)

        let cloud = GaussianPLY(means: Tensor(shape: [n, 3], scalars: floats(scene["means"]!)),
                                opacityLogits: Tensor(shape: [n], scalars: floats(scene["opacity_logits"]!)),
                                logScales: Tensor(shape: [n, 3], scalars: floats(scene["log_scales"]!)),
                                quats: Tensor(shape: [n, 4], scalars: floats(scene["quats_wxyz"]!)),
                                features: Tensor(shape: [n, c], scalars: floats(scene["features"]!)))
        try cloud.write(to: dir.appendingPathComponent("scene.ply"))
        let cam = scene["camera"] as! [String: Any]
        let camera: [String: Any] = ["fx": cam["fx"]!, "fy": cam["fy"]!, "cx": cam["cx"]!, "cy": cam["cy"]!,
                                     "width": w, "height": h, "world_to_camera": cam["world_to_camera"]!]
        try JSONSerialization.data(withJSONObject: camera).write(to: dir.appendingPathComponent("camera.json"))
        // W is stored [H][W][C]; images in pgflow are [C, H, W].
        let hwc = floats(scene["loss_weights_W"]!)
        var chw = [Float](repeating: 0, count: c * h * w)
        for y in 0..<h { for x in 0..<w { for k in 0..<c { chw[(k * h + y) * w + x] = hwc[(y * w + x) * c + k] } } }
        try Tensor(shape: [c, h, w], scalars: chw).writeNPY(to: dir.appendingPathComponent("W.npy"))
        return (dir, scene, expected)
    }

    static func floats(_ any: Any) -> [Float] {
        if let a = any as? [Any] { return a.flatMap(floats) }
        return [Float((any as! NSNumber).doubleValue)]
    }

    @Test func gradientsOfTheOracleSceneMatchTheOracle() throws {
        let (dir, scene, expected) = try Self.writeScene()
        defer { try? FileManager.default.removeItem(at: dir) }
        let c = scene["channels"] as! Int
        let floats = Self.floats
        let background = floats(scene["background"]!).map { String($0) }.joined(separator: ", ")
        try Data("""
        {"pgflow": 1, "name": "splat-oracle",
         "nodes": {
           "camera": {"type": "CameraFile", "params": {"path": "camera.json"}},
           "cloud":  {"type": "GaussianField", "params": {"ply": "scene.ply", "features": \(c)}},
           "splat":  {"type": "Splat", "in": {"gaussians": "cloud.gaussians", "camera": "camera.camera"},
                      "params": {"background": [\(background)]}},
           "loss":   {"type": "Loss", "in": {"image": "splat.features"}, "params": {"w_l1": 0, "w_probe": 1, "probe": "W.npy"}}
         },
         "outputs": ["loss.loss"]}
        """.utf8).write(to: dir.appendingPathComponent("graph.json"))

        let r = try pgflow(["grad", "graph.json", "--loss", "loss.loss", "--frame", "0", "-o", "grads.npz"], in: dir)
        #expect(r.status == 0, "\(r.err)")
        let grads = try NPZ.read(dir.appendingPathComponent("grads.npz"))
        let oracle = expected["grads"] as! [String: Any]
        for (group, key) in [("cloud.offset", "means"), ("cloud.log_scale", "log_scales"), ("cloud.rotation", "quats_wxyz"),
                             ("cloud.opacity", "opacity_logits"), ("cloud.features", "features")] {
            guard let g = grads[group] else { Issue.record("grads.npz has no \(group): \(grads.keys.sorted())"); continue }
            let want = floats(oracle[key]!)
            #expect(g.count == want.count, "\(group)")
            let scale = want.map(abs).max() ?? 1
            let worst = zip(g.scalars, want).map { abs($0 - $1) - 1e-4 * abs($1) }.max() ?? 0
            #expect(worst <= 1e-5 * scale, "\(group) vs oracle \(key): worst excess \(worst), max |oracle| \(scale)")
        }
    }
}
