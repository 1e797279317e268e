import Foundation

/// RigidMotion: one rigid motion applied to a frame's Gaussians, about their centroid c —
/// mean' = R·(mean − c) + c + τ and rotation' = q_R ⊗ q, with R = exp(ω) — the per-frame pose
/// correction that photometric refinement trains through Splat (PoseRefine). Rotating about the
/// centroid keeps rotation and translation apart (a turn of the head does not also move it).
///
/// Backward (`applyVJP`) is exact, including the centroid's dependence on every mean; the tests
/// check it against central differences.
public enum RigidMotion {
    public struct Saved: Sendable {
        var centroid: SIMD3<Double>
        var rotation: FieldMath.Matrix3
        var quaternion: SIMD4<Double>       // q_R (w, x, y, z)
    }

    /// Moves `means` [N, 3] and rotates `quats` [N, 4] (w, x, y, z; may be empty) in place.
    public static func apply(means: inout [Float], quats: inout [Float], omega: SIMD3<Double>, tau: SIMD3<Double>) -> Saved {
        let n = means.count / 3
        var c = SIMD3<Double>.zero
        for i in 0..<n { c += SIMD3(Double(means[3 * i]), Double(means[3 * i + 1]), Double(means[3 * i + 2])) }
        if n > 0 { c /= Double(n) }
        let r = FieldMath.rotation(axisAngle: omega)
        for i in 0..<n {
            let p = SIMD3(Double(means[3 * i]), Double(means[3 * i + 1]), Double(means[3 * i + 2]))
            let q = r * (p - c) + c + tau
            means[3 * i] = Float(q.x); means[3 * i + 1] = Float(q.y); means[3 * i + 2] = Float(q.z)
        }
        let qr = quaternion(omega)
        for i in 0..<(quats.count / 4) {
            let q = SIMD4(Double(quats[4 * i]), Double(quats[4 * i + 1]), Double(quats[4 * i + 2]), Double(quats[4 * i + 3]))
            let out = multiply(qr, q)
            for k in 0..<4 { quats[4 * i + k] = Float(out[k]) }
        }
        return Saved(centroid: c, rotation: r, quaternion: qr)
    }

    /// Cotangents on the moved means and quats → cotangents on the inputs (written in place of
    /// `gMeans` and `gQuats`) and the gradients for ω and τ.
    public static func applyVJP(_ s: Saved, means: [Float], quats: [Float], omega: SIMD3<Double>,
                                gMeans: inout [Float], gQuats: inout [Float]) -> (omega: SIMD3<Double>, tau: SIMD3<Double>) {
        let n = means.count / 3
        var gTau = SIMD3<Double>.zero
        var outer = FieldMath.Matrix3.zero            // Σ gᵢ (meanᵢ − c)ᵀ, for R
        for i in 0..<n {
            let g = SIMD3(Double(gMeans[3 * i]), Double(gMeans[3 * i + 1]), Double(gMeans[3 * i + 2]))
            let p = SIMD3(Double(means[3 * i]), Double(means[3 * i + 1]), Double(means[3 * i + 2]))
            gTau += g
            outer = outer + .outer(g, p - s.centroid)
        }
        // d mean'ᵢ / d meanⱼ = R·δᵢⱼ + (I − R)/N: each mean moves the centroid.
        let rt = s.rotation.transposed
        let shared = n > 0 ? (gTau - rt * gTau) / Double(n) : .zero
        for i in 0..<n {
            let g = SIMD3(Double(gMeans[3 * i]), Double(gMeans[3 * i + 1]), Double(gMeans[3 * i + 2]))
            let back = rt * g + shared
            gMeans[3 * i] = Float(back.x); gMeans[3 * i + 1] = Float(back.y); gMeans[3 * i + 2] = Float(back.z)
        }
        var gOmega = FaceFit.expVJP(omega, rotation: s.rotation, gradient: outer)
        // q' = q_R ⊗ q: back to q (q_R's left-multiplication, transposed) and to q_R.
        var gQR = SIMD4<Double>.zero
        for i in 0..<(quats.count / 4) {
            let q = SIMD4(Double(quats[4 * i]), Double(quats[4 * i + 1]), Double(quats[4 * i + 2]), Double(quats[4 * i + 3]))
            let g = SIMD4(Double(gQuats[4 * i]), Double(gQuats[4 * i + 1]), Double(gQuats[4 * i + 2]), Double(gQuats[4 * i + 3]))
            let back = multiply(conjugate(s.quaternion), g)      // L(q_R)ᵀ·g
            gQR += multiply(g, conjugate(q))                     // R(q)ᵀ·g
            for k in 0..<4 { gQuats[4 * i + k] = Float(back[k]) }
        }
        gOmega += quaternionVJP(omega, gQR)
        return (gOmega, gTau)
    }

    // MARK: quaternions (w, x, y, z)

    static func multiply(_ a: SIMD4<Double>, _ b: SIMD4<Double>) -> SIMD4<Double> {
        SIMD4(a.x * b.x - a.y * b.y - a.z * b.z - a.w * b.w,
              a.x * b.y + a.y * b.x + a.z * b.w - a.w * b.z,
              a.x * b.z - a.y * b.w + a.z * b.x + a.w * b.y,
              a.x * b.w + a.y * b.z - a.z * b.y + a.w * b.x)
    }

    static func conjugate(_ q: SIMD4<Double>) -> SIMD4<Double> { SIMD4(q.x, -q.y, -q.z, -q.w) }

    /// exp(ω) as a unit quaternion: (cos θ/2, sin(θ/2)·ω/θ).
    static func quaternion(_ w: SIMD3<Double>) -> SIMD4<Double> {
        let theta = (w * w).sum().squareRoot()
        let b = theta < 1e-6 ? 0.5 - theta * theta / 48 : sin(theta / 2) / theta
        return SIMD4(cos(theta / 2), b * w.x, b * w.y, b * w.z)
    }

    /// ∂⟨g, quaternion(ω)⟩ / ∂ω.
    static func quaternionVJP(_ w: SIMD3<Double>, _ g: SIMD4<Double>) -> SIMD3<Double> {
        let theta = (w * w).sum().squareRoot()
        let b: Double, dbOverTheta: Double          // b(θ) and b′(θ)/θ
        if theta < 1e-6 {
            b = 0.5 - theta * theta / 48
            dbOverTheta = -1.0 / 24
        } else {
            b = sin(theta / 2) / theta
            dbOverTheta = (0.5 * cos(theta / 2) * theta - sin(theta / 2)) / (theta * theta * theta)
        }
        let v = SIMD3(g.y, g.z, g.w)
        // a = cos(θ/2): ∂a/∂ω = −(b/2)·ω; (bω): ∂/∂ω = b·I + ω·(b′/θ)·ωᵀ.
        return -0.5 * b * g.x * w + b * v + dbOverTheta * (v * w).sum() * w
    }
}
