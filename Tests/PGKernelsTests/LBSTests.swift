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
