/// FaceFit: the model's embedded landmarks as a differentiable function of the tracking
/// parameters, for fitting a parametric head to detected 2D landmarks (the Tracker's fit mode).
///
/// Forward (`FaceFit.project`): for one frame,
/// 1. the rest position of every vertex a landmark touches, x = T̄ + S·β + E·ψ + P·vec(Lⱼ − I)
///    (template, shape and expression blendshapes, pose correctives of the local rotations);
/// 2. the joints J(β, ψ) = J_regressor·(T̄ + S·β + E·ψ), precomputed as three small matrices;
/// 3. local rotations: every head joint h turns by exp(sₕ·ω) (the head's rotation ω shared out
///    along the neck, e.g. half at the neck and half at the head joint, so the head's world rotation
///    is exp(ω) and the neck bends with it), the jaw joint by exp(ω_jaw), every other joint stays;
/// 4. the kinematic chain Gⱼ = G_parent·[Lⱼ | Jⱼ − J_parent] and skinning
///    p = Σⱼ wⱼ·(Rⱼ·(x − Jⱼ) + tⱼ) + T, exactly `ParametricModel.skin` restricted to these vertices;
/// 5. each landmark is its face's barycentric blend, seen by the fixed camera
///    q = R_c·p + t_c, u = f·q.x/q.z + cx, v = f·q.y/q.z + cy (one focal length f for x and y).
///
/// Backward (`FaceFit.projectVJP`) is reverse-mode through the same steps, so every parameter's
/// gradient comes from one pass; the tests check it against central differences and the forward
/// against the full `skin`.
///
/// Only the ≤ 3·L vertices the landmarks touch are ever computed, so a frame costs microseconds
/// and a whole clip can be fitted jointly.
public struct FaceFit: Sendable {
    public let model: ParametricModel
    /// (joint, share of ω) for the joints that carry the head's rotation; shares sum to 1.
    public let headJoints: [(joint: Int, share: Double)]

    // Vertex subset: the vertices landmarks touch, with their rows of every linear map.
    let vertices: [Int]
    let corners: [(Int, Int, Int)]          // per landmark: indices into `vertices`
    let barycentrics: [SIMD3<Double>]       // per landmark
    let rest: [SIMD3<Double>]               // template per subset vertex
    let shapeRows: [[SIMD3<Double>]]        // [vertex][k] = column k of S at the vertex
    let expressionRows: [[SIMD3<Double>]]   // [vertex][k]
    let poseRows: [[SIMD3<Double>]]         // [vertex][9(J−1)] or [] per vertex
    let skinning: [[(joint: Int, weight: Double)]]  // non-zero weights per subset vertex
    // Joints regressed from the template and from each blendshape.
    let jointRest: [SIMD3<Double>]          // [J]
    let jointShape: [[SIMD3<Double>]]       // [J][S]
    let jointExpression: [[SIMD3<Double>]]  // [J][E]

    public var landmarkCount: Int { corners.count }
    public var shapeCount: Int { model.shapeCount }
    public var expressionCount: Int { model.expressionCount }

    /// The joints that carry the head for the model layouts pgflow knows: builtin:head (root, neck,
    /// head, jaw) and the SMPL family turn neck and head half each; FLAME (root, neck, jaw, eyes)
    /// turns its root, as FLAME trackers fit the global rotation; anything else turns the root.
    public static func headJoints(of model: ParametricModel) -> [(joint: Int, share: Double)] {
        switch model.jointCount {
        case 4 where model.name == HeadModel.name: return [(1, 0.5), (2, 0.5)]
        case 5: return [(0, 1)]
        case 22...: return [(12, 0.5), (15, 0.5)]
        default: return [(0, 1)]
        }
    }

    public init(model: ParametricModel, headJoints: [(joint: Int, share: Double)]? = nil) {
        precondition(model.landmarkCount > 0, "FaceFit needs a model with embedded landmarks")
        self.model = model
        self.headJoints = headJoints ?? Self.headJoints(of: model)
        let s = model.shapeCount, e = model.expressionCount, j = model.jointCount
        let p = model.poseBasisCount

        var index: [Int: Int] = [:]
        var vertices: [Int] = []
        func slot(_ v: Int) -> Int {
            if let i = index[v] { return i }
            index[v] = vertices.count
            vertices.append(v)
            return vertices.count - 1
        }
        var corners: [(Int, Int, Int)] = [], bary: [SIMD3<Double>] = []
        for l in 0..<model.landmarkCount {
            let (a, b, c) = model.face(Int(model.landmarkFaces[l]))
            corners.append((slot(a), slot(b), slot(c)))
            bary.append(SIMD3(Double(model.landmarkBarycentrics[3 * l]), Double(model.landmarkBarycentrics[3 * l + 1]),
                              Double(model.landmarkBarycentrics[3 * l + 2])))
        }
        self.vertices = vertices
        self.corners = corners
        self.barycentrics = bary

        func column(_ m: [Float], _ cols: Int, vertex v: Int, _ k: Int) -> SIMD3<Double> {
            SIMD3(Double(m[(3 * v) * cols + k]), Double(m[(3 * v + 1) * cols + k]), Double(m[(3 * v + 2) * cols + k]))
        }
        rest = vertices.map { v in SIMD3(Double(model.template[3 * v]), Double(model.template[3 * v + 1]), Double(model.template[3 * v + 2])) }
        shapeRows = vertices.map { v in (0..<s).map { column(model.shapeDirections, s, vertex: v, $0) } }
        expressionRows = vertices.map { v in (0..<e).map { column(model.expressionDirections, e, vertex: v, $0) } }
        poseRows = vertices.map { v in p == 0 ? [] : (0..<p).map { column(model.poseDirections, p, vertex: v, $0) } }
        skinning = vertices.map { v in
            (0..<j).compactMap { k in
                let w = Double(model.weights[v * j + k])
                return w == 0 ? nil : (k, w)
            }
        }

        // J = R·(T̄ + S·β + E·ψ): regress the template and every blendshape column once.
        func regress(_ field: (Int) -> SIMD3<Double>) -> [SIMD3<Double>] {
            (0..<j).map { jj in
                var acc = SIMD3<Double>.zero
                for v in 0..<model.vertexCount {
                    let w = model.jointRegressor[jj * model.vertexCount + v]
                    if w != 0 { acc += Double(w) * field(v) }
                }
                return acc
            }
        }
        jointRest = regress { v in SIMD3(Double(model.template[3 * v]), Double(model.template[3 * v + 1]), Double(model.template[3 * v + 2])) }
        let bySShape = (0..<s).map { k in regress { v in column(model.shapeDirections, s, vertex: v, k) } }
        let byExpression = (0..<e).map { k in regress { v in column(model.expressionDirections, e, vertex: v, k) } }
        jointShape = (0..<j).map { jj in (0..<s).map { bySShape[$0][jj] } }
        jointExpression = (0..<j).map { jj in (0..<e).map { byExpression[$0][jj] } }
    }
}

/// One frame's fitted parameters (Double: a fit's arithmetic is tiny and wants the precision).
public struct FaceFitPose: Sendable, Equatable {
    /// The head's axis-angle rotation, shared out over `FaceFit.headJoints`.
    public var rotation: SIMD3<Double>
    /// World translation of the whole model.
    public var translation: SIMD3<Double>
    public var expression: [Double]
    /// Axis-angle rotation of the jaw joint (ignored by models without one).
    public var jaw: SIMD3<Double>

    public init(rotation: SIMD3<Double> = .zero, translation: SIMD3<Double> = .zero, expression: [Double], jaw: SIMD3<Double> = .zero) {
        self.rotation = rotation
        self.translation = translation
        self.expression = expression
        self.jaw = jaw
    }
}

/// What the fit shares across a clip: shape, focal length and the fixed camera.
public struct FaceFitCamera: Sendable, Equatable {
    public var focal: Double
    public var cx: Double
    public var cy: Double
    /// World→camera rotation (rows) and translation.
    public var rotation: (SIMD3<Double>, SIMD3<Double>, SIMD3<Double>)
    public var translation: SIMD3<Double>

    public init(focal: Double, cx: Double, cy: Double,
                rotation: (SIMD3<Double>, SIMD3<Double>, SIMD3<Double>) = (SIMD3(1, 0, 0), SIMD3(0, -1, 0), SIMD3(0, 0, -1)),
                translation: SIMD3<Double> = .zero) {
        self.focal = focal
        self.cx = cx
        self.cy = cy
        self.rotation = rotation
        self.translation = translation
    }

    public static func == (a: FaceFitCamera, b: FaceFitCamera) -> Bool {
        a.focal == b.focal && a.cx == b.cx && a.cy == b.cy && a.rotation.0 == b.rotation.0 && a.rotation.1 == b.rotation.1
            && a.rotation.2 == b.rotation.2 && a.translation == b.translation
    }

    /// Row-major 4×4 world→camera matrix.
    public var worldToCamera: [Double] {
        let r = rotation, t = translation
        return [r.0.x, r.0.y, r.0.z, t.x, r.1.x, r.1.y, r.1.z, t.y, r.2.x, r.2.y, r.2.z, t.z, 0, 0, 0, 1]
    }
}

/// Gradients of a frame's landmarks (a loss's cotangent pulled back).
public struct FaceFitGradient: Sendable {
    public var rotation = SIMD3<Double>.zero
    public var translation = SIMD3<Double>.zero
    public var expression: [Double]
    public var jaw = SIMD3<Double>.zero
    public var shape: [Double]
    public var focal = 0.0

    public init(shapeCount: Int, expressionCount: Int) {
        expression = [Double](repeating: 0, count: expressionCount)
        shape = [Double](repeating: 0, count: shapeCount)
    }
}
