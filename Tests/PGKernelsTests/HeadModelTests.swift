import Foundation
import PGKernels
import PGTensor
import Testing

@Suite struct HeadModelTests {
    let m = HeadModel.model

    func point(_ vertices: [Float], _ i: Int) -> SIMD3<Double> {
        SIMD3(Double(vertices[3 * i]), Double(vertices[3 * i + 1]), Double(vertices[3 * i + 2]))
    }

    /// Landmark positions on a posed mesh.
    func landmarks(_ vertices: [Float]) -> [SIMD3<Double>] {
        (0..<m.landmarkCount).map { l in
            let (a, b, c) = m.face(Int(m.landmarkFaces[l]))
            let w = (0..<3).map { Double(m.landmarkBarycentrics[3 * l + $0]) }
            return w[0] * point(vertices, a) + w[1] * point(vertices, b) + w[2] * point(vertices, c)
        }
    }

    @Test func theMeshIsClosedOrientedOutwardAndHeadSized() {
        // Every directed edge once and its reverse once: closed, manifold, consistently oriented.
        var directed = Set<Int64>()
        let v = Int64(m.vertexCount)
        for f in 0..<m.faceCount {
            let (a, b, c) = m.face(f)
            for (x, y) in [(a, b), (b, c), (c, a)] {
                #expect(x != y, "face \(f) is degenerate in its indices")
                #expect(directed.insert(Int64(x) * v + Int64(y)).inserted, "edge \(x)→\(y) is used twice")
            }
        }
        for e in directed { #expect(directed.contains((e % v) * v + e / v), "edge \(e / v)→\(e % v) has no twin") }
        // Euler characteristic 2: a sphere.
        #expect(m.vertexCount - directed.count / 2 + m.faceCount == 2)
        // Positive signed volume: faces point outward.
        var volume = 0.0
        for f in 0..<m.faceCount {
            let (a, b, c) = m.face(f)
            let pa = point(m.template, a), pb = point(m.template, b), pc = point(m.template, c)
            volume += (pa.x * (pb.y * pc.z - pb.z * pc.y) - pa.y * (pb.x * pc.z - pb.z * pc.x) + pa.z * (pb.x * pc.y - pb.y * pc.x)) / 6
        }
        #expect(volume > 0.01 && volume < 0.05, "volume \(volume) m³")
        // A head about 23 cm tall and 15 cm wide, on shoulders about 40 cm wide.
        let ys = stride(from: 1, to: m.template.count, by: 3).map { m.template[$0] }
        let xs = stride(from: 0, to: m.template.count, by: 3).map { m.template[$0] }
        #expect(abs(ys.max()! - 0.118) < 0.005)
        #expect(xs.max()! > 0.19 && xs.max()! < 0.23)
        let headXs = (0..<m.vertexCount).filter { m.template[3 * $0 + 1] > -0.05 }.map { m.template[3 * $0] }
        #expect(headXs.max()! > 0.07 && headXs.max()! < 0.095, "head half-width \(headXs.max()!)")
    }

    @Test func theUVLayoutHasNoOverlaps() {
        let r = 96
        var claims = 0
        var covered = Set<Int>()
        for f in 0..<m.faceCount {
            let uv = (0..<3).map { k -> SIMD2<Double> in
                let i = Int(m.uvFaces[3 * f + k])
                return SIMD2(Double(m.uvs[2 * i]) * Double(r) - 0.5, (1 - Double(m.uvs[2 * i + 1])) * Double(r) - 0.5)
            }
            func cross(_ a: SIMD2<Double>, _ b: SIMD2<Double>) -> Double { a.x * b.y - a.y * b.x }
            let area = cross(uv[1] - uv[0], uv[2] - uv[0])
            // All UV triangles wind the same way (image y down flips the mesh's counter-clockwise).
            #expect(area < 0, "UV face \(f) winds the wrong way")
            let x0 = max(0, Int(uv.map(\.x).min()!.rounded(.up))), x1 = min(r - 1, Int(uv.map(\.x).max()!))
            let y0 = max(0, Int(uv.map(\.y).min()!.rounded(.up))), y1 = min(r - 1, Int(uv.map(\.y).max()!))
            if x0 > x1 || y0 > y1 { continue }
            for y in y0...y1 {
                for x in x0...x1 {
                    let p = SIMD2(Double(x), Double(y))
                    let w = [cross(uv[1] - p, uv[2] - p), cross(uv[2] - p, uv[0] - p), cross(uv[0] - p, uv[1] - p)].map { $0 / area }
                    if w.allSatisfy({ $0 > 1e-9 }) { claims += 1; covered.insert(y * r + x) }
                }
            }
        }
        #expect(claims == covered.count, "\(claims - covered.count) texel centres lie in two UV faces")
        #expect(Double(covered.count) > 0.9 * Double(r * r), "the layout should use the texture: \(covered.count) of \(r * r)")
    }

    @Test func exportThenLoadIsExact() throws {
        let dir = try scratchDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("head.npz")
        try m.write(npz: url)
        let back = try ParametricModel(npz: url)
        #expect(back.name == url.path)
        var renamed = back
        renamed.name = m.name
        #expect(renamed == m)
        // Same layout as SMPL-X / FLAME files.
        let names = try NPZArchive(url: url).names
        for key in ["v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f", "vt", "ft",
                    "lmk_faces_idx", "lmk_bary_coords"] {
            #expect(names.contains(key), "export lacks \(key)")
        }
    }

    @Test func skinningWeightsJointsAndRegionsAreWellFormed() {
        for i in 0..<m.vertexCount {
            let w = (0..<4).map { m.weights[4 * i + $0] }
            #expect(w.allSatisfy { $0 >= 0 } && abs(w.reduce(0, +) - 1) < 1e-5, "vertex \(i) weights \(w)")
        }
        for j in 0..<4 { #expect((0..<m.vertexCount).contains { m.weights[4 * $0 + j] > 0.5 }, "joint \(HeadModel.jointNames[j]) drives nothing") }
        for j in 0..<4 { #expect(abs(m.jointRegressor[(j * m.vertexCount)..<((j + 1) * m.vertexCount)].reduce(0, +) - 1) < 1e-6) }
        let joints = m.regressJoints(m.template)
        // root, neck, head, jaw go up the body, on the midline.
        for j in 0..<4 { #expect(abs(joints[3 * j]) < 1e-6) }
        #expect(joints[1] < joints[4] && joints[4] < joints[7] && joints[7] < joints[10])
        #expect(m.parents == [-1, 0, 1, 2] && m.jawJoint == 3)
        #expect(Set(m.vertexRegions) == Set(ParametricModel.Region.allCases.map(\.rawValue)))
    }

    @Test func landmarksSitWhereIBUGPutsThem() {
        let l = landmarks(m.template)
        #expect(l.count == 68)
        // The nose tip is the most forward landmark; the chin (8) the lowest of the jaw line.
        #expect((0..<68).max { l[$0].z < l[$1].z } == 30)
        #expect((0...16).min { l[$0].y < l[$1].y } == 8)
        // The subject's right (−x) comes first in every left–right pair, and the pairs mirror.
        for (a, b) in [(0, 16), (4, 12), (17, 26), (36, 45), (39, 42), (31, 35), (48, 54), (60, 64)] {
            #expect(l[a].x < 0 && l[b].x > 0, "landmarks \(a), \(b)")
            #expect(abs(l[a].x + l[b].x) < 1e-3 && abs(l[a].y - l[b].y) < 1e-3 && abs(l[a].z - l[b].z) < 2e-3,
                    "landmarks \(a) \(l[a]) and \(b) \(l[b]) should mirror")
        }
        // Top to bottom: brows, eyes, nose tip, mouth, chin.
        #expect(l[19].y > l[37].y && l[37].y > l[30].y && l[30].y > l[51].y && l[51].y > l[57].y && l[57].y > l[8].y)
        // The lips meet at rest.
        #expect((l[62] - l[66]).magnitude < 1e-4)
    }

    @Test func theJawOpensTheMouthAndExpressionsMoveTheFace() {
        let rest = landmarks(m.template)
        func posed(_ pose: ModelPose) -> [SIMD3<Double>] { landmarks(m.skin(pose).posedVertices()) }
        // Jaw pose: the lower lip drops, the upper lip stays.
        let open = posed(ModelPose(jaw: SIMD3(0.35, 0, 0)))
        #expect((open[62] - open[66]).magnitude > 0.02, "mouth opening \((open[62] - open[66]).magnitude) m")
        #expect((open[62] - rest[62]).magnitude < 1e-3, "upper lip \(rest[62]) → \(open[62])")
        #expect(open[8].y < rest[8].y - 0.015, "chin \(rest[8]) → \(open[8])")
        // The jaw_open expression does the same as a blendshape.
        var psi = [Float](repeating: 0, count: m.expressionCount)
        psi[HeadModel.expression("jaw_open")!] = 1
        let blend = posed(ModelPose(expression: psi))
        #expect((blend[62] - blend[66]).magnitude > 0.015)
        // Blinking the left eye (+x, landmarks 43–47) closes it and leaves the right one open.
        psi = [Float](repeating: 0, count: m.expressionCount)
        psi[HeadModel.expression("blink_left")!] = 1
        let blink = posed(ModelPose(expression: psi))
        let openLeft = rest[44].y - rest[46].y, closedLeft = blink[44].y - blink[46].y
        #expect(closedLeft < 0.2 * openLeft, "left eye opening \(openLeft) → \(closedLeft)")
        #expect(abs((blink[37].y - blink[41].y) - (rest[37].y - rest[41].y)) < 1e-4)
        // Smile lifts the mouth corners; brow raise lifts the brows.
        psi = [Float](repeating: 0, count: m.expressionCount)
        psi[HeadModel.expression("smile")!] = 1
        psi[HeadModel.expression("brow_raise")!] = 1
        let happy = posed(ModelPose(expression: psi))
        #expect(happy[48].y > rest[48].y + 0.003 && happy[54].y > rest[54].y + 0.003)
        #expect(happy[19].y > rest[19].y + 0.004 && happy[24].y > rest[24].y + 0.004)
        // Turning the head moves the face but not the shoulders.
        var rotations = [Float](repeating: 0, count: 12)
        rotations[3 * 1 + 1] = 0.5
        let turned = m.skin(ModelPose(jointRotations: rotations)).posedVertices()
        let shoulder = (0..<m.vertexCount).max { m.template[3 * $0] < m.template[3 * $1] }!
        #expect((point(turned, shoulder) - point(m.template, shoulder)).magnitude < 1e-6)
        #expect(landmarks(turned)[30].x > rest[30].x + 0.03)
    }

    @Test func shapeModesChangeTheHeadAndMoveTheJoints() {
        var beta = [Float](repeating: 0, count: m.shapeCount)
        beta[0] = 1   // head_size
        let bigger = m.shapedVertices(shape: beta, expression: [])
        let top = (0..<m.vertexCount).max { m.template[3 * $0 + 1] < m.template[3 * $1 + 1] }!
        #expect(bigger[3 * top + 1] > m.template[3 * top + 1] + 0.005)
        beta = [Float](repeating: 0, count: m.shapeCount)
        beta[6] = 1   // shoulder_width
        let wide = m.shapedVertices(shape: beta, expression: [])
        #expect(wide.enumerated().filter { $0.offset % 3 == 0 }.map(\.element).max()! > m.template.enumerated().filter { $0.offset % 3 == 0 }.map(\.element).max()! + 0.01)
        // Joints follow the shape: a bigger head moves the jaw hinge.
        beta = [Float](repeating: 0, count: m.shapeCount)
        beta[0] = 1
        let jaw = m.regressJoints(m.shapedVertices(shape: beta, expression: [])), jaw0 = m.regressJoints(m.template)
        #expect(abs(jaw[10] - jaw0[10]) > 1e-3 || abs(jaw[11] - jaw0[11]) > 1e-3)
    }

    @Test func theProceduralTextureLooksLikeSkinWithADarkMouthInside() {
        let r = 64
        let t = HeadModel.texture(resolution: r)
        #expect(t.count == 3 * r * r && t.allSatisfy { $0 >= 0 && $0 <= 1 })
        #expect(t == HeadModel.texture(resolution: r), "deterministic")
        // The face centre (u ≈ ½, a little above the middle) is skin: red > green > blue.
        let row = r * 30 / 100, col = r / 2 + 4
        let px = (0..<3).map { t[$0 * r * r + row * r + col] }
        #expect(px[0] > px[1] && px[1] > px[2] && px[0] > 0.4, "face colour \(px)")
    }
}

extension SIMD3 where Scalar == Double {
    var magnitude: Double { (self * self).sum().squareRoot() }
}
