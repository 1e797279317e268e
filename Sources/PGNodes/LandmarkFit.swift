import Foundation
import PGFlow
import PGKernels
import PGTensor

/// Fits a parametric head to a clip's detected 2D landmarks: shared shape β and focal length,
/// per-frame head rotation, translation, expression ψ and jaw (the Tracker's fit mode). It is a
/// plain loop around `FaceFit`'s forward/VJP pair and pgflow's Adam.
///
/// Objective, per frame t (pixels are measured at a 256-pixel scale, so the weights mean the same
/// at any frame size):
///   Σₗ wₗ·cₜ·ρ(|πₗ − dₗ|) / Σₗ wₗ                      robust reprojection (Cauchy, σ = `robustScale`)
///   + λβ|β|² + λψ|ψ|² + λjaw·(jaw_x² + 100·(jaw_y² + jaw_z²))   priors (the jaw mostly opens about x)
///   + λs·(200·|Δω|² + 4·10⁵·|ΔT|² + 5·|Δψ|² + 50·|Δjaw|²)         temporal smoothness (global passes; T in metres)
/// with region weights wₗ on the iBUG-68 layout (jaw line 0.3: a detector's contour is view-dependent;
/// brows and nose 1; eyes and mouth 2) and cₜ the detection's confidence (0: no face).
///
/// Schedule, as the best trackers do it: a careful first frame (rigid pose, then everything), each
/// next frame warm-started from the previous one, then global passes over the whole clip where
/// shape and focal length are shared and the smoothness term ties neighbours together. Frames
/// with no face get no reprojection term: the global passes interpolate them, and they are flagged.
public struct LandmarkFit: Sendable {
    public struct Settings: Sendable {
        public var firstFrameIterations = 300
        public var frameIterations = 60
        public var globalIterations = 200
        public var robustScale = 3.0
        public var shapePrior = 0.05
        public var expressionPrior = 0.02
        public var jawPrior = 0.01
        public var smoothness = 0.3
        /// Fixed focal length in pixels; nil fits it (from 1.6 × the longer image side).
        var focal: Double?
        public var threads = 2
        public init() {}
    }

    public struct Result: Sendable {
        public var poses: [FaceFitPose]
        public var shape: [Double]
        public var camera: FaceFitCamera
        /// Mean reprojection error per frame in pixels over the weighted landmarks (nil: no face).
        public var errors: [Double?]
        public var detected: [Bool]
        public var iterations: Int
    }

    let fit: FaceFit
    let settings: Settings
    /// Per-landmark region weights (iBUG-68 order).
    let regionWeights: [Double]

    public init(fit: FaceFit, settings: Settings) {
        self.fit = fit
        self.settings = settings
        regionWeights = (0..<fit.landmarkCount).map { l in
            guard fit.landmarkCount == 68 else { return 1 }
            switch l {
            case 0...16: return 0.3
            case 36...47, 48...67: return 2
            default: return 1
            }
        }
    }

    /// One frame's observed landmarks: pixel positions and a confidence (0 = no face).
    public struct Observation: Sendable {
        public var points: [SIMD2<Double>]
        public var confidence: Double
        public init(points: [SIMD2<Double>], confidence: Double) {
            self.points = points
            self.confidence = confidence
        }
    }

    // MARK: objective

    /// The frame's reprojection + prior energy and its gradient (pose, shape, focal).
    func frameEnergy(_ pose: FaceFitPose, shape: [Double], camera: FaceFitCamera, observation o: Observation,
                     scale: Double) -> (Double, FaceFitGradient) {
        var energy = 0.0
        var g: FaceFitGradient
        if o.confidence > 0 {
            let saved = fit.project(pose, shape: shape, camera: camera)
            let totalWeight = regionWeights.reduce(0, +)
            let sigma2 = settings.robustScale * settings.robustScale
            var cot = [SIMD2<Double>](repeating: .zero, count: fit.landmarkCount)
            for l in 0..<fit.landmarkCount {
                let r = (saved.points[l] - o.points[l]) / scale
                let e2 = (r * r).sum()
                let w = regionWeights[l] * o.confidence / totalWeight
                energy += w * sigma2 * log(1 + e2 / sigma2)
                cot[l] = w * 2 * r / (1 + e2 / sigma2) / scale
            }
            g = fit.projectVJP(pose, shape: shape, camera: camera, saved: saved, pointGradients: cot)
        } else {
            g = FaceFitGradient(shapeCount: fit.shapeCount, expressionCount: fit.expressionCount)
        }
        for k in 0..<pose.expression.count {
            energy += settings.expressionPrior * pose.expression[k] * pose.expression[k]
            g.expression[k] += 2 * settings.expressionPrior * pose.expression[k]
        }
        let jw = SIMD3(1.0, 100, 100) * settings.jawPrior
        energy += (jw * pose.jaw * pose.jaw).sum()
        g.jaw += 2 * jw * pose.jaw
        return (energy, g)
    }

    /// Reprojection error in pixels (mean over landmarks, region weights applied).
    func error(_ pose: FaceFitPose, shape: [Double], camera: FaceFitCamera, observation o: Observation) -> Double {
        let p = fit.project(pose, shape: shape, camera: camera).points
        var sum = 0.0, weight = 0.0
        for l in 0..<fit.landmarkCount {
            let d = p[l] - o.points[l]
            sum += regionWeights[l] * (d * d).sum().squareRoot()
            weight += regionWeights[l]
        }
        return sum / weight
    }

    // MARK: parameter vectors for Adam

    static func pack(_ p: FaceFitPose) -> Tensor {
        Tensor(shape: [9 + p.expression.count],
               scalars: ([p.rotation.x, p.rotation.y, p.rotation.z, p.translation.x, p.translation.y, p.translation.z]
                         + p.expression + [p.jaw.x, p.jaw.y, p.jaw.z]).map(Float.init))
    }

    static func unpack(_ t: Tensor) -> FaceFitPose {
        let s = t.scalars.map(Double.init), e = s.count - 9
        return FaceFitPose(rotation: SIMD3(s[0], s[1], s[2]), translation: SIMD3(s[3], s[4], s[5]),
                           expression: Array(s[6..<(6 + e)]), jaw: SIMD3(s[6 + e], s[7 + e], s[8 + e]))
    }

    static func pack(_ g: FaceFitGradient, rigidOnly: Bool = false) -> Tensor {
        var v = [g.rotation.x, g.rotation.y, g.rotation.z, g.translation.x, g.translation.y, g.translation.z]
        v += rigidOnly ? [Double](repeating: 0, count: g.expression.count + 3) : g.expression + [g.jaw.x, g.jaw.y, g.jaw.z]
        return Tensor(shape: [v.count], scalars: v.map(Float.init))
    }

    /// Learning rates per entry: radians, metres, expression units, radians.
    func poseRates(_ e: Int) -> Tensor {
        Tensor(shape: [9 + e], scalars: [Float](repeating: 0.01, count: 3) + [Float](repeating: 0.002, count: 3)
               + [Float](repeating: 0.03, count: e) + [Float](repeating: 0.01, count: 3))
    }

    // MARK: the schedule

    public func run(_ observations: [Observation], width: Int, height: Int, progress: (String, Int, Int) -> Void) throws -> Result {
        let n = observations.count
        let scale = Double(max(width, height)) / 256
        let detected = observations.map { $0.confidence > 0 }
        guard let first = detected.firstIndex(of: true) else { throw FitError.noFace }
        let e = fit.expressionCount
        var shape = [Double](repeating: 0, count: fit.shapeCount)
        let f0 = settings.focal ?? 1.6 * Double(max(width, height))
        var camera = FaceFitCamera(focal: f0, cx: Double(width) / 2, cy: Double(height) / 2)
        var logFocal = 0.0
        var iterations = 0

        // Initial pose: the neutral landmarks placed by their centroid and spread.
        let neutral = FaceFitPose(expression: [Double](repeating: 0, count: e))
        var init0 = neutral
        do {
            let rest = fit.project(FaceFitPose(translation: SIMD3(0, 0, -1), expression: neutral.expression), shape: shape, camera: camera)
            let obs = observations[first].points
            func spread(_ p: [SIMD2<Double>]) -> (SIMD2<Double>, Double) {
                let c = p.reduce(.zero, +) / Double(p.count)
                return (c, (p.map { (($0 - c) * ($0 - c)).sum() }.reduce(0, +) / Double(p.count)).squareRoot())
            }
            let (cm, sm) = spread(rest.points), (co, so) = spread(obs)
            let z = 1 * sm / max(so, 1e-6)       // distance that gives the observed spread
            // Camera-space centre offset at depth z, in world axes (camera y and z are flipped).
            let dx = (co.x - cm.x) * z / camera.focal, dy = (co.y - cm.y) * z / camera.focal
            init0.translation = SIMD3(dx, -dy, -z)
        }

        // Adam per parameter vector with per-entry rates: one Adam over the vector scaled by rate.
        struct Stepper {
            var adam: Adam
            let rates: [Float]
            init(count: Int, rates: [Float]) {
                adam = Adam(shape: [count], learningRate: 1, eps: 1e-8)
                self.rates = rates
            }
            /// Adam's step in units of each entry's rate.
            mutating func step(_ x: inout Tensor, _ g: Tensor) {
                var u = Tensor(shape: x.shape, scalars: zip(x.scalars, rates).map { $0 / $1 })
                adam.update(&u, gradient: Tensor(shape: g.shape, scalars: zip(g.scalars, rates).map { $0 * $1 }))
                x = Tensor(shape: x.shape, scalars: zip(u.scalars, rates).map { $0 * $1 })
            }
        }
        let rates = poseRates(e).scalars
        let sharedRates = [Float](repeating: 0.02, count: fit.shapeCount) + [0.01]

        func shared(_ g: FaceFitGradient, into acc: inout [Double]) {
            for k in 0..<fit.shapeCount { acc[k] += g.shape[k] }
            acc[fit.shapeCount] += g.focal * camera.focal       // d/d log f
        }

        // 1. The first detected frame: rigid, then everything (shape and focal included).
        var poses = [FaceFitPose](repeating: init0, count: n)
        do {
            var x = Self.pack(init0)
            var stepper = Stepper(count: x.count, rates: rates)
            var sx = Tensor(shape: [fit.shapeCount + 1], scalars: [Float](repeating: 0, count: fit.shapeCount + 1))
            var sstep = Stepper(count: sx.count, rates: sharedRates)
            for it in 0..<settings.firstFrameIterations {
                let rigid = it < settings.firstFrameIterations / 3
                let (_, g) = frameEnergy(Self.unpack(x), shape: shape, camera: camera, observation: observations[first], scale: scale)
                stepper.step(&x, Self.pack(g, rigidOnly: rigid))
                if !rigid {
                    var gs = [Double](repeating: 0, count: fit.shapeCount + 1)
                    shared(g, into: &gs)
                    for k in 0..<fit.shapeCount { gs[k] += 2 * settings.shapePrior * shape[k] }
                    if settings.focal != nil { gs[fit.shapeCount] = 0 } else { gs[fit.shapeCount] += 2 * 0.1 * logFocal }
                    sstep.step(&sx, Tensor(shape: [gs.count], scalars: gs.map(Float.init)))
                    shape = sx.scalars.prefix(fit.shapeCount).map(Double.init)
                    logFocal = Double(sx.scalars[fit.shapeCount])
                    camera.focal = f0 * exp(logFocal)
                }
                iterations += 1
            }
            poses[first] = Self.unpack(x)
        }
        progress("fit frame", 1, n)

        // 2. Frame by frame, warm-started from the neighbour; frames before the first face copy it.
        for t in 0..<n where t != first {
            let from = t < first ? first : t - 1
            poses[t] = poses[from]
            guard t > first, detected[t] else { continue }
            var x = Self.pack(poses[t])
            var stepper = Stepper(count: x.count, rates: rates)
            for _ in 0..<settings.frameIterations {
                let (_, g) = frameEnergy(Self.unpack(x), shape: shape, camera: camera, observation: observations[t], scale: scale)
                stepper.step(&x, Self.pack(g))
                iterations += 1
            }
            poses[t] = Self.unpack(x)
            if t % 8 == 0 { progress("fit frame", t + 1, n) }
        }
        // Frames without a face between two with one start halfway (the global passes refine it).
        for t in 0..<n where !detected[t] {
            if let a = (0..<t).last(where: { detected[$0] }), let b = ((t + 1)..<n).first(where: { detected[$0] }) {
                let u = Double(t - a) / Double(b - a)
                var p = poses[a]
                p.rotation += u * (poses[b].rotation - poses[a].rotation)
                p.translation += u * (poses[b].translation - poses[a].translation)
                for k in 0..<e { p.expression[k] += u * (poses[b].expression[k] - poses[a].expression[k]) }
                p.jaw += u * (poses[b].jaw - poses[a].jaw)
                poses[t] = p
            }
        }

        // 3. Global passes: every frame at once, shape and focal shared, neighbours tied.
        var xs = poses.map(Self.pack)
        var steppers = xs.map { Stepper(count: $0.count, rates: rates) }
        var sx = Tensor(shape: [fit.shapeCount + 1], scalars: shape.map(Float.init) + [Float(logFocal)])
        var sstep = Stepper(count: sx.count, rates: sharedRates.map { $0 * 0.5 })
        // Translation is tied 100× harder than at first (4000): landmark noise moved the head by
        // ±2–3 mm from frame to frame, which the reconstruction cannot absorb (synthetic sample:
        // 32.5 → 34.1 dB held-out; single_face.mp4: the same PSNR and fit error, flicker 0.0065 → 0.0048).
        let smooth = SIMD3<Double>(200, 400_000, 50) * settings.smoothness, smoothExpression = 5 * settings.smoothness
        for it in 0..<settings.globalIterations {
            let current = xs.map(Self.unpack)
            var grads = [FaceFitGradient?](repeating: nil, count: n)
            let cam = camera, sh = shape
            grads.withUnsafeMutableBufferPointer { out in
                parallelChunks(n, threads: settings.threads, minimumChunk: 8) { _, range in
                    for t in range { out[t] = frameEnergy(current[t], shape: sh, camera: cam, observation: observations[t], scale: scale).1 }
                }
            }
            var gs = [Double](repeating: 0, count: fit.shapeCount + 1)
            for t in 0..<n {
                var g = grads[t]!
                shared(g, into: &gs)
                // Smoothness with both neighbours.
                for nb in [t - 1, t + 1] where nb >= 0 && nb < n {
                    let a = current[t], b = current[nb]
                    g.rotation += 2 * smooth.x * (a.rotation - b.rotation)
                    g.translation += 2 * smooth.y * (a.translation - b.translation)
                    g.jaw += 2 * smooth.z * (a.jaw - b.jaw)
                    for k in 0..<e { g.expression[k] += 2 * smoothExpression * (a.expression[k] - b.expression[k]) }
                }
                steppers[t].step(&xs[t], Self.pack(g))
            }
            for k in 0..<fit.shapeCount { gs[k] = gs[k] / Double(n) + 2 * settings.shapePrior * shape[k] }
            gs[fit.shapeCount] = settings.focal != nil ? 0 : gs[fit.shapeCount] / Double(n) + 2 * 0.1 * logFocal
            sstep.step(&sx, Tensor(shape: [gs.count], scalars: gs.map(Float.init)))
            shape = sx.scalars.prefix(fit.shapeCount).map(Double.init)
            logFocal = Double(sx.scalars[fit.shapeCount])
            camera.focal = f0 * exp(logFocal)
            iterations += n
            if it % 20 == 19 { progress("global pass", it + 1, settings.globalIterations) }
        }
        poses = xs.map(Self.unpack)
        let errors: [Double?] = (0..<n).map { t in
            detected[t] ? error(poses[t], shape: shape, camera: camera, observation: observations[t]) : nil
        }
        return Result(poses: poses, shape: shape, camera: camera, errors: errors, detected: detected, iterations: iterations)
    }

    public enum FitError: Error { case noFace }
}
