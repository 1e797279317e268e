import Foundation

extension FaceFit {
    /// What the backward pass needs from the forward one.
    public struct Saved: Sendable {
        /// The landmarks in pixels (x right, y down; pixel centres at + ½).
        public var points: [SIMD2<Double>]
        /// Camera-space landmark positions (z > 0 in front of the camera).
        public var cameraPoints: [SIMD3<Double>]
        var restPositions: [SIMD3<Double>]   // per subset vertex
        var joints: [SIMD3<Double>]
        var local: [FieldMath.Matrix3]
        var worldRotation: [FieldMath.Matrix3]
        var worldTranslation: [SIMD3<Double>]
    }

    /// The local rotation of every joint for a frame.
    func localRotations(_ pose: FaceFitPose) -> [FieldMath.Matrix3] {
        var local = [FieldMath.Matrix3](repeating: .identity, count: model.jointCount)
        for (j, share) in headJoints { local[j] = FieldMath.rotation(axisAngle: share * pose.rotation) * local[j] }
        if let jaw = model.jawJoint { local[jaw] = FieldMath.rotation(axisAngle: pose.jaw) * local[jaw] }
        return local
    }

    /// The frame's landmarks through the camera (see the type's doc).
    public func project(_ pose: FaceFitPose, shape: [Double], camera: FaceFitCamera) -> Saved {
        precondition(shape.count == shapeCount && pose.expression.count == expressionCount,
                     "FaceFit: β should have \(shapeCount) and ψ \(expressionCount) values")
        let jc = model.jointCount
        let local = localRotations(pose)

        // Joints from the shaped template.
        var joints = jointRest
        for j in 0..<jc {
            for k in 0..<shapeCount where shape[k] != 0 { joints[j] += shape[k] * jointShape[j][k] }
            for k in 0..<expressionCount where pose.expression[k] != 0 { joints[j] += pose.expression[k] * jointExpression[j][k] }
        }
        // The kinematic chain.
        var world = local, worldT = [SIMD3<Double>](repeating: .zero, count: jc)
        for j in 0..<jc {
            let p = model.parents[j]
            if p < 0 {
                world[j] = local[j]; worldT[j] = joints[j]
            } else {
                world[j] = world[p] * local[j]
                worldT[j] = world[p] * (joints[j] - joints[p]) + worldT[p]
            }
        }
        // Pose-corrective feature vec(Lⱼ − I), j ≥ 1.
        var feature: [Double] = []
        if !poseRows.isEmpty, !(poseRows.first?.isEmpty ?? true) {
            feature.reserveCapacity(9 * (jc - 1))
            for j in 1..<jc {
                let m = local[j] - .identity
                for row in [m.r0, m.r1, m.r2] { feature += [row.x, row.y, row.z] }
            }
        }
        // Rest and posed positions of the subset vertices.
        var restPositions = rest
        var posed = [SIMD3<Double>](repeating: .zero, count: vertices.count)
        for i in 0..<vertices.count {
            var x = rest[i]
            for k in 0..<shapeCount where shape[k] != 0 { x += shape[k] * shapeRows[i][k] }
            for k in 0..<expressionCount where pose.expression[k] != 0 { x += pose.expression[k] * expressionRows[i][k] }
            if !feature.isEmpty {
                for k in 0..<feature.count where feature[k] != 0 { x += feature[k] * poseRows[i][k] }
            }
            restPositions[i] = x
            var p = pose.translation
            for (j, w) in skinning[i] { p += w * (world[j] * (x - joints[j]) + worldT[j]) }
            posed[i] = p
        }
        // Landmarks through the camera.
        var points: [SIMD2<Double>] = [], cameraPoints: [SIMD3<Double>] = []
        points.reserveCapacity(corners.count)
        cameraPoints.reserveCapacity(corners.count)
        let r = camera.rotation
        for (l, (a, b, c)) in corners.enumerated() {
            let w = barycentrics[l]
            let p = w.x * posed[a] + w.y * posed[b] + w.z * posed[c]
            let q = SIMD3((r.0 * p).sum(), (r.1 * p).sum(), (r.2 * p).sum()) + camera.translation
            cameraPoints.append(q)
            points.append(SIMD2(camera.focal * q.x / q.z + camera.cx, camera.focal * q.y / q.z + camera.cy))
        }
        return Saved(points: points, cameraPoints: cameraPoints, restPositions: restPositions, joints: joints,
                     local: local, worldRotation: world, worldTranslation: worldT)
    }

    /// The rotation of the head in world space for a frame: the product of the head joints'
    /// shares, i.e. exp(ω) when the shares sum to one.
    public static func rotationMatrix(_ w: SIMD3<Double>) -> [Double] {
        let m = FieldMath.rotation(axisAngle: w)
        return [m.r0.x, m.r0.y, m.r0.z, m.r1.x, m.r1.y, m.r1.z, m.r2.x, m.r2.y, m.r2.z]
    }
}
