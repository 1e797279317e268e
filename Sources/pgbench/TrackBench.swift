import Foundation
import PGFlow
import PGKernels
import PGNodes
import PGTensor

/// `pgbench track`: Tracker's landmark fit on the synthetic performance, whose truth is known.
/// The observations are the true projected landmarks plus Gaussian noise (σ = --noise px), as
/// issue 14 asks when the detector cannot be used; the table gives the reprojection error against
/// the noisy observations and against the truth, the head's rotation error in the camera, the
/// focal length's error and the time per frame.
enum TrackBench {
    static func run(_ arguments: [String]) {
        var frames = 75, size = 256, noise = 1.5, seed: UInt64 = 0, iterations = 200, smoothness = 0.3
        var export: String?
        var i = 0
        func value() -> String {
            i += 1
            guard i < arguments.count else { print("pgbench track: \(arguments[i - 1]) needs a value"); exit(1) }
            return arguments[i]
        }
        while i < arguments.count {
            switch arguments[i] {
            case "--frames": frames = Int(value()) ?? frames
            case "--size": size = Int(value()) ?? size
            case "--noise": noise = Double(value()) ?? noise
            case "--seed": seed = UInt64(value()) ?? seed
            case "--iterations": iterations = Int(value()) ?? iterations
            case "--smoothness": smoothness = Double(value()) ?? smoothness
            case "--export": export = value()
            default: print("usage: pgbench track [--frames 75] [--size 256] [--noise 1.5] [--seed 0] [--iterations 200] [--smoothness 0.3] [--export fitted.json]"); exit(1)
            }
            i += 1
        }
        do {
            try measure(frames: frames, size: size, noise: noise, seed: seed, iterations: iterations, smoothness: smoothness,
                        export: export.map { URL(fileURLWithPath: $0) })
        } catch {
            print("pgbench track: \(error)")
            exit(1)
        }
    }

    static func measure(frames: Int, size: Int, noise: Double, seed: UInt64, iterations: Int, smoothness: Double, export: URL?) throws {
        guard let nodes = Catalog.defaultDirectory(executable: URL(fileURLWithPath: CommandLine.arguments[0]).absoluteURL,
                                                   environment: ProcessInfo.processInfo.environment),
              let catalog = try? Catalog.load(nodes), let spec = catalog.specs["Performance"] else {
            print("pgbench track: cannot find the node catalog (Nodes/)"); exit(1)
        }
        var values: [String: JSON] = [:]
        for p in spec.params { if let d = p.defaultValue { values[p.name] = d } }
        values["frames"] = .int(Int64(frames)); values["width"] = .int(Int64(size)); values["height"] = .int(Int64(size))
        let actor = try Performance(params: Params(values, baseDirectory: nodes))
        let context = RunContext(nodeID: "actor", nodeType: "Performance", graphDirectory: nodes)
        let model = HeadModel.model
        let fit = FaceFit(model: model)

        // Truth: tracking, camera and the projected landmarks of every frame.
        var truthRotations: [[Double]] = [], truthPoints: [[SIMD2<Double>]] = [], observations: [LandmarkFit.Observation] = []
        var truthFocal = 0.0
        var rng = SplitMix64(seed: seed)
        func normal() -> Double { rng.boxMuller().0 }
        for t in 0..<frames {
            let out = try actor.evaluate(Inputs([:]), frame: t, context: context)
            let frame = try TrackedFrame(tracking: out["tracking"]!, camera: out["camera"]!)
            truthFocal = frame.camera.fx
            let skinned = model.skin(try frame.tracking.pose(for: model), threads: 1)
            truthRotations.append(cameraHeadRotation(skinned, worldToCamera: frame.camera.worldToCamera.map(Double.init)))
            let v = skinned.posedVertices()
            let points: [SIMD2<Double>] = (0..<model.landmarkCount).map { l in
                let (a, b, c) = model.face(Int(model.landmarkFaces[l]))
                var p = SIMD3<Double>.zero
                for (k, vi) in [a, b, c].enumerated() {
                    let w = Double(model.landmarkBarycentrics[3 * l + k])
                    let x = SIMD3<Double>(Double(v[3 * vi]), Double(v[3 * vi + 1]), Double(v[3 * vi + 2]))
                    p += w * x
                }
                let q = frame.camera.project(p)
                return SIMD2(q.x, q.y)
            }
            truthPoints.append(points)
            observations.append(.init(points: points.map { $0 + SIMD2(noise * normal(), noise * normal()) }, confidence: 1))
        }

        var settings = LandmarkFit.Settings()
        settings.globalIterations = iterations
        settings.smoothness = smoothness
        let started = Date()
        let result = try LandmarkFit(fit: fit, settings: settings).run(observations, width: size, height: size) { _, _, _ in }
        let seconds = Date().timeIntervalSince(started)

        var observedError = 0.0, truthError = 0.0, rotationErrors: [Double] = []
        let camera = result.camera
        for t in 0..<frames {
            let p = fit.project(result.poses[t], shape: result.shape, camera: camera).points
            observedError += zip(p, observations[t].points).map { (($0 - $1) * ($0 - $1)).sum().squareRoot() }.reduce(0, +) / Double(p.count)
            truthError += zip(p, truthPoints[t]).map { (($0 - $1) * ($0 - $1)).sum().squareRoot() }.reduce(0, +) / Double(p.count)
            var pose = [Float](repeating: 0, count: 3 * model.jointCount)
            for (j, s) in fit.headJoints { for k in 0..<3 { pose[3 * j + k] = Float(s * result.poses[t].rotation[k]) } }
            let skinned = model.skin(ModelPose(shape: result.shape.map(Float.init), expression: result.poses[t].expression.map(Float.init),
                                               jointRotations: pose, translation: SIMD3<Float>(result.poses[t].translation),
                                               jaw: SIMD3<Float>(result.poses[t].jaw)), threads: 1)
            let r = cameraHeadRotation(skinned, worldToCamera: camera.worldToCamera)
            rotationErrors.append(angle(between: r, truthRotations[t]))
        }
        let n = Double(frames)
        print("Tracker fit on the synthetic performance: \(frames) frames at \(size)², true landmarks + \(noise) px noise, \(iterations) global passes")
        print("")
        print("| measure | value |")
        print("| --- | --- |")
        print("| landmark error vs the noisy observations (mean, px) | \(String(format: "%.3f", observedError / n)) |")
        print("| landmark error vs the true landmarks (mean, px) | \(String(format: "%.3f", truthError / n)) |")
        print("| head rotation error (mean / max, degrees) | \(String(format: "%.3f / %.3f", rotationErrors.reduce(0, +) / n, rotationErrors.max() ?? 0)) |")
        print("| focal length (fit / truth, px) | \(String(format: "%.1f / %.1f", camera.focal, truthFocal)) |")
        print("| fit time (total s / per frame ms) | \(String(format: "%.2f / %.1f", seconds, 1000 * seconds / n)) |")
        print("| model evaluations (forward + VJP) | \(result.iterations) |")
        if let export {
            // The fitted tracking as a pgflow file: reconstruct the sample with it
            // (pgflow exec Graphs/reconstruct.json --set tracking=…) to compare with the true tracking.
            let tracked = Tracker.trackedFrames(result, model: model, width: size, height: size, observations: observations)
            try TrackingFile.data(tracked, model: HeadModel.name, for: export).write(to: export, options: .atomic)
            print("wrote the fitted tracking to \(export.path)")
        }
        if ProcessInfo.processInfo.environment["TRACE"] != nil { print(rotationErrors.map { String(format: "%.1f", $0) }.joined(separator: " ")) }
    }

    /// The head joint's rotation seen from the camera: R_camera · R_head (row-major 3×3).
    static func cameraHeadRotation(_ s: SkinnedMesh, worldToCamera m: [Double]) -> [Double] {
        let head = HeadModel.jointNames.firstIndex(of: "head")!
        let j = s.jointTransforms.map(Double.init)
        var out = [Double](repeating: 0, count: 9)
        for r in 0..<3 { for c in 0..<3 { for k in 0..<3 { out[3 * r + c] += m[4 * r + k] * j[12 * head + 4 * k + c] } } }
        return out
    }

    static func angle(between a: [Double], _ b: [Double]) -> Double {
        var trace = 0.0
        for r in 0..<3 { for k in 0..<3 { trace += a[3 * k + r] * b[3 * k + r] } }
        return acos(min(1, max(-1, (trace - 1) / 2))) * 180 / Double.pi
    }
}
