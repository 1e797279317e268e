import Dispatch
import Foundation

/// Small fixed-size linear algebra for the Gaussian field: rotations, rigid transforms and the
/// orthonormalisation of blended skinning matrices. Double precision: these run per joint or per
/// Gaussian once per frame, never in an inner pixel loop.
enum FieldMath {
    /// A 3×3 matrix as rows.
    struct Matrix3: Equatable {
        var r0: SIMD3<Double>, r1: SIMD3<Double>, r2: SIMD3<Double>

        init(_ r0: SIMD3<Double>, _ r1: SIMD3<Double>, _ r2: SIMD3<Double>) {
            self.r0 = r0; self.r1 = r1; self.r2 = r2
        }
        static let identity = Matrix3(SIMD3(1, 0, 0), SIMD3(0, 1, 0), SIMD3(0, 0, 1))

        /// Reads a row-major 3×3 block from `m` starting at `offset` with row stride `stride`.
        init(_ m: UnsafeBufferPointer<Float>, offset: Int, stride: Int) {
            r0 = SIMD3(Double(m[offset]), Double(m[offset + 1]), Double(m[offset + 2]))
            r1 = SIMD3(Double(m[offset + stride]), Double(m[offset + stride + 1]), Double(m[offset + stride + 2]))
            r2 = SIMD3(Double(m[offset + 2 * stride]), Double(m[offset + 2 * stride + 1]), Double(m[offset + 2 * stride + 2]))
        }

        var transposed: Matrix3 {
            Matrix3(SIMD3(r0.x, r1.x, r2.x), SIMD3(r0.y, r1.y, r2.y), SIMD3(r0.z, r1.z, r2.z))
        }
        var determinant: Double {
            r0.x * (r1.y * r2.z - r1.z * r2.y) - r0.y * (r1.x * r2.z - r1.z * r2.x) + r0.z * (r1.x * r2.y - r1.y * r2.x)
        }
        /// The inverse transpose (cofactor matrix / determinant); nil when singular.
        var inverseTransposed: Matrix3? {
            let d = determinant
            guard abs(d) > 1e-300 else { return nil }
            let c0 = SIMD3(r1.y * r2.z - r1.z * r2.y, r1.z * r2.x - r1.x * r2.z, r1.x * r2.y - r1.y * r2.x)
            let c1 = SIMD3(r0.z * r2.y - r0.y * r2.z, r0.x * r2.z - r0.z * r2.x, r0.y * r2.x - r0.x * r2.y)
            let c2 = SIMD3(r0.y * r1.z - r0.z * r1.y, r0.z * r1.x - r0.x * r1.z, r0.x * r1.y - r0.y * r1.x)
            return Matrix3(c0 / d, c1 / d, c2 / d)
        }
        static func * (a: Matrix3, b: Matrix3) -> Matrix3 {
            Matrix3(a.r0.x * b.r0 + a.r0.y * b.r1 + a.r0.z * b.r2,
                    a.r1.x * b.r0 + a.r1.y * b.r1 + a.r1.z * b.r2,
                    a.r2.x * b.r0 + a.r2.y * b.r1 + a.r2.z * b.r2)
        }
        static func * (a: Matrix3, v: SIMD3<Double>) -> SIMD3<Double> {
            SIMD3((a.r0 * v).sum(), (a.r1 * v).sum(), (a.r2 * v).sum())
        }
        static func + (a: Matrix3, b: Matrix3) -> Matrix3 { Matrix3(a.r0 + b.r0, a.r1 + b.r1, a.r2 + b.r2) }
        static func - (a: Matrix3, b: Matrix3) -> Matrix3 { Matrix3(a.r0 - b.r0, a.r1 - b.r1, a.r2 - b.r2) }
        static func * (s: Double, a: Matrix3) -> Matrix3 { Matrix3(s * a.r0, s * a.r1, s * a.r2) }
        var frobeniusNorm: Double { ((r0 * r0).sum() + (r1 * r1).sum() + (r2 * r2).sum()).squareRoot() }
    }

    /// Rodrigues' formula for an axis-angle vector (angle = |ω|), exact to second order near zero.
    static func rotation(axisAngle w: SIMD3<Double>) -> Matrix3 {
        let theta = (w * w).sum().squareRoot()
        let k = Matrix3(SIMD3(0, -w.z, w.y), SIMD3(w.z, 0, -w.x), SIMD3(-w.y, w.x, 0))
        let a: Double, b: Double
        if theta < 1e-6 {
            a = 1 - theta * theta / 6
            b = 0.5 - theta * theta / 24
        } else {
            a = sin(theta) / theta
            b = (1 - cos(theta)) / (theta * theta)
        }
        return Matrix3.identity + a * k + b * (k * k)
    }

    /// The rotation closest to `m` (the orthogonal factor of its polar decomposition), by Newton's
    /// iteration X ← ½(X + X⁻ᵀ) with determinant scaling. Nil when `m` is singular or a reflection,
    /// which a blend of rotations with non-negative weights only is when the rotations oppose.
    static func nearestRotation(_ m: Matrix3) -> Matrix3? {
        guard m.determinant > 1e-12 * pow(max(m.frobeniusNorm, 1e-300), 3) else { return nil }
        var x = m
        for _ in 0..<30 {
            guard let inv = x.inverseTransposed else { return nil }
            // Scaling by |det|^(-1/3) speeds up convergence for far-from-orthogonal inputs.
            let g = pow(abs(x.determinant), -1.0 / 3.0)
            let next = 0.5 * (g * x + (1 / g) * inv)
            let change = (next - x).frobeniusNorm
            x = next
            if change < 1e-13 { break }
        }
        return x
    }

    /// Unit quaternion (w, x, y, z) with w ≥ 0 of a rotation matrix (Shepperd's method).
    static func quaternion(_ m: Matrix3) -> SIMD4<Double> {
        let trace = m.r0.x + m.r1.y + m.r2.z
        var q: SIMD4<Double>
        if trace > 0 {
            let s = (trace + 1).squareRoot() * 2
            q = SIMD4(0.25 * s, (m.r2.y - m.r1.z) / s, (m.r0.z - m.r2.x) / s, (m.r1.x - m.r0.y) / s)
        } else if m.r0.x > m.r1.y && m.r0.x > m.r2.z {
            let s = (1 + m.r0.x - m.r1.y - m.r2.z).squareRoot() * 2
            q = SIMD4((m.r2.y - m.r1.z) / s, 0.25 * s, (m.r0.y + m.r1.x) / s, (m.r0.z + m.r2.x) / s)
        } else if m.r1.y > m.r2.z {
            let s = (1 + m.r1.y - m.r0.x - m.r2.z).squareRoot() * 2
            q = SIMD4((m.r0.z - m.r2.x) / s, (m.r0.y + m.r1.x) / s, 0.25 * s, (m.r1.z + m.r2.y) / s)
        } else {
            let s = (1 + m.r2.z - m.r0.x - m.r1.y).squareRoot() * 2
            q = SIMD4((m.r1.x - m.r0.y) / s, (m.r0.z + m.r2.x) / s, (m.r1.z + m.r2.y) / s, 0.25 * s)
        }
        if q.x < 0 { q = -q }
        return q / (q * q).sum().squareRoot()
    }

    /// Rotation matrix of a unit quaternion (w, x, y, z).
    static func rotation(quaternion q: SIMD4<Double>) -> Matrix3 {
        let (w, x, y, z) = (q.x, q.y, q.z, q.w)
        return Matrix3(SIMD3(1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)),
                       SIMD3(2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)),
                       SIMD3(2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)))
    }
}
