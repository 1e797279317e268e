import Foundation
@testable import PGKernels
import PGTensor
import Testing

/// FaceFit's forward against the full skinning (the slow reference: every vertex, then the
/// landmark blend and the pinhole), and its VJP against central differences of the forward.
@Suite struct FaceFitTests {
    /// The frame as `ParametricModel.skin` takes it.
    static func modelPose(_ fit: FaceFit, _ p: FaceFitPose, shape: [Double]) -> ModelPose {
        var rotations = [Float](repeating: 0, count: 3 * fit.model.jointCount)
        for (j, s) in fit.headJoints {
            for k in 0..<3 { rotations[3 * j + k] = Float(s * p.rotation[k]) }
        }
        return ModelPose(shape: shape.map(Float.init), expression: p.expression.map(Float.init), jointRotations: rotations,
                         translation: SIMD3<Float>(p.translation), jaw: fit.model.jawJoint == nil ? .zero : SIMD3<Float>(p.jaw))
    }

    /// Landmarks by skinning every vertex (Float), then blending and projecting.
    static func reference(_ fit: FaceFit, _ p: FaceFitPose, shape: [Double], camera c: FaceFitCamera) -> [SIMD2<Double>] {
        let m = fit.model
        let v = m.skin(modelPose(fit, p, shape: shape), threads: 1).posedVertices()
        func vertex(_ i: Int) -> SIMD3<Double> { SIMD3(Double(v[3 * i]), Double(v[3 * i + 1]), Double(v[3 * i + 2])) }
        return (0..<m.landmarkCount).map { l in
            let (a, b, cc) = m.face(Int(m.landmarkFaces[l]))
            let w = (0..<3).map { Double(m.landmarkBarycentrics[3 * l + $0]) }
            let x = w[0] * vertex(a) + w[1] * vertex(b) + w[2] * vertex(cc)
            let r = c.rotation
            let q = SIMD3((r.0 * x).sum(), (r.1 * x).sum(), (r.2 * x).sum()) + c.translation
            return SIMD2(c.focal * q.x / q.z + c.cx, c.focal * q.y / q.z + c.cy)
        }
    }

    static func randomFrame(_ fit: FaceFit, _ rng: inout FieldRandom) -> (FaceFitPose, [Double]) {
        func d(_ lo: Double, _ hi: Double) -> Double { rng.uniform(lo, hi) }
        let pose = FaceFitPose(rotation: SIMD3(d(-0.4, 0.4), d(-0.4, 0.4), d(-0.3, 0.3)),
                               translation: SIMD3(d(-0.05, 0.05), d(-0.05, 0.05), d(-0.8, -0.7)),
                               expression: (0..<fit.expressionCount).map { _ in d(-0.8, 0.8) },
                               jaw: SIMD3(d(0, 0.3), d(-0.05, 0.05), d(-0.05, 0.05)))
        return (pose, (0..<fit.shapeCount).map { _ in d(-1, 1) })
    }

    static let camera = FaceFitCamera(focal: 420, cx: 128, cy: 128)

    @Test func theForwardIsTheFullSkinningAtTheLandmarks() throws {
        var rng = FieldRandom(11)
        let smplx = try ParametricModel(npz: tinySMPLX)
        // The tiny SMPL-X has pose correctives; turning joints 1 and 2 exercises them.
        for fit in [FaceFit(model: HeadModel.model), FaceFit(model: smplx, headJoints: [(1, 0.5), (2, 0.5)])] {
            for _ in 0..<3 {
                let (pose, shape) = Self.randomFrame(fit, &rng)
                var cam = Self.camera
                cam.translation = SIMD3(0.01, -0.02, 0.05)
                let got = fit.project(pose, shape: shape, camera: cam).points
                let want = Self.reference(fit, pose, shape: shape, camera: cam)
                let err = zip(got, want).map { max(abs($0.x - $1.x), abs($0.y - $1.y)) }.max()!
                #expect(err < 2e-3, "\(fit.model.name): largest landmark difference \(err) px")
            }
        }
    }

    @Test func theVJPMatchesCentralDifferences() throws {
        var rng = FieldRandom(12)
        let smplx = try ParametricModel(npz: tinySMPLX)
        for fit in [FaceFit(model: HeadModel.model), FaceFit(model: smplx, headJoints: [(1, 0.5), (2, 0.5)])] {
            let (pose, shape) = Self.randomFrame(fit, &rng)
            let cotangent = (0..<fit.landmarkCount).map { _ in SIMD2(rng.uniform(-1, 1), rng.uniform(-1, 1)) }
            func loss(_ p: FaceFitPose, _ s: [Double], _ c: FaceFitCamera) -> Double {
                zip(fit.project(p, shape: s, camera: c).points, cotangent).map { ($0 * $1).sum() }.reduce(0, +)
            }
            let saved = fit.project(pose, shape: shape, camera: Self.camera)
            let g = fit.projectVJP(pose, shape: shape, camera: Self.camera, saved: saved, pointGradients: cotangent)
            let h = 1e-6
            func check(_ name: String, _ analytic: Double, _ plus: Double, _ minus: Double) {
                let numeric = (plus - minus) / (2 * h)
                #expect(abs(analytic - numeric) <= 1e-4 * max(1, abs(numeric)), "\(fit.model.name) \(name): VJP \(analytic), differences \(numeric)")
            }
            for k in 0..<3 {
                var a = pose, b = pose
                a.rotation[k] += h; b.rotation[k] -= h
                check("rotation[\(k)]", g.rotation[k], loss(a, shape, Self.camera), loss(b, shape, Self.camera))
                a = pose; b = pose
                a.translation[k] += h; b.translation[k] -= h
                check("translation[\(k)]", g.translation[k], loss(a, shape, Self.camera), loss(b, shape, Self.camera))
                if fit.model.jawJoint != nil {
                    a = pose; b = pose
                    a.jaw[k] += h; b.jaw[k] -= h
                    check("jaw[\(k)]", g.jaw[k], loss(a, shape, Self.camera), loss(b, shape, Self.camera))
                }
            }
            for k in 0..<fit.expressionCount {
                var a = pose, b = pose
                a.expression[k] += h; b.expression[k] -= h
                check("expression[\(k)]", g.expression[k], loss(a, shape, Self.camera), loss(b, shape, Self.camera))
            }
            for k in 0..<fit.shapeCount {
                var a = shape, b = shape
                a[k] += h; b[k] -= h
                check("shape[\(k)]", g.shape[k], loss(pose, a, Self.camera), loss(pose, b, Self.camera))
            }
            var a = Self.camera, b = Self.camera
            a.focal += h; b.focal -= h
            check("focal", g.focal, loss(pose, shape, a), loss(pose, shape, b))
        }
    }

    @Test func theRotationGradientHoldsAtZero() {
        let fit = FaceFit(model: HeadModel.model)
        let pose = FaceFitPose(translation: SIMD3(0, 0, -0.8), expression: [Double](repeating: 0, count: fit.expressionCount))
        let shape = [Double](repeating: 0, count: fit.shapeCount)
        let cot = [SIMD2<Double>](repeating: SIMD2(1, -0.5), count: fit.landmarkCount)
        let g = fit.projectVJP(pose, shape: shape, camera: Self.camera, saved: fit.project(pose, shape: shape, camera: Self.camera), pointGradients: cot)
        let h = 1e-6
        for k in 0..<3 {
            var a = pose, b = pose
            a.rotation[k] += h; b.rotation[k] -= h
            let f = { (p: FaceFitPose) in zip(fit.project(p, shape: shape, camera: Self.camera).points, cot).map { ($0 * $1).sum() }.reduce(0, +) }
            let numeric = (f(a) - f(b)) / (2 * h)
            #expect(abs(g.rotation[k] - numeric) <= 1e-4 * max(1, abs(numeric)))
        }
    }
}
