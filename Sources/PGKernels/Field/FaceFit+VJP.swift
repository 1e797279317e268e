import Foundation

extension FaceFit {
    /// Pulls a cotangent on the landmarks' pixel positions back to the frame's parameters, the
    /// shape and the focal length (reverse mode through `project`; see the type's doc).
    public func projectVJP(_ pose: FaceFitPose, shape: [Double], camera: FaceFitCamera, saved s: Saved,
                           pointGradients: [SIMD2<Double>]) -> FaceFitGradient {
        precondition(pointGradients.count == corners.count, "FaceFit: one gradient per landmark")
        let jc = model.jointCount
        var g = FaceFitGradient(shapeCount: shapeCount, expressionCount: expressionCount)

        // Projection and barycentric blend.
        let r = camera.rotation
        var posedGrad = [SIMD3<Double>](repeating: .zero, count: vertices.count)
        for (l, (a, b, c)) in corners.enumerated() {
            let q = s.cameraPoints[l], d = pointGradients[l]
            if d == .zero { continue }
            let f = camera.focal, iz = 1 / q.z
            g.focal += d.x * q.x * iz + d.y * q.y * iz
            let dq = SIMD3(d.x * f * iz, d.y * f * iz, -(d.x * f * q.x + d.y * f * q.y) * iz * iz)
            let dp = dq.x * r.0 + dq.y * r.1 + dq.z * r.2          // Rᶜᵀ·dq
            let w = barycentrics[l]
            posedGrad[a] += w.x * dp
            posedGrad[b] += w.y * dp
            posedGrad[c] += w.z * dp
        }

        // Skinning: p = Σⱼ wⱼ·(Rⱼ·(x − Jⱼ) + tⱼ) + T.
        var dWorld = [FieldMath.Matrix3](repeating: .zero, count: jc)
        var dWorldT = [SIMD3<Double>](repeating: .zero, count: jc)
        var dJoints = [SIMD3<Double>](repeating: .zero, count: jc)
        var dRest = [SIMD3<Double>](repeating: .zero, count: vertices.count)
        for i in 0..<vertices.count {
            let gp = posedGrad[i]
            if gp == .zero { continue }
            g.translation += gp
            let x = s.restPositions[i]
            for (j, w) in skinning[i] {
                let wg = w * gp
                dWorld[j] = dWorld[j] + .outer(wg, x - s.joints[j])
                dWorldT[j] += wg
                let back = s.worldRotation[j].transposed * wg
                dRest[i] += back
                dJoints[j] -= back
            }
        }

        // The chain, children first: Rⱼ = R_p·Lⱼ, tⱼ = R_p·(Jⱼ − J_p) + t_p; the root is (L₀, J₀).
        var dLocal = [FieldMath.Matrix3](repeating: .zero, count: jc)
        for j in stride(from: jc - 1, through: 0, by: -1) {
            let p = model.parents[j]
            if p < 0 {
                dLocal[j] = dLocal[j] + dWorld[j]
                dJoints[j] += dWorldT[j]
                continue
            }
            let rp = s.worldRotation[p]
            dWorld[p] = dWorld[p] + dWorld[j] * s.local[j].transposed + .outer(dWorldT[j], s.joints[j] - s.joints[p])
            dLocal[j] = dLocal[j] + rp.transposed * dWorld[j]
            let back = rp.transposed * dWorldT[j]
            dJoints[j] += back
            dJoints[p] -= back
            dWorldT[p] += dWorldT[j]
        }

        // Rest positions: blendshapes and pose correctives.
        let correctives = !(poseRows.first?.isEmpty ?? true)
        var dFeature = [Double](repeating: 0, count: correctives ? 9 * (jc - 1) : 0)
        for i in 0..<vertices.count {
            let d = dRest[i]
            if d == .zero { continue }
            for k in 0..<shapeCount { g.shape[k] += (d * shapeRows[i][k]).sum() }
            for k in 0..<expressionCount { g.expression[k] += (d * expressionRows[i][k]).sum() }
            if correctives { for k in 0..<dFeature.count { dFeature[k] += (d * poseRows[i][k]).sum() } }
        }
        if correctives {
            for j in 1..<jc {
                let o = 9 * (j - 1)
                dLocal[j] = dLocal[j] + FieldMath.Matrix3(SIMD3(dFeature[o], dFeature[o + 1], dFeature[o + 2]),
                                                          SIMD3(dFeature[o + 3], dFeature[o + 4], dFeature[o + 5]),
                                                          SIMD3(dFeature[o + 6], dFeature[o + 7], dFeature[o + 8]))
            }
        }
        // Joints are linear in β and ψ.
        for j in 0..<jc where dJoints[j] != .zero {
            for k in 0..<shapeCount { g.shape[k] += (dJoints[j] * jointShape[j][k]).sum() }
            for k in 0..<expressionCount { g.expression[k] += (dJoints[j] * jointExpression[j][k]).sum() }
        }

        // Local rotations. A head joint is exp(s·ω)·(identity); the jaw is exp(ω_jaw).
        for (j, share) in headJoints {
            g.rotation += share * Self.expVJP(share * pose.rotation, rotation: s.local[j], gradient: dLocal[j])
        }
        if let jaw = model.jawJoint {
            g.jaw += Self.expVJP(pose.jaw, rotation: s.local[jaw], gradient: dLocal[jaw])
        }
        return g
    }

    /// The gradient of ⟨G, exp(ω)⟩ with respect to ω, where R = exp(ω) (Gallego & Yezzi 2015:
    /// ∂R/∂ωᵢ = (ωᵢ[ω]ₓ + [ω × (I − R)eᵢ]ₓ)·R / |ω|², and [eᵢ]ₓ·R near ω = 0).
    static func expVJP(_ w: SIMD3<Double>, rotation r: FieldMath.Matrix3, gradient gm: FieldMath.Matrix3) -> SIMD3<Double> {
        // ⟨G, [a]ₓ·R⟩ = ⟨G·Rᵀ, [a]ₓ⟩ = a · vee(H − Hᵀ) with H = G·Rᵀ.
        let h = gm * r.transposed
        let v = SIMD3(h.r2.y - h.r1.z, h.r0.z - h.r2.x, h.r1.x - h.r0.y)
        let n2 = (w * w).sum()
        if n2 < 1e-16 { return v }
        let ir = FieldMath.Matrix3.identity - r
        var out = SIMD3<Double>.zero
        let cols = [SIMD3(ir.r0.x, ir.r1.x, ir.r2.x), SIMD3(ir.r0.y, ir.r1.y, ir.r2.y), SIMD3(ir.r0.z, ir.r1.z, ir.r2.z)]
        for i in 0..<3 {
            let a = w[i] * w + cross(w, cols[i])
            out[i] = (a * v).sum() / n2
        }
        return out
    }
}

@inline(__always) func cross(_ a: SIMD3<Double>, _ b: SIMD3<Double>) -> SIMD3<Double> {
    SIMD3(a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x)
}

extension FieldMath.Matrix3 {
    static let zero = FieldMath.Matrix3(.zero, .zero, .zero)
    /// a·bᵀ.
    static func outer(_ a: SIMD3<Double>, _ b: SIMD3<Double>) -> FieldMath.Matrix3 {
        FieldMath.Matrix3(a.x * b, a.y * b, a.z * b)
    }
}
