import Foundation
import PGKernels
import PGTensor
import Testing

/// The tiny SMPL-X-keyed model (Scripts/convert-model.py --make-test-model) and the pose the
/// smplx package's lbs, in NumPy, gave for it.
let fieldFixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("PGNodesTests/Fixtures")
let tinySMPLX = fieldFixtures.appendingPathComponent("tiny-smplx.npz")
let tinySMPLXExpected = fieldFixtures.appendingPathComponent("tiny-smplx-expected.npz")

func scratchDirectory() throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pgflow-field-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}

@Suite struct LBSTests {
    @Test func anSMPLXKeyedNPZLoadsWithSMPLXConventions() throws {
        let m = try ParametricModel(npz: tinySMPLX)
        #expect(m.vertexCount == 122 && m.faceCount == 240 && m.jointCount == 4)
        // 20 shapedirs columns: SMPL-X v1.0's 10 shape + 10 expression split.
        #expect(m.shapeCount == 10 && m.expressionCount == 10)
        #expect(m.parents == [-1, 0, 1, 2], "the root's uint32 parent 2³²−1 reads as no parent")
        #expect(m.poseBasisCount == 27)
        #expect(m.hasUVLayout && m.uvs.count == 2 * 154)
        #expect(m.landmarkCount == 5)
        #expect(m.jawJoint == nil)
        let split = try ParametricModel(npz: tinySMPLX, shapeCount: 4)
        #expect(split.shapeCount == 4 && split.expressionCount == 16)
    }

    @Test func skinningMatchesTheSmplxPackage() throws {
        let m = try ParametricModel(npz: tinySMPLX)
        let e = try NPZ.read(tinySMPLXExpected)
        let pose = ModelPose(shape: e["betas"]!.scalars, expression: e["expression"]!.scalars,
                             jointRotations: e["full_pose"]!.scalars,
                             translation: SIMD3(e["transl"]!.scalars[0], e["transl"]!.scalars[1], e["transl"]!.scalars[2]))
        let skinned = m.skin(pose, threads: 2)
        let vertices = skinned.posedVertices()
        let expected = e["vertices"]!.scalars
        let err = zip(vertices, expected).map { abs($0 - $1) }.max()!
        #expect(err < 2e-5, "largest vertex difference from smplx's lbs: \(err)")
        let jointErr = zip(skinned.posedJoints, e["joints"]!.scalars).map { abs($0 - $1) }.max()!
        #expect(jointErr < 2e-5, "largest joint difference from smplx's lbs: \(jointErr)")
        // Without pose correctives the result differs: they are really applied.
        let plain = m.skin(pose, poseCorrectives: false).posedVertices()
        #expect(zip(plain, expected).map { abs($0 - $1) }.max()! > 1e-3)
    }

    @Test func theGlobalRotationAndJawComposeOntoTheirJoints() throws {
        let m = try ParametricModel(npz: tinySMPLX)
        var rng = FieldRandom(5)
        let rot = SIMD3<Float>(0.3, -0.2, 0.5)
        var rotations = rng.floats(12, -0.4, 0.4)
        let viaPose = m.skin(ModelPose(jointRotations: { var r = rotations; r[0] = rot.x; r[1] = rot.y; r[2] = rot.z; return r }()))
        rotations[0] = 0; rotations[1] = 0; rotations[2] = 0
        let viaRotation = m.skin(ModelPose(jointRotations: rotations, rotation: rot))
        let err = zip(viaPose.posedVertices(), viaRotation.posedVertices()).map { abs($0 - $1) }.max()!
        #expect(err < 1e-5, "seed 5: `rotation` should act as the root joint's rotation (off by \(err))")
        // Zero pose: the posed mesh is the shaped template.
        let beta: [Float] = [0.5, -1, 0.25]
        let rest = m.skin(ModelPose(shape: beta)).posedVertices()
        let shaped = m.shapedVertices(shape: beta, expression: [])
        #expect(zip(rest, shaped).map { abs($0 - $1) }.max()! < 1e-6)
    }

    /// A FLAME-keyed file (5 joints: global, neck, jaw, eyes; 400 shapedirs; posedirs [V, 3, 36];
    /// root parent stored as −1) loads with FLAME's conventions: 300 shape + 100 expression
    /// directions, the jaw at joint 2, neck/head regions from the skinning weights; and a jaw
    /// rotation turns exactly the jaw-weighted vertices about the jaw joint.
    @Test func aFLAMEKeyedNPZLoadsWithFLAMEConventions() throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        var rng = FieldRandom(11)
        // Six vertices, two faces: 0–1 on the neck, 2–3 on the jaw, 4–5 on the skull.
        let v = 6, j = 5, k = 400
        let template: [Float] = [0, -0.1, 0, 0.05, -0.1, 0, 0, -0.05, 0.05, 0.05, -0.1, 0.08, 0, 0.05, 0, 0.05, 0.05, 0]
        let joint = [0, 0, 2, 2, 1, 1]
        var weights = [Float](repeating: 0, count: v * j)
        for i in 0..<v { weights[i * j + joint[i]] = 1 }
        // Joints at the neck base, the head and the jaw hinge (the eyes at the skull): one-hot regressor.
        let jointVertex = [0, 4, 2, 4, 5]
        var regressor = [Float](repeating: 0, count: j * v)
        for (jj, vi) in jointVertex.enumerated() { regressor[jj * v + vi] = 1 }
        let arrays: [(String, Tensor)] = [
            ("v_template", Tensor(shape: [v, 3], scalars: template)),
            ("shapedirs", Tensor(shape: [v, 3, k], scalars: rng.floats(v * 3 * k, -0.01, 0.01))),
            ("posedirs", Tensor(shape: [v, 3, 36], scalars: rng.floats(v * 3 * 36, -0.01, 0.01))),
            ("J_regressor", Tensor(shape: [j, v], scalars: regressor)),
            ("weights", Tensor(shape: [v, j], scalars: weights)),
            ("kintree_table", Tensor(shape: [2, j], scalars: [-1, 0, 1, 1, 1, 0, 1, 2, 3, 4])),
            ("f", Tensor(shape: [2, 3], scalars: [0, 1, 2, 3, 4, 5])),
        ]
        let url = dir.appendingPathComponent("flame.npz")
        try NPZ.write(arrays, to: url)
        let m = try ParametricModel(npz: url)
        #expect(m.jointCount == 5 && m.parents == [-1, 0, 1, 1, 1])
        #expect(m.shapeCount == 300 && m.expressionCount == 100)
        #expect(m.jawJoint == 2 && m.poseBasisCount == 36)
        #expect(m.vertexRegions == [ParametricModel.Region.neck, .neck, .head, .head, .head, .head].map(\.rawValue))

        let open = m.skin(ModelPose(jaw: SIMD3(0.3, 0, 0)), poseCorrectives: false).posedVertices()
        let rest = m.skin(ModelPose(), poseCorrectives: false).posedVertices()
        func point(_ a: [Float], _ i: Int) -> SIMD3<Float> { SIMD3(a[3 * i], a[3 * i + 1], a[3 * i + 2]) }
        func length(_ d: SIMD3<Float>) -> Float { (d * d).sum().squareRoot() }
        let hinge = point(template, 2)
        for i in 0..<v {
            let moved = length(point(open, i) - point(rest, i))
            if joint[i] == 2 && i != 2 {
                // Turned by 0.3 rad about the hinge: the distance to it stays, the point moves.
                #expect(abs(length(point(open, i) - hinge) - length(point(rest, i) - hinge)) < 1e-5)
                #expect(moved > 0.01, "vertex \(i) is on the jaw and should move")
            } else {
                #expect(moved < 1e-6, "vertex \(i) is not on the jaw and moved \(moved)")
            }
        }
    }

    @Test func aTransposedPosedirsLayoutAndExportRoundTripLoad() throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let m = try ParametricModel(npz: tinySMPLX)
        // Export → load gives back the same model.
        let url = dir.appendingPathComponent("tiny.npz")
        try m.write(npz: url)
        var back = try ParametricModel(npz: url)
        back.name = m.name
        #expect(back == m)
        // posedirs stored as [P, 3V] (the smplx package's in-memory layout) loads the same.
        var arrays = m.arrays()
        let p = m.poseBasisCount, rows = 3 * m.vertexCount
        var transposed = [Float](repeating: 0, count: p * rows)
        for r in 0..<rows { for c in 0..<p { transposed[c * rows + r] = m.poseDirections[r * p + c] } }
        arrays = arrays.map { $0.0 == "posedirs" ? ("posedirs", Tensor(shape: [p, rows], scalars: transposed)) : $0 }
        let t = dir.appendingPathComponent("transposed.npz")
        try NPZ.write(arrays, to: t)
        #expect(try ParametricModel(npz: t).poseDirections == m.poseDirections)
    }

    @Test func brokenModelFilesAreReportedWithTheFileAndArray() throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let m = try ParametricModel(npz: tinySMPLX)
        func write(_ edit: ([(String, Tensor)]) -> [(String, Tensor)]) throws -> URL {
            let url = dir.appendingPathComponent("\(UUID().uuidString).npz")
            try NPZ.write(edit(m.arrays()), to: url)
            return url
        }
        let noWeights = try write { $0.filter { $0.0 != "weights" } }
        #expect { try ParametricModel(npz: noWeights) } throws: { "\($0)".contains(noWeights.path) && "\($0)".contains("'weights'") }
        let badParent = try write { $0.map { $0.0 == "kintree_table" ? ("kintree_table", Tensor(shape: [2, 4], scalars: [-1, 0, 3, 2, 0, 1, 2, 3])) : $0 } }
        #expect { try ParametricModel(npz: badParent) } throws: { "\($0)".contains("parent") }
        let badFaces = try write { $0.map { $0.0 == "f" ? ("f", Tensor(shape: [1, 3], scalars: [0, 1, 500])) : $0 } }
        #expect { try ParametricModel(npz: badFaces) } throws: { "\($0)".contains("'f'") && "\($0)".contains("500") }
    }
}
