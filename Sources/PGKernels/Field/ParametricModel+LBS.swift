internal import CBLAS
import Foundation
import PGTensor

/// One frame's model parameters (what a `Tracking` record carries).
public struct ModelPose: Sendable, Equatable {
    /// β; shorter than the model's shape space means the rest are zero.
    public var shape: [Float]            // [≤S]
    /// ψ; shorter than the model's expression space means the rest are zero.
    public var expression: [Float]       // [≤E]
    /// Axis-angle rotation of every joint relative to its parent, in kintree order; empty = all zero.
    public var jointRotations: [Float]   // [J, 3] or []
    /// Global axis-angle rotation about the root joint, applied after `jointRotations[0]`.
    public var rotation: SIMD3<Float>
    public var translation: SIMD3<Float>
    /// Axis-angle rotation composed onto the model's jaw joint, after `jointRotations[jaw]`.
    public var jaw: SIMD3<Float>

    public init(shape: [Float] = [], expression: [Float] = [], jointRotations: [Float] = [],
                rotation: SIMD3<Float> = .zero, translation: SIMD3<Float> = .zero, jaw: SIMD3<Float> = .zero) {
        self.shape = shape
        self.expression = expression
        self.jointRotations = jointRotations
        self.rotation = rotation
        self.translation = translation
        self.jaw = jaw
    }
}

/// A skinned frame: what every vertex is before skinning and the transform that skinning applies.
public struct SkinnedMesh: Sendable {
    /// T(β, θ, ψ) of Eq. 5 plus the learned displacement ΔM: template + shape + expression + pose
    /// correctives + ΔM, in the model's rest frame.
    public var restVertices: [Float]       // [V, 3]
    /// Per vertex, the blended skinning transform Σⱼ wᵥⱼ·Aⱼ plus the global translation, as a
    /// row-major 3×4 [L | t]: posed = L·rest + t.
    public var vertexTransforms: [Float]   // [V, 12]
    /// Joint positions regressed from the shaped template (Eq. 4's J(β)).
    public var joints: [Float]             // [J, 3]
    /// World transform of each joint's frame (3×4), so the posed joint is its translation column.
    public var jointTransforms: [Float]    // [J, 12]

    public init(restVertices: [Float], vertexTransforms: [Float], joints: [Float] = [], jointTransforms: [Float] = []) {
        precondition(restVertices.count % 3 == 0 && vertexTransforms.count == restVertices.count * 4,
                     "a skinned mesh needs [V, 3] rest vertices and [V, 12] transforms")
        self.restVertices = restVertices
        self.vertexTransforms = vertexTransforms
        self.joints = joints
        self.jointTransforms = jointTransforms
    }

    /// M(β, θ, ψ) + ΔM: the posed vertices.
    public func posedVertices() -> [Float] {
        let v = restVertices.count / 3
        var out = [Float](repeating: 0, count: v * 3)
        for i in 0..<v {
            let t = 12 * i, r = 3 * i
            let x = restVertices[r], y = restVertices[r + 1], z = restVertices[r + 2]
            for row in 0..<3 {
                let m = t + 4 * row
                var acc: Float = vertexTransforms[m + 3]
                acc += vertexTransforms[m] * x
                acc += vertexTransforms[m + 1] * y
                acc += vertexTransforms[m + 2] * z
                out[r + row] = acc
            }
        }
        return out
    }

    /// Posed joint positions.
    public var posedJoints: [Float] {
        var out: [Float] = []
        for o in stride(from: 0, to: jointTransforms.count, by: 12) {
            out.append(jointTransforms[o + 3])
            out.append(jointTransforms[o + 7])
            out.append(jointTransforms[o + 11])
        }
        return out
    }
}

extension ParametricModel {
    /// Vertices with shape and expression blendshapes applied (no pose): T̄ + B_S(β) + B_E(ψ).
    public func shapedVertices(shape: [Float], expression: [Float]) -> [Float] {
        precondition(shape.count <= shapeCount, "β has \(shape.count) values but the model has \(shapeCount) shape directions")
        precondition(expression.count <= expressionCount,
                     "ψ has \(expression.count) values but the model has \(expressionCount) expression directions")
        var out = template
        let rows = Int32(vertexCount * 3)
        out.withUnsafeMutableBufferPointer { y in
            if !shape.isEmpty {
                shapeDirections.withUnsafeBufferPointer { a in
                    cblas_sgemv(CblasRowMajor, CblasNoTrans, rows, Int32(shape.count), 1, a.baseAddress, Int32(shapeCount),
                                shape, 1, 1, y.baseAddress, 1)
                }
            }
            if !expression.isEmpty {
                expressionDirections.withUnsafeBufferPointer { a in
                    cblas_sgemv(CblasRowMajor, CblasNoTrans, rows, Int32(expression.count), 1, a.baseAddress,
                                Int32(expressionCount), expression, 1, 1, y.baseAddress, 1)
                }
            }
        }
        return out
    }

    /// J = J_regressor · vertices.
    public func regressJoints(_ vertices: [Float]) -> [Float] {
        precondition(vertices.count == vertexCount * 3, "vertices should be [\(vertexCount), 3]")
        var out = [Float](repeating: 0, count: jointCount * 3)
        for j in 0..<jointCount {
            var acc = SIMD3<Double>.zero
            for i in 0..<vertexCount {
                let w = jointRegressor[j * vertexCount + i]
                if w != 0 { acc += Double(w) * SIMD3(Double(vertices[3 * i]), Double(vertices[3 * i + 1]), Double(vertices[3 * i + 2])) }
            }
            out[3 * j] = Float(acc.x); out[3 * j + 1] = Float(acc.y); out[3 * j + 2] = Float(acc.z)
        }
        return out
    }

    /// Linear blend skinning as in SMPL-X / FLAME (the smplx package's `lbs`): blendshapes, joints
    /// regressed from the shaped template, pose correctives from (R_j − I), the kinematic chain,
    /// then per-vertex blended transforms. `displacement` (ΔM of Eq. 6) is added in the rest frame
    /// after the correctives, so it moves with the body; it does not move the joints.
    public func skin(_ pose: ModelPose,
                     displacement: [Float]? = nil,   // [V, 3]
                     poseCorrectives: Bool = true, threads: Int = 2) -> SkinnedMesh {
        let v = vertexCount, jc = jointCount
        precondition(pose.jointRotations.isEmpty || pose.jointRotations.count == 3 * jc,
                     "joint rotations should be [\(jc), 3], got \(pose.jointRotations.count) values")
        precondition(displacement == nil || displacement!.count == 3 * v, "the displacement should be [\(v), 3]")
        precondition(pose.jaw == .zero || jawJoint != nil, "a jaw rotation was given but the model has no jaw joint")

        let shaped = shapedVertices(shape: pose.shape, expression: pose.expression)
        let joints = regressJoints(shaped)

        // Local rotations, with the global rotation and the jaw composed on.
        var local = [FieldMath.Matrix3](repeating: .identity, count: jc)
        for j in 0..<jc {
            let w = pose.jointRotations.isEmpty ? SIMD3<Double>.zero
                : SIMD3(Double(pose.jointRotations[3 * j]), Double(pose.jointRotations[3 * j + 1]), Double(pose.jointRotations[3 * j + 2]))
            local[j] = FieldMath.rotation(axisAngle: w)
        }
        local[0] = FieldMath.rotation(axisAngle: SIMD3<Double>(pose.rotation)) * local[0]
        if let jaw = jawJoint, pose.jaw != .zero {
            local[jaw] = FieldMath.rotation(axisAngle: SIMD3<Double>(pose.jaw)) * local[jaw]
        }

        var rest = shaped
        if poseCorrectives, !poseDirections.isEmpty, jc > 1 {
            var feature = [Float](repeating: 0, count: 9 * (jc - 1))
            for j in 1..<jc {
                let m = local[j] - .identity
                for (r, row) in [m.r0, m.r1, m.r2].enumerated() {
                    for c in 0..<3 { feature[9 * (j - 1) + 3 * r + c] = Float(row[c]) }
                }
            }
            rest.withUnsafeMutableBufferPointer { y in
                poseDirections.withUnsafeBufferPointer { a in
                    cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(v * 3), Int32(feature.count), 1, a.baseAddress,
                                Int32(feature.count), feature, 1, 1, y.baseAddress, 1)
                }
            }
        }
        if let displacement {
            for i in 0..<(3 * v) { rest[i] += displacement[i] }
        }

        // The kinematic chain: G_j = G_parent · [R_j | J_j − J_parent]; A_j = G_j · [I | −J_j].
        var world = [(FieldMath.Matrix3, SIMD3<Double>)](repeating: (.identity, .zero), count: jc)
        var skinning = [Float](repeating: 0, count: jc * 12)
        var jointTransforms = [Float](repeating: 0, count: jc * 12)
        let translation = SIMD3<Double>(pose.translation)
        for j in 0..<jc {
            let jp = SIMD3(Double(joints[3 * j]), Double(joints[3 * j + 1]), Double(joints[3 * j + 2]))
            if parents[j] < 0 {
                world[j] = (local[j], jp)
            } else {
                let p = parents[j]
                let pp = SIMD3(Double(joints[3 * p]), Double(joints[3 * p + 1]), Double(joints[3 * p + 2]))
                let (gr, gt) = world[p]
                world[j] = (gr * local[j], gr * (jp - pp) + gt)
            }
            let (r, t) = world[j]
            let a = t - r * jp + translation
            for (row, rv) in [r.r0, r.r1, r.r2].enumerated() {
                skinning[12 * j + 4 * row] = Float(rv.x)
                skinning[12 * j + 4 * row + 1] = Float(rv.y)
                skinning[12 * j + 4 * row + 2] = Float(rv.z)
                skinning[12 * j + 4 * row + 3] = Float(a[row])
                jointTransforms[12 * j + 4 * row] = Float(rv.x)
                jointTransforms[12 * j + 4 * row + 1] = Float(rv.y)
                jointTransforms[12 * j + 4 * row + 2] = Float(rv.z)
                jointTransforms[12 * j + 4 * row + 3] = Float(t[row] + translation[row])
            }
        }

        var transforms = [Float](repeating: 0, count: v * 12)
        transforms.withUnsafeMutableBufferPointer { out in
            weights.withUnsafeBufferPointer { w in
                skinning.withUnsafeBufferPointer { a in
                    let out = out, w = w, a = a
                    parallelChunks(v, threads: threads) { _, range in
                        for i in range {
                            var r0 = SIMD4<Float>.zero, r1 = SIMD4<Float>.zero, r2 = SIMD4<Float>.zero
                            for j in 0..<jc {
                                let wj = w[i * jc + j]
                                if wj == 0 { continue }
                                let o = 12 * j
                                r0 += wj * SIMD4(a[o], a[o + 1], a[o + 2], a[o + 3])
                                r1 += wj * SIMD4(a[o + 4], a[o + 5], a[o + 6], a[o + 7])
                                r2 += wj * SIMD4(a[o + 8], a[o + 9], a[o + 10], a[o + 11])
                            }
                            for e in 0..<4 {
                                out[12 * i + e] = r0[e]
                                out[12 * i + 4 + e] = r1[e]
                                out[12 * i + 8 + e] = r2[e]
                            }
                        }
                    }
                }
            }
        }
        return SkinnedMesh(restVertices: rest, vertexTransforms: transforms, joints: joints, jointTransforms: jointTransforms)
    }
}
