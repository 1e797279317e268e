import Foundation

/// `builtin:head`: a parametric head-and-shoulders model pgflow builds itself, so that tracking,
/// the Gaussian field and the demo run without licensed model files. It has the same structure as
/// FLAME / SMPL-X and is exported in their NPZ layout (`pgflow model export builtin:head head.npz`):
///
/// - a closed, consistently oriented triangle mesh (a latitude–longitude grid with a mouth pocket)
///   with a UV layout (u around the head with the seam at the back, v from crown to chest);
/// - ten shape modes (`shapeNames`) and seven expression modes (`expressionNames`);
/// - four joints, `root` (base of the neck, for the global rotation) → `neck` → `head` → `jaw`,
///   with smooth skinning weights; the jaw opens the mouth pocket;
/// - 68 landmarks in the iBUG-300W order as (face, barycentric) pairs;
/// - per-vertex region labels (body, neck, head, mouth interior).
///
/// The mesh is deterministic: built from closed-form formulas, no randomness.
public enum HeadModel {
    public static let name = "builtin:head"
    public static let jointNames = ["root", "neck", "head", "jaw"]
    public static let shapeNames = ["head_size", "head_width", "head_depth", "face_length", "nose_size",
                                    "neck_width", "shoulder_width", "jaw_width", "brow_ridge", "cheek_fullness"]
    public static let expressionNames = ["jaw_open", "smile", "brow_raise", "blink_left", "blink_right", "frown", "pucker"]

    /// The model, built once per process.
    public static let model: ParametricModel = HeadModelBuilder().build()

    /// The expression index of a name in `expressionNames`.
    public static func expression(_ name: String) -> Int? { expressionNames.firstIndex(of: name) }
}

/// Builds `HeadModel.model` from `HeadGeometry`.
struct HeadModelBuilder {
    let g = HeadGeometry()

    func build() -> ParametricModel {
        let c = HeadGeometry.columns
        let rowCount = g.rows.count
        let v = g.vertexCount

        // Neutral vertices and every shape mode as the difference it makes.
        func vertices(_ shape: ShapeCoefficients) -> [Double] {
            var out = [Double](repeating: 0, count: 3 * v)
            for row in 0..<rowCount {
                let columns = (row == 0 || row == rowCount - 1) ? 1 : c
                for j in 0..<columns {
                    let p = g.point(row: row, phi: g.phis[j], shape: shape)
                    let i = g.vertex(row: row, column: j)
                    out[3 * i] = p.x; out[3 * i + 1] = p.y; out[3 * i + 2] = p.z
                }
            }
            return out
        }
        let neutral = vertices(.zero)
        let shapeCount = HeadModel.shapeNames.count
        var shapeDirs = [Float](repeating: 0, count: 3 * v * shapeCount)
        for k in 0..<shapeCount {
            let shaped = vertices(.unit(k))
            for i in 0..<(3 * v) { shapeDirs[i * shapeCount + k] = Float(shaped[i] - neutral[i]) }
        }

        // Faces: a fan at each pole and two triangles per grid quad, all facing outward.
        var faces: [Int32] = []
        var uvFaces: [Int32] = []
        let ringUV = { (row: Int, j: Int) -> Int32 in Int32((row - 1) * (c + 1) + j) }
        let topUV = { (j: Int) -> Int32 in Int32(self.g.ringRows * (c + 1) + j) }
        let bottomUV = { (j: Int) -> Int32 in Int32(self.g.ringRows * (c + 1) + c + j) }
        for j in 0..<c {
            faces += [0, Int32(g.vertex(row: 1, column: j)), Int32(g.vertex(row: 1, column: j + 1))]
            uvFaces += [topUV(j), ringUV(1, j), ringUV(1, j + 1)]
        }
        for row in 1..<(rowCount - 2) {
            for j in 0..<c {
                let a = Int32(g.vertex(row: row, column: j)), b = Int32(g.vertex(row: row + 1, column: j))
                let cc = Int32(g.vertex(row: row + 1, column: j + 1)), d = Int32(g.vertex(row: row, column: j + 1))
                faces += [a, b, cc, a, cc, d]
                uvFaces += [ringUV(row, j), ringUV(row + 1, j), ringUV(row + 1, j + 1),
                            ringUV(row, j), ringUV(row + 1, j + 1), ringUV(row, j + 1)]
            }
        }
        let last = rowCount - 1
        for j in 0..<c {
            faces += [Int32(g.vertex(row: last - 1, column: j)), Int32(g.vertex(row: last, column: 0)),
                      Int32(g.vertex(row: last - 1, column: j + 1))]
            uvFaces += [ringUV(last - 1, j), bottomUV(j), ringUV(last - 1, j + 1)]
        }

        // UVs: u = column / C (the seam column repeated at u = 1), v from `HeadGeometry.rowV`.
        var uvs: [Float] = []
        for row in 1..<last {
            for j in 0...c { uvs += [Float(j) / Float(c), Float(g.rowV[row])] }
        }
        for j in 0..<c { uvs += [(Float(j) + 0.5) / Float(c), 1] }
        for j in 0..<c { uvs += [(Float(j) + 0.5) / Float(c), 0] }

        // Joints: each is the midpoint of a ring's two side vertices (x cancels), so shape modes
        // that move the rings move the joints with them.
        let jointHeights = [-0.235, -0.192, -0.07, -0.035]
        let side = (0..<c).min { abs(g.phis[$0] - Double.pi / 2) < abs(g.phis[$1] - Double.pi / 2) }!
        let mirror = (c - side) % c
        var regressor = [Float](repeating: 0, count: 4 * v)
        var jointRows: [Int] = []
        for (j, height) in jointHeights.enumerated() {
            let row = (1..<last).filter { g.rows[$0].pocket == 0 }
                .min { abs(g.ring(g.rows[$0].t, shape: .zero).y - height) < abs(g.ring(g.rows[$1].t, shape: .zero).y - height) }!
            jointRows.append(row)
            regressor[j * v + g.vertex(row: row, column: side)] = 0.5
            regressor[j * v + g.vertex(row: row, column: mirror)] = 0.5
        }
        var joints = [SIMD3<Double>](repeating: .zero, count: 4)
        for j in 0..<4 {
            for i in 0..<v where regressor[j * v + i] != 0 {
                let p = SIMD3<Double>(neutral[3 * i], neutral[3 * i + 1], neutral[3 * i + 2])
                joints[j] += Double(regressor[j * v + i]) * p
            }
        }

        // Skinning weights and regions, from each vertex's place on the profile.
        var weights = [Float](repeating: 0, count: 4 * v)
        var regions = [Int32](repeating: 0, count: v)
        let tUnderChin = g.knotT[HeadGeometry.underChinRing], tNeckBase = g.knotT[HeadGeometry.neckBaseRing]
        for row in 0..<rowCount {
            let columns = (row == 0 || row == last) ? 1 : c
            let y = g.ring(g.rows[row].t, shape: .zero).y
            for j in 0..<columns {
                let i = g.vertex(row: row, column: j)
                let phi = row == 0 || row == last ? Double.pi : g.phis[j]
                let s = neutral[3 * i]
                let w = skinningWeights(row: row, y: y, phi: phi, s: s)
                for k in 0..<4 { weights[4 * i + k] = Float(w[k]) }
                let t = g.rows[row].t
                let region: ParametricModel.Region
                if g.rows[row].pocket != 0 && HeadGeometry.mouthOpening(s) * HeadGeometry.frontMask(phi) > 0.01 {
                    region = .mouth
                } else if t <= tUnderChin + 1e-9 {
                    region = .head
                } else if t <= tNeckBase + 1e-9 {
                    region = .neck
                } else {
                    region = .body
                }
                regions[i] = region.rawValue
            }
        }

        let expressions = expressionDirections(neutral: neutral, weights: weights, jaw: joints[3])
        let (lmkFaces, lmkBary) = HeadLandmarks.embed(g)

        return ParametricModel(
            name: HeadModel.name, template: neutral.map(Float.init), shapeDirections: shapeDirs, shapeCount: shapeCount,
            expressionDirections: expressions, expressionCount: HeadModel.expressionNames.count, poseDirections: [],
            jointRegressor: regressor, weights: weights, parents: [-1, 0, 1, 2], faces: faces,
            uvs: uvs, uvFaces: uvFaces, landmarkFaces: lmkFaces, landmarkBarycentrics: lmkBary,
            vertexRegions: regions, jawJoint: 3)
    }

    /// (root, neck, head, jaw) weights of a vertex. The jaw carries the chin, the lower lip, the
    /// lower half of the mouth pocket and the lower cheeks; rows that meet at rest (the lips outside
    /// the mouth opening) get equal weights so that nothing tears when the jaw opens.
    func skinningWeights(row: Int, y: Double, phi: Double, s: Double) -> [Double] {
        let head = HeadGeometry.headWeight(y)
        let neck = (1 - head) * HeadMath.smoothstep(-0.222, -0.192, y)
        let root = 1 - head - neck
        let rowJaw: Double
        switch row - g.mouthRow {
        case ...1: rowJaw = 0          // above the mouth, the upper lip's edge and the upper inside
        case 2: rowJaw = 0.5           // the back wall of the mouth
        default: rowJaw = 1            // the lower inside, the lower lip and below
        }
        let smoothJaw = HeadMath.smoothstep(HeadGeometry.mouthY + 0.012, HeadGeometry.mouthY - 0.012, y)
        let open = HeadGeometry.mouthOpening(s)
        let forward = HeadMath.smoothstep(-0.05, 0.45, cos(phi))
        let jaw = forward * (open * rowJaw + (1 - open) * smoothJaw)
        return [root, neck, head * (1 - jaw), head * jaw]
    }

    /// The expression blendshapes, each the displacement of the full expression (ψ = 1).
    func expressionDirections(neutral: [Double], weights: [Float], jaw: SIMD3<Double>) -> [Float] {
        let v = neutral.count / 3
        let e = HeadModel.expressionNames.count
        var out = [Float](repeating: 0, count: 3 * v * e)
        let open = FieldMath.rotation(axisAngle: SIMD3(HeadGeometry.jawOpenAngle, 0, 0))
        let my = HeadGeometry.mouthY
        for i in 0..<v {
            let p = SIMD3(neutral[3 * i], neutral[3 * i + 1], neutral[3 * i + 2])
            let s = p.x, y = p.y, side: Double = s >= 0 ? 1 : -1
            let phi = atan2(p.x, p.z - (-0.012))
            let front = HeadGeometry.frontMask(phi)
            var d = [SIMD3<Double>](repeating: .zero, count: e)
            // jaw_open: the jaw's share of a 0.3 rad rotation about the jaw joint.
            d[0] = Double(weights[4 * i + 3]) * (open * (p - jaw) + jaw - p)
            // smile: mouth corners up, out and back; cheeks up.
            let corner = exp(-pow((abs(s) - 0.024) / 0.011, 2) - pow((y - my) / 0.010, 2))
            let cheek = exp(-pow((abs(s) - 0.04) / 0.014, 2) - pow((y + 0.05) / 0.014, 2))
            d[1] = front * (corner * SIMD3(0.004 * side, 0.0055, -0.002) + cheek * SIMD3(0, 0.0025, 0.0015))
            // brow_raise: brows and lower forehead up; the eyes stay.
            let browBand = exp(-pow((abs(s) - 0.03) / 0.028, 2))
                * HeadMath.smoothstep(-0.012, 0, y) * (1 - HeadMath.smoothstep(0.02, 0.06, y))
            d[2] = front * browBand * SIMD3(0, 0.0065, 0)
            // blink_left / blink_right: the eye opening collapses onto the lower lid and the upper
            // lid stretches down over it.
            for (k, eye) in [(3, HeadGeometry.eyeX), (4, -HeadGeometry.eyeX)] {
                let across = 1 - HeadMath.smoothstep(0.010, 0.017, abs(s - eye))
                if across <= 0 || front <= 0 { continue }
                let low = HeadGeometry.eyeY - HeadGeometry.eyeHalfHeight, openTop = HeadGeometry.eyeY + HeadGeometry.eyeHalfHeight
                let top = HeadGeometry.eyeY + HeadGeometry.blinkTop
                let keep = 0.08
                var mapped = y
                if y >= low && y <= openTop {
                    mapped = low + (y - low) * keep
                } else if y > openTop && y < top {
                    let start = low + (openTop - low) * keep
                    mapped = start + (y - openTop) * (top - start) / (top - openTop)
                }
                let lid = HeadMath.smoothstep(low - 0.002, low + 0.002, y) * (1 - HeadMath.smoothstep(top - 0.004, top, y))
                d[k] = front * across * SIMD3(0, mapped - y, 0.0015 * lid)
            }
            // frown: inner brows down and together.
            let inner = exp(-pow((abs(s) - 0.016) / 0.012, 2) - pow((y - 0.006) / 0.01, 2))
            d[5] = front * inner * SIMD3(-0.0025 * side, -0.004, 0.001)
            // pucker: lips forward and narrower.
            let lips = exp(-pow(s / 0.02, 2) - pow((y - my) / 0.012, 2))
            d[6] = front * lips * SIMD3(-0.3 * s, 0, 0.007)
            for k in 0..<e {
                out[(3 * i) * e + k] = Float(d[k].x)
                out[(3 * i + 1) * e + k] = Float(d[k].y)
                out[(3 * i + 2) * e + k] = Float(d[k].z)
            }
        }
        return out
    }
}
