/// A linear-blend-skinned parametric model in the SMPL family (SMPL-X, FLAME, pgflow's built-in head):
/// template mesh, shape and expression blendshapes, pose correctives, a joint regressor, a kinematic
/// tree and skinning weights, plus the UV layout and landmark embedding where the model has them
/// (PortraitGen §3.1.2, Eq. 4–5).
///
/// All arrays are row-major Float32 in the layouts of the models' own NPZ files, so export and load
/// are plain copies. Blendshape matrices are stored as `[V, 3, K]`, i.e. `[V·3, K]`.
public struct ParametricModel: Sendable, Equatable {
    /// `"builtin:head"`, or the file the model was loaded from.
    public var name: String
    public let vertexCount: Int
    public let jointCount: Int
    public let shapeCount: Int
    public let expressionCount: Int

    public let template: [Float]               // [V, 3]
    public let shapeDirections: [Float]        // [V, 3, S]
    public let expressionDirections: [Float]   // [V, 3, E]
    /// Pose-corrective blendshapes driven by (R_j − I) of joints 1…J−1, flattened joint-major;
    /// empty when the model has none.
    public let poseDirections: [Float]         // [V, 3, 9·(J−1)] or []
    public let jointRegressor: [Float]         // [J, V]
    public let weights: [Float]                // [V, J]
    /// Parent joint of each joint, −1 for the root; parents come before their children.
    public let parents: [Int]                  // [J]
    public let faces: [Int32]                  // [F, 3]
    /// UV coordinates (u right, v up, as in the models' own files) and the UV corner of every face
    /// corner; both empty when the model has no UV layout.
    public let uvs: [Float]                    // [T, 2]
    public let uvFaces: [Int32]                // [F, 3]
    /// Landmarks embedded on the surface: a face and barycentric weights each.
    public let landmarkFaces: [Int32]          // [L]
    public let landmarkBarycentrics: [Float]   // [L, 3]
    /// A label per vertex (`Region`), for restricting the Gaussian field to part of the body.
    public let vertexRegions: [Int32]          // [V]
    /// The joint a tracking record's `jaw` rotation drives, when the model has one.
    public let jawJoint: Int?

    public var faceCount: Int { faces.count / 3 }
    public var poseBasisCount: Int { poseDirections.count / max(1, vertexCount * 3) }
    public var landmarkCount: Int { landmarkFaces.count }
    public var hasUVLayout: Bool { !uvFaces.isEmpty }

    /// Per-vertex region labels. The built-in head labels its mouth interior separately; SMPL-X and
    /// FLAME get body / neck / head from their dominant skinning joint.
    public enum Region: Int32, Sendable, CaseIterable {
        case body = 0, neck = 1, head = 2, mouth = 3
    }

    public init(name: String, template: [Float], shapeDirections: [Float], shapeCount: Int,
                expressionDirections: [Float], expressionCount: Int, poseDirections: [Float],
                jointRegressor: [Float], weights: [Float], parents: [Int], faces: [Int32],
                uvs: [Float] = [], uvFaces: [Int32] = [], landmarkFaces: [Int32] = [],
                landmarkBarycentrics: [Float] = [], vertexRegions: [Int32]? = nil, jawJoint: Int? = nil) {
        let v = template.count / 3
        let j = parents.count
        precondition(template.count == v * 3 && v > 0, "template should be [V, 3]")
        precondition(j > 0, "a model needs at least one joint")
        precondition(shapeDirections.count == v * 3 * shapeCount, "shape directions should be [\(v), 3, \(shapeCount)]")
        precondition(expressionDirections.count == v * 3 * expressionCount,
                     "expression directions should be [\(v), 3, \(expressionCount)]")
        precondition(poseDirections.isEmpty || poseDirections.count == v * 3 * 9 * (j - 1),
                     "pose directions should be [\(v), 3, \(9 * (j - 1))]")
        precondition(jointRegressor.count == j * v, "the joint regressor should be [\(j), \(v)]")
        precondition(weights.count == v * j, "skinning weights should be [\(v), \(j)]")
        precondition(parents.enumerated().allSatisfy { $0.offset == 0 ? $0.element < 0 : (0..<$0.offset).contains($0.element) },
                     "joint 0 must be the only root and every parent must come before its child")
        precondition(faces.count % 3 == 0 && faces.allSatisfy { $0 >= 0 && Int($0) < v }, "faces should index [0, \(v))")
        precondition(uvFaces.isEmpty || uvFaces.count == faces.count, "uv faces should be [F, 3] like faces")
        precondition(uvs.count % 2 == 0 && uvFaces.allSatisfy { $0 >= 0 && Int($0) < uvs.count / 2 }, "uv faces should index the uvs")
        precondition(landmarkBarycentrics.count == landmarkFaces.count * 3, "landmark barycentrics should be [L, 3]")
        precondition(landmarkFaces.allSatisfy { $0 >= 0 && Int($0) < faces.count / 3 }, "landmark faces should index the faces")
        precondition(vertexRegions == nil || vertexRegions!.count == v, "vertex regions should be [V]")
        precondition(jawJoint == nil || (1..<j).contains(jawJoint!), "the jaw joint should be a non-root joint")
        self.name = name
        self.vertexCount = v
        self.jointCount = j
        self.shapeCount = shapeCount
        self.expressionCount = expressionCount
        self.template = template
        self.shapeDirections = shapeDirections
        self.expressionDirections = expressionDirections
        self.poseDirections = poseDirections
        self.jointRegressor = jointRegressor
        self.weights = weights
        self.parents = parents
        self.faces = faces
        self.uvs = uvs
        self.uvFaces = uvFaces
        self.landmarkFaces = landmarkFaces
        self.landmarkBarycentrics = landmarkBarycentrics
        self.jawJoint = jawJoint
        self.vertexRegions = vertexRegions ?? ParametricModel.regionsFromSkinning(weights: weights, jointCount: j)
    }

    /// Body / neck / head labels from each vertex's dominant joint, for the joint layouts pgflow
    /// knows: FLAME (5 joints: the root carries the neck, the rest the head) and the SMPL family
    /// (SMPL, SMPL-H, SMPL-X share joint 12 = neck and 15 = head; SMPL-X adds 22 jaw, 23–24 eyes).
    /// Anything else is all `head`, so a region restriction keeps the whole model.
    static func regionsFromSkinning(weights: [Float], jointCount j: Int) -> [Int32] {
        let v = weights.count / j
        func region(_ joint: Int) -> Region {
            switch j {
            case 5: return joint == 0 ? .neck : .head
            case 22...:
                if joint == 12 { return .neck }
                if joint == 15 || (j == 55 && (22...24).contains(joint)) { return .head }
                return .body
            default: return .head
            }
        }
        return (0..<v).map { i in
            var best = 0
            for k in 1..<j where weights[i * j + k] > weights[i * j + best] { best = k }
            return region(best).rawValue
        }
    }

    /// A face's three vertex indices.
    @inline(__always) public func face(_ f: Int) -> (Int, Int, Int) {
        (Int(faces[3 * f]), Int(faces[3 * f + 1]), Int(faces[3 * f + 2]))
    }
}
