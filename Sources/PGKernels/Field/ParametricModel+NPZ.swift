import Foundation
import PGTensor

/// Why a model file cannot be used; the description names the file and the array.
public struct ModelFileError: Error, CustomStringConvertible, Sendable {
    public var file: String
    public var detail: String
    public init(file: String, _ detail: String) {
        self.file = file
        self.detail = detail
    }
    public var description: String { "The model file \(file) cannot be used: \(detail)." }
}

extension ParametricModel {
    /// Loads a model from the standard NPZ keys of SMPL-X and FLAME (as written by
    /// `Scripts/convert-model.py`, SMPL-X's own `.npz` release, or `pgflow model export`):
    ///
    /// - `v_template [V,3]`, `shapedirs [V,3,K]` (shape then expression directions), `posedirs`
    ///   (`[V,3,P]`, or `[P, 3V]` as some converters store it; optional), `J_regressor [J,V]`,
    ///   `weights [V,J]`, `kintree_table [2,J]` (row 0 the parents; the root's is −1 or 2³²−1), `f [F,3]`;
    /// - optional: `vt [T,2]` + `ft [F,3]` (UV layout), `lmk_faces_idx [L]` + `lmk_bary_coords [L,3]`;
    /// - pgflow's optional extras: `num_betas`, `num_expression_coeffs` (how `shapedirs` splits),
    ///   `jaw_joint`, `vertex_region [V]`.
    ///
    /// Without `num_betas`, the split follows the smplx package: 300 shape directions when `shapedirs`
    /// has at least 400 (SMPL-X v1.1, FLAME 2020/2023), 10 when it has 20 (SMPL-X v1.0), else all of
    /// them are shape. `shapeCount` overrides that. Members the loader does not need (hand PCA,
    /// pickled dicts) are never decoded.
    public init(npz url: URL, shapeCount: Int? = nil) throws {
        try self.init(archive: try NPZArchive(url: url), name: url.path, shapeCount: shapeCount)
    }

    public init(archive: NPZArchive, name: String, shapeCount: Int? = nil) throws {
        let file = archive.source
        func fail(_ detail: String) -> ModelFileError { ModelFileError(file: file, detail) }
        func array(_ key: String) throws -> Tensor {
            guard archive.contains(key) else { throw fail("it has no '\(key)' array (it has: \(archive.names.joined(separator: ", ")))") }
            do { return try archive.tensor(key) } catch { throw fail("its '\(key)' array cannot be read (\(error))") }
        }
        func optional(_ key: String) throws -> Tensor? { archive.contains(key) ? try array(key) : nil }
        func indices(_ t: Tensor, _ key: String, below bound: Int) throws -> [Int32] {
            var out = [Int32](repeating: 0, count: t.count)
            for (i, x) in t.scalars.enumerated() {
                guard x >= 0, x < Float(bound), x == x.rounded() else {
                    throw fail("'\(key)' holds \(x) at position \(i), not an index below \(bound)")
                }
                out[i] = Int32(x)
            }
            return out
        }
        func integer(_ key: String) throws -> Int? {
            guard let t = try optional(key) else { return nil }
            guard t.count == 1, t.scalars[0] >= 0, t.scalars[0] == t.scalars[0].rounded() else {
                throw fail("'\(key)' should be one non-negative integer, got \(t)")
            }
            return Int(t.scalars[0])
        }

        let template = try array("v_template")
        guard template.rank == 2, template.shape[1] == 3, template.shape[0] > 0 else {
            throw fail("'v_template' should be [V, 3], got \(template.shape)")
        }
        let v = template.shape[0]

        let kintree = try array("kintree_table")
        guard kintree.rank == 2, kintree.shape[0] == 2, kintree.shape[1] > 0 else {
            throw fail("'kintree_table' should be [2, J], got \(kintree.shape)")
        }
        let j = kintree.shape[1]
        // Row 1 names the joints; SMPL-family files list them in order, so only row 0 matters,
        // but a permuted table would silently break skinning, so check it.
        for k in 0..<j where kintree.scalars[j + k] != Float(k) {
            throw fail("'kintree_table' row 1 should list joints 0…\(j - 1) in order, got \(kintree.scalars[j + k]) at \(k)")
        }
        var parents = [Int](repeating: -1, count: j)
        for k in 1..<max(j, 1) {
            let p = kintree.scalars[k]
            guard p >= 0, p < Float(k), p == p.rounded() else {
                throw fail("'kintree_table' gives joint \(k) the parent \(p); parents must precede their children")
            }
            parents[k] = Int(p)
        }
        if j > 0, kintree.scalars[0] >= 0, kintree.scalars[0] < Float(j) {
            throw fail("'kintree_table' gives the root joint 0 the parent \(kintree.scalars[0])")
        }

        var shapedirs = try array("shapedirs")
        if shapedirs.rank == 2, shapedirs.shape == [v, 3] { shapedirs = shapedirs.reshaped([v, 3, 1]) }
        guard shapedirs.rank == 3, shapedirs.shape[0] == v, shapedirs.shape[1] == 3 else {
            throw fail("'shapedirs' should be [\(v), 3, K], got \(shapedirs.shape)")
        }
        let k = shapedirs.shape[2]
        let s: Int
        let storedShapeCount = try integer("num_betas")
        if let n = shapeCount ?? storedShapeCount {
            guard n <= k else { throw fail("it splits 'shapedirs' after \(n) shape directions but has only \(k)") }
            s = n
        } else if k >= 400 {
            s = 300
        } else if k == 20 {
            s = 10
        } else {
            s = k
        }
        var e = k - s
        if let n = try integer("num_expression_coeffs") {
            guard n <= e else { throw fail("'num_expression_coeffs' is \(n) but 'shapedirs' has \(e) directions after the shape ones") }
            e = n
        }
        var shapeDirs = [Float](repeating: 0, count: v * 3 * s)
        var exprDirs = [Float](repeating: 0, count: v * 3 * e)
        for row in 0..<(v * 3) {
            for c in 0..<s { shapeDirs[row * s + c] = shapedirs.scalars[row * k + c] }
            for c in 0..<e { exprDirs[row * e + c] = shapedirs.scalars[row * k + s + c] }
        }

        var poseDirs: [Float] = []
        let p = 9 * (j - 1)
        if let pd = try optional("posedirs"), pd.count > 0 {
            if pd.shape == [v, 3, p] {
                poseDirs = pd.scalars
            } else if pd.shape == [p, v * 3] {
                // [P, 3V] (the transposed layout the smplx package builds in memory): back to [3V, P].
                poseDirs = [Float](repeating: 0, count: v * 3 * p)
                for a in 0..<p { for b in 0..<(v * 3) { poseDirs[b * p + a] = pd.scalars[a * v * 3 + b] } }
            } else {
                throw fail("'posedirs' should be [\(v), 3, \(p)] for \(j) joints, got \(pd.shape)")
            }
        }

        let regressor = try array("J_regressor")
        guard regressor.shape == [j, v] else { throw fail("'J_regressor' should be [\(j), \(v)], got \(regressor.shape)") }
        let weights = try array("weights")
        guard weights.shape == [v, j] else { throw fail("'weights' should be [\(v), \(j)], got \(weights.shape)") }

        let f = try array("f")
        guard f.rank == 2, f.shape[1] == 3 else { throw fail("'f' should be [F, 3], got \(f.shape)") }
        let faces = try indices(f, "f", below: v)

        var uvs: [Float] = [], uvFaces: [Int32] = []
        if let vt = try optional("vt"), let ft = try optional("ft") {
            guard vt.rank == 2, vt.shape[1] == 2 else { throw fail("'vt' should be [T, 2], got \(vt.shape)") }
            guard ft.shape == f.shape else { throw fail("'ft' should be \(f.shape) like 'f', got \(ft.shape)") }
            uvs = vt.scalars
            uvFaces = try indices(ft, "ft", below: vt.shape[0])
        }

        var lmkFaces: [Int32] = [], lmkBary: [Float] = []
        if let lf = try optional("lmk_faces_idx"), let lb = try optional("lmk_bary_coords") {
            guard lb.shape == [lf.count, 3] else { throw fail("'lmk_bary_coords' should be [\(lf.count), 3], got \(lb.shape)") }
            lmkFaces = try indices(lf, "lmk_faces_idx", below: faces.count / 3)
            lmkBary = lb.scalars
        }

        var regions: [Int32]?
        if let r = try optional("vertex_region") {
            guard r.count == v else { throw fail("'vertex_region' should be [\(v)], got \(r.shape)") }
            regions = try indices(r, "vertex_region", below: Region.allCases.count)
        }
        var jaw = try integer("jaw_joint")
        if let jj = jaw {
            guard jj >= 1, jj < j else { throw fail("'jaw_joint' is \(jj), not a non-root joint of \(j)") }
        } else if j == 55 {
            jaw = 22   // SMPL-X
        } else if j == 5 {
            jaw = 2    // FLAME
        }

        self.init(name: name, template: template.scalars, shapeDirections: shapeDirs, shapeCount: s,
                  expressionDirections: exprDirs, expressionCount: e, poseDirections: poseDirs,
                  jointRegressor: regressor.scalars, weights: weights.scalars, parents: parents, faces: faces,
                  uvs: uvs, uvFaces: uvFaces, landmarkFaces: lmkFaces, landmarkBarycentrics: lmkBary,
                  vertexRegions: regions, jawJoint: jaw)
    }

    /// The model in the NPZ layout `init(npz:)` reads (SMPL-X / FLAME key names plus pgflow's
    /// extras), so that loading what this writes gives back the same model.
    public func arrays() -> [(String, Tensor)] {
        let v = vertexCount, j = jointCount, k = shapeCount + expressionCount
        var dirs = [Float](repeating: 0, count: v * 3 * k)
        for row in 0..<(v * 3) {
            for c in 0..<shapeCount { dirs[row * k + c] = shapeDirections[row * shapeCount + c] }
            for c in 0..<expressionCount { dirs[row * k + shapeCount + c] = expressionDirections[row * expressionCount + c] }
        }
        var out: [(String, Tensor)] = [
            ("v_template", Tensor(shape: [v, 3], scalars: template)),
            ("shapedirs", Tensor(shape: [v, 3, k], scalars: dirs)),
            ("posedirs", Tensor(shape: [v, 3, poseDirections.isEmpty ? 0 : 9 * (j - 1)], scalars: poseDirections)),
            ("J_regressor", Tensor(shape: [j, v], scalars: jointRegressor)),
            ("weights", Tensor(shape: [v, j], scalars: weights)),
            ("kintree_table", Tensor(shape: [2, j], scalars: parents.map { Float($0) } + (0..<j).map { Float($0) })),
            ("f", Tensor(shape: [faceCount, 3], scalars: faces.map { Float($0) })),
        ]
        if hasUVLayout {
            out.append(("vt", Tensor(shape: [uvs.count / 2, 2], scalars: uvs)))
            out.append(("ft", Tensor(shape: [faceCount, 3], scalars: uvFaces.map { Float($0) })))
        }
        if !landmarkFaces.isEmpty {
            out.append(("lmk_faces_idx", Tensor(shape: [landmarkCount], scalars: landmarkFaces.map { Float($0) })))
            out.append(("lmk_bary_coords", Tensor(shape: [landmarkCount, 3], scalars: landmarkBarycentrics)))
        }
        out.append(("num_betas", Tensor(shape: [1], scalars: [Float(shapeCount)])))
        out.append(("num_expression_coeffs", Tensor(shape: [1], scalars: [Float(expressionCount)])))
        if let jawJoint { out.append(("jaw_joint", Tensor(shape: [1], scalars: [Float(jawJoint)]))) }
        out.append(("vertex_region", Tensor(shape: [v], scalars: vertexRegions.map { Float($0) })))
        return out
    }

    /// Writes `arrays()` as an NPZ.
    public func write(npz url: URL) throws {
        try NPZ.write(arrays(), to: url)
    }
}
