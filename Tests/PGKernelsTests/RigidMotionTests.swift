import Foundation
@testable import PGKernels
import Testing

/// RigidMotion's VJP against central differences, for ω, τ, the means (through the centroid too)
/// and the quaternions, at a general ω and at ω = 0.
@Suite struct RigidMotionTests {
    @Test(arguments: [SIMD3<Double>(0.3, -0.2, 0.25), .zero])
    func theVJPMatchesCentralDifferences(omega: SIMD3<Double>) {
        var rng = FieldRandom(21)
        let n = 7
        let means = rng.floats(3 * n, -0.2, 0.2).map(Double.init)
        let quats = rng.floats(4 * n, -1, 1).map(Double.init)
        let tau = SIMD3(0.01, -0.02, 0.03)
        let gm = rng.floats(3 * n, -1, 1).map(Double.init), gq = rng.floats(4 * n, -1, 1).map(Double.init)
        func f(_ m: [Double], _ q: [Double], _ w: SIMD3<Double>, _ t: SIMD3<Double>) -> Double {
            var mm = m.map(Float.init), qq = q.map(Float.init)
            _ = RigidMotion.apply(means: &mm, quats: &qq, omega: w, tau: t)
            return zip(mm, gm).map { Double($0) * $1 }.reduce(0, +) + zip(qq, gq).map { Double($0) * $1 }.reduce(0, +)
        }
        var mm = means.map(Float.init), qq = quats.map(Float.init)
        let saved = RigidMotion.apply(means: &mm, quats: &qq, omega: omega, tau: tau)
        var dm = gm.map(Float.init), dq = gq.map(Float.init)
        let (dw, dt) = RigidMotion.applyVJP(saved, means: means.map(Float.init), quats: quats.map(Float.init), omega: omega,
                                            gMeans: &dm, gQuats: &dq)
        let h = 1e-3
        func check(_ name: String, _ analytic: Double, _ plus: Double, _ minus: Double) {
            let numeric = (plus - minus) / (2 * h)
            #expect(abs(analytic - numeric) <= 2e-3 * max(1, abs(numeric)), "\(name): VJP \(analytic), differences \(numeric)")
        }
        for k in 0..<3 {
            var a = omega, b = omega
            a[k] += h; b[k] -= h
            check("ω[\(k)]", dw[k], f(means, quats, a, tau), f(means, quats, b, tau))
            var ta = tau, tb = tau
            ta[k] += h; tb[k] -= h
            check("τ[\(k)]", dt[k], f(means, quats, omega, ta), f(means, quats, omega, tb))
        }
        for i in [0, 4, 11, 20] {
            var a = means, b = means
            a[i] += h; b[i] -= h
            check("mean[\(i)]", Double(dm[i]), f(a, quats, omega, tau), f(b, quats, omega, tau))
        }
        for i in [0, 5, 13, 27] {
            var a = quats, b = quats
            a[i] += h; b[i] -= h
            check("quat[\(i)]", Double(dq[i]), f(means, a, omega, tau), f(means, b, omega, tau))
        }
    }

    @Test func theQuaternionTurnsAsTheMatrixDoes() {
        let w = SIMD3(0.4, -0.1, 0.7)
        let q = RigidMotion.quaternion(w)
        let fromQ = FieldMath.rotation(quaternion: q), fromW = FieldMath.rotation(axisAngle: w)
        #expect((fromQ - fromW).frobeniusNorm < 1e-12)
    }
}
