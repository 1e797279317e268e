import PGTensor

/// What `SurfaceGaussians.deformVJP` needs from the forward pass.
public struct SurfaceGaussiansTape: Sendable {
    /// Per Gaussian, the linear part L_g of its blended skinning transform.
    public let linear: [Float]       // [N, 9] row-major
    /// Per Gaussian, the orthonormalised blended rotation as a quaternion (w, x, y, z).
    public let blendQuats: [Float]   // [N, 4]
}

/// Moves UV-embedded Gaussians with a skinned mesh (PortraitGen Eq. 7, the deformation 𝓕).
///
/// Gaussian g on face (a, b, c) with barycentric weights (b_a, b_b, b_c):
/// - [L_g | t_g] = Σₖ bₖ·T_{vₖ}, the barycentric blend of its corners' skinning transforms;
/// - mean = L_g·(Σₖ bₖ·rest_{vₖ} + offset_g) + t_g: the transform applied to the shape + expression
///   rest position (which includes ΔM) plus the learned offset;
/// - quat = q(polar(L_g)) ⊗ base_g: the blended rotation, orthonormalised, composed with the learned
///   base rotation. Quaternion products preserve the norm, so an unnormalised base stays as the
///   rasterizer expects (normalised on use).
public enum SurfaceGaussians {
    public static func deform(embedding: UVEmbedding,
                              faces: [Int32],          // [F, 3]
                              mesh: SkinnedMesh,
                              offsets: [Float]?,       // [N, 3]
                              baseQuats: [Float]?,     // [N, 4]
                              threads: Int = 2) -> (means: [Float], quats: [Float], tape: SurfaceGaussiansTape) {
        let n = embedding.count
        let v = mesh.restVertices.count / 3
        precondition(mesh.vertexTransforms.count == 12 * v, "vertex transforms should be [\(v), 12]")
        precondition(offsets == nil || offsets!.count == 3 * n, "offsets should be [\(n), 3]")
        precondition(baseQuats == nil || baseQuats!.count == 4 * n, "base quaternions should be [\(n), 4]")
        precondition(embedding.faces.allSatisfy { Int($0) < faces.count / 3 }, "the embedding refers to faces the mesh lacks")
        var means = [Float](repeating: 0, count: 3 * n)
        var quats = [Float](repeating: 0, count: 4 * n)
        var linear = [Float](repeating: 0, count: 9 * n)
        var blend = [Float](repeating: 0, count: 4 * n)
        means.withUnsafeMutableBufferPointer { meansOut in
        quats.withUnsafeMutableBufferPointer { quatsOut in
        linear.withUnsafeMutableBufferPointer { linearOut in
        blend.withUnsafeMutableBufferPointer { blendOut in
        mesh.restVertices.withUnsafeBufferPointer { rest in
        mesh.vertexTransforms.withUnsafeBufferPointer { transforms in
            let (meansOut, quatsOut, linearOut, blendOut) = (meansOut, quatsOut, linearOut, blendOut)
            parallelChunks(n, threads: threads) { _, range in
                for g in range {
                    let f = Int(embedding.faces[g])
                    var t0 = SIMD4<Float>.zero, t1 = SIMD4<Float>.zero, t2 = SIMD4<Float>.zero
                    var p = SIMD3<Float>.zero
                    for k in 0..<3 {
                        let vi = Int(faces[3 * f + k]), w = embedding.barycentrics[3 * g + k]
                        let o = 12 * vi
                        t0 += w * SIMD4(transforms[o], transforms[o + 1], transforms[o + 2], transforms[o + 3])
                        t1 += w * SIMD4(transforms[o + 4], transforms[o + 5], transforms[o + 6], transforms[o + 7])
                        t2 += w * SIMD4(transforms[o + 8], transforms[o + 9], transforms[o + 10], transforms[o + 11])
                        p += w * SIMD3(rest[3 * vi], rest[3 * vi + 1], rest[3 * vi + 2])
                    }
                    if let offsets { p += SIMD3(offsets[3 * g], offsets[3 * g + 1], offsets[3 * g + 2]) }
                    let h = SIMD4(p, 1)
                    meansOut[3 * g] = (t0 * h).sum()
                    meansOut[3 * g + 1] = (t1 * h).sum()
                    meansOut[3 * g + 2] = (t2 * h).sum()
                    for c in 0..<3 {
                        linearOut[9 * g + c] = t0[c]
                        linearOut[9 * g + 3 + c] = t1[c]
                        linearOut[9 * g + 6 + c] = t2[c]
                    }

                    let l = FieldMath.Matrix3(SIMD3(Double(t0.x), Double(t0.y), Double(t0.z)),
                                              SIMD3(Double(t1.x), Double(t1.y), Double(t1.z)),
                                              SIMD3(Double(t2.x), Double(t2.y), Double(t2.z)))
                    let qb = FieldMath.nearestRotation(l).map(FieldMath.quaternion) ?? SIMD4(1, 0, 0, 0)
                    for c in 0..<4 { blendOut[4 * g + c] = Float(qb[c]) }
                    let base = baseQuats.map { SIMD4(Double($0[4 * g]), Double($0[4 * g + 1]), Double($0[4 * g + 2]), Double($0[4 * g + 3])) }
                        ?? SIMD4(1, 0, 0, 0)
                    let q = multiply(qb, base)
                    for c in 0..<4 { quatsOut[4 * g + c] = Float(q[c]) }
                }
            }
        }}}}}}
        return (means, quats, SurfaceGaussiansTape(linear: linear, blendQuats: blend))
    }

    /// Pulls cotangents on means and quats back to the offsets, the base rotations and the
    /// per-vertex displacement ΔM (which enters every Gaussian's rest position through its
    /// face's barycentric weights).
    public static func deformVJP(_ tape: SurfaceGaussiansTape,
                                 embedding: UVEmbedding,
                                 faces: [Int32],        // [F, 3]
                                 vertexCount v: Int,
                                 vMeans: [Float],       // [N, 3]
                                 vQuats: [Float]?,      // [N, 4]
                                 threads: Int = 2) -> (vOffsets: [Float], vBaseQuats: [Float], vDisplacement: [Float]) {
        let n = embedding.count
        precondition(vMeans.count == 3 * n, "vMeans should be [\(n), 3]")
        precondition(vQuats == nil || vQuats!.count == 4 * n, "vQuats should be [\(n), 4]")
        precondition(tape.linear.count == 9 * n && tape.blendQuats.count == 4 * n, "the tape belongs to another embedding")
        var vOffsets = [Float](repeating: 0, count: 3 * n)
        var vBase = [Float](repeating: 0, count: 4 * n)
        let workers = max(1, min(threads, n / 256 + 1))
        // Per-worker ΔM gradients, summed at the end (no atomics, same bits for the same split).
        let partial = UnsafeMutableBufferPointer<Float>.allocate(capacity: workers * 3 * v)
        partial.initialize(repeating: 0)
        defer { partial.deallocate() }
        vOffsets.withUnsafeMutableBufferPointer { vo in
        vBase.withUnsafeMutableBufferPointer { vb in
        tape.linear.withUnsafeBufferPointer { linear in
            let (vo, vb) = (vo, vb)
            parallelChunks(n, threads: workers) { worker, range in
                let vd = UnsafeMutableBufferPointer(rebasing: partial[(worker * 3 * v)..<((worker + 1) * 3 * v)])
                for g in range {
                    let o = 9 * g
                    let vm = SIMD3(vMeans[3 * g], vMeans[3 * g + 1], vMeans[3 * g + 2])
                    // ∂mean/∂p = L_g, so the rest-position cotangent is L_gᵀ·vMean.
                    let c0 = SIMD3(linear[o], linear[o + 1], linear[o + 2])
                    let c1 = SIMD3(linear[o + 3], linear[o + 4], linear[o + 5])
                    let c2 = SIMD3(linear[o + 6], linear[o + 7], linear[o + 8])
                    let vp = vm.x * c0 + vm.y * c1 + vm.z * c2
                    vo[3 * g] = vp.x; vo[3 * g + 1] = vp.y; vo[3 * g + 2] = vp.z
                    let f = Int(embedding.faces[g])
                    for k in 0..<3 {
                        let vi = Int(faces[3 * f + k]), w = embedding.barycentrics[3 * g + k]
                        vd[3 * vi] += w * vp.x; vd[3 * vi + 1] += w * vp.y; vd[3 * vi + 2] += w * vp.z
                    }
                    if let vQuats {
                        // quat = L(q_b)·base and L(q)ᵀ = L(q*): the base cotangent is q_b* ⊗ vQuat.
                        let qb = SIMD4(tape.blendQuats[4 * g], tape.blendQuats[4 * g + 1], tape.blendQuats[4 * g + 2], tape.blendQuats[4 * g + 3])
                        let vq = SIMD4(vQuats[4 * g], vQuats[4 * g + 1], vQuats[4 * g + 2], vQuats[4 * g + 3])
                        let r = multiply(SIMD4(qb.x, -qb.y, -qb.z, -qb.w), vq)
                        for c in 0..<4 { vb[4 * g + c] = r[c] }
                    }
                }
            }
        }}}
        var vDisplacement = [Float](repeating: 0, count: 3 * v)
        for w in 0..<workers { for i in 0..<(3 * v) { vDisplacement[i] += partial[w * 3 * v + i] } }
        return (vOffsets, vBase, vDisplacement)
    }

    /// Hamilton product a ⊗ b of (w, x, y, z) quaternions.
    @inline(__always) static func multiply<T: BinaryFloatingPoint & SIMDScalar>(_ a: SIMD4<T>, _ b: SIMD4<T>) -> SIMD4<T> {
        SIMD4(a.x * b.x - a.y * b.y - a.z * b.z - a.w * b.w,
              a.x * b.y + a.y * b.x + a.z * b.w - a.w * b.z,
              a.x * b.z - a.y * b.w + a.z * b.x + a.w * b.y,
              a.x * b.w + a.y * b.z - a.z * b.y + a.w * b.x)
    }

}
