import Foundation
import PGFlow
import PGKernels
@testable import PGNodes
import PGTensor
import Testing

/// Small tracking files in every layout the Tracker imports, written from a known camera, and the
/// pixel each layout's *own* convention puts known points at.
enum TrackerFixtures {
    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("pgflow-tracker-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Tracker params completed with the shipped catalog's defaults, as validation does.
    static func params(_ values: [String: JSON], base: URL) throws -> Params {
        guard let spec = try Catalog.load(shippedCatalog)["Tracker"] else { throw OperatorError("no Tracker in the catalog") }
        var all: [String: JSON] = [:]
        for p in spec.params { if let d = p.defaultValue { all[p.name] = d } }
        for (k, v) in values { all[k] = v }
        return Params(all, baseDirectory: base)
    }

    static func tracker(_ values: [String: JSON], base: URL) throws -> Tracker { try Tracker(params: try params(values, base: base)) }

    /// Runs a tracker standalone: frame count, then every frame.
    static func run(_ op: Tracker, meta: Value? = nil) throws -> [[String: Value]] {
        let ctx = RunContext.standalone()
        let inputs = Inputs(meta.map { ["meta": $0] } ?? [:])
        let n = try op.frameCount(inputs, context: ctx)
        return try (0..<n).map { try op.evaluate(inputs, frame: $0, context: ctx) }
    }

    /// Rodrigues, written out here so the tests do not lean on the importer's own.
    static func rodrigues(_ w: SIMD3<Double>) -> [[Double]] {
        let th = (w * w).sum().squareRoot()
        guard th > 0 else { return [[1, 0, 0], [0, 1, 0], [0, 0, 1]] }
        let k = w / th, c = cos(th), s = sin(th), v = 1 - c
        return [[c + k.x * k.x * v, k.x * k.y * v - k.z * s, k.x * k.z * v + k.y * s],
                [k.y * k.x * v + k.z * s, c + k.y * k.y * v, k.y * k.z * v - k.x * s],
                [k.z * k.x * v - k.y * s, k.z * k.y * v + k.x * s, c + k.z * k.z * v]]
    }

    /// Where a `Camera` record puts a world point (pgflow: OpenCV axes, p_cam = R·p + t).
    static func pixel(_ camera: Value, _ p: SIMD3<Double>) -> SIMD2<Double> {
        let m = camera["world_to_camera"]!.tensor!.scalars.map(Double.init)
        let c = (0..<3).map { r in m[4 * r] * p.x + m[4 * r + 1] * p.y + m[4 * r + 2] * p.z + m[4 * r + 3] }
        return SIMD2(camera["fx"]!.number! * c[0] / c[2] + camera["cx"]!.number!,
                     camera["fy"]!.number! * c[1] / c[2] + camera["cy"]!.number!)
    }

    /// Points around a head at the origin.
    static let points: [SIMD3<Double>] = [SIMD3(0, 0, 0), SIMD3(0.08, 0.05, 0.02), SIMD3(-0.07, -0.09, 0.1), SIMD3(0.03, 0.12, -0.05)]

    /// A camera 0.8 m in front of the face (which looks along +z), slightly turned, in OpenCV axes.
    static func openCVCamera(frame t: Int, width: Int = 128, height: Int = 96) -> PinholeCamera {
        let turn = rodrigues(SIMD3(0.05 * Double(t), -0.1, 0.03))
        let flip: [[Double]] = [[1, 0, 0], [0, -1, 0], [0, 0, -1]]
        var m = [Float](repeating: 0, count: 16)
        let t3 = [0.01 * Double(t), -0.05, 0.8]
        for r in 0..<3 {
            for c in 0..<3 { m[4 * r + c] = Float((0..<3).reduce(0) { $0 + flip[r][$1] * turn[$1][c] }) }
            m[4 * r + 3] = Float(t3[r])
        }
        m[15] = 1
        return PinholeCamera(fx: 150, fy: 152, cx: Double(width) / 2 + 1.5, cy: Double(height) / 2 - 2,
                              width: width, height: height, worldToCamera: m)
    }

    static func expectPixels(_ camera: Value, _ expected: [SIMD2<Double>], _ what: String, tolerance: Double = 1e-3) {
        for (p, e) in zip(points, expected) {
            let got = pixel(camera, p)
            #expect(abs(got.x - e.x) < tolerance && abs(got.y - e.y) < tolerance, "\(what): \(p) lands at \(got), expected \(e)")
        }
    }
}

@Suite struct TrackerTests {
    typealias F = TrackerFixtures

    // MARK: pgflow format

    @Test func pgflowJSONWrittenByHandFollowsTheSpec() throws {
        let dir = try F.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let cam = F.openCVCamera(frame: 1)
        let rows = (0..<4).map { r in "[" + (0..<4).map { "\(cam.worldToCamera[4 * r + $0])" }.joined(separator: ", ") + "]" }
        let text = """
        {"format": "pgflow-tracking", "version": 1, "model": "builtin:head", "shape": [0.5, -0.25],
         "frames": [
           {"expression": [0.3, 0, 0.1], "pose": [[0, 0, 0], [0.1, 0, 0], [0, 0.2, 0], [0, 0, 0]], "rotation": [0, 0.1, 0],
            "translation": [0.01, 0.02, 0.03], "jaw": [0.2, 0, 0],
            "camera": {"fx": \(cam.fx), "fy": \(cam.fy), "cx": \(cam.cx), "cy": \(cam.cy), "width": \(cam.width), "height": \(cam.height),
                       "world_to_camera": [\(rows.joined(separator: ", "))]}}
         ]}
        """
        try Data(text.utf8).write(to: dir.appendingPathComponent("track.json"))
        let frames = try F.run(try F.tracker(["path": .string("track.json")], base: dir))
        #expect(frames.count == 1)
        let tracking = try Tracking(value: frames[0]["tracking"]!)
        #expect(tracking == Tracking(model: "builtin:head", shape: [0.5, -0.25], expression: [0.3, 0, 0.1],
                                     pose: [0, 0, 0, 0.1, 0, 0, 0, 0.2, 0, 0, 0, 0], rotation: SIMD3(0, 0.1, 0),
                                     translation: SIMD3(0.01, 0.02, 0.03), jaw: SIMD3(0.2, 0, 0)))
        // Expected pixels straight from the numbers written above: K·(R·p + t).
        let m = cam.worldToCamera.map(Double.init)
        let expected = F.points.map { p -> SIMD2<Double> in
            let c = (0..<3).map { r in m[4 * r] * p.x + m[4 * r + 1] * p.y + m[4 * r + 2] * p.z + m[4 * r + 3] }
            return SIMD2(cam.fx * c[0] / c[2] + cam.cx, cam.fy * c[1] / c[2] + cam.cy)
        }
        F.expectPixels(frames[0]["camera"]!, expected, "hand-written pgflow JSON")
    }

    @Test(arguments: ["json", "npz"])
    func pgflowFilesRoundTripThroughTheWriter(ext: String) throws {
        let dir = try F.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = HeadModel.model
        var written: [TrackedFrame] = []
        for t in 0..<3 {
            var tracking = FieldFixtures.tracking(for: model, seed: UInt64(t) + 3, scale: 0.5)
            tracking.shape = [0.2, -0.1, 0.3]
            let landmarks = (0..<136).map { Float($0 % 17) * 3.5 + Float(t) }
            written.append(TrackedFrame(tracking: tracking, camera: F.openCVCamera(frame: t), landmarks: landmarks))
        }
        let url = dir.appendingPathComponent("track.\(ext)")
        try TrackingFile.write(written, model: "builtin:head", to: url)
        let frames = try F.run(try F.tracker(["path": .string("track.\(ext)"), "frames": .int(3)], base: dir))
        #expect(frames.count == 3)
        for (t, f) in frames.enumerated() {
            let tracking = try Tracking(value: f["tracking"]!)
            #expect(tracking.model == "builtin:head")
            #expect(tracking.shape == written[t].tracking.shape)
            #expect(tracking.expression == written[t].tracking.expression)
            #expect(tracking.pose == written[t].tracking.pose)
            #expect(tracking.rotation == written[t].tracking.rotation && tracking.translation == written[t].tracking.translation)
            #expect(tracking.jaw == written[t].tracking.jaw)
            let expected = F.points.map { F.pixel(written[t].camera.value, $0) }
            F.expectPixels(f["camera"]!, expected, "pgflow .\(ext) frame \(t)")
        }
        // The reader sees the same sequence the writer was given.
        let back = try TrackingFile.read(url, model: "builtin:head")
        #expect(back.frames.map(\.landmarks) == written.map(\.landmarks))
    }

    @Test func widthAndHeightScaleTheIntrinsicsLikeSplat() throws {
        let dir = try F.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let cam = F.openCVCamera(frame: 0, width: 128, height: 96)
        try TrackingFile.write([TrackedFrame(tracking: Tracking(model: HeadModel.name), camera: cam)], model: "builtin:head",
                               to: dir.appendingPathComponent("t.json"))
        let full = try F.run(try F.tracker(["path": .string("t.json")], base: dir))[0]
        let half = try F.run(try F.tracker(["path": .string("t.json"), "width": .int(64)], base: dir))[0]
        #expect(half["camera"]!["width"]!.number == 64 && half["camera"]!["height"]!.number == 48)
        #expect(half["mask"]!.tensor!.shape == [1, 48, 64])
        F.expectPixels(half["camera"]!, F.points.map { F.pixel(full["camera"]!, $0) / 2 }, "camera at half size")
        // meta from a video of another size but the same aspect ratio rescales too; another aspect is an error.
        let meta: Value = .record(["path": .string("clip.mp4"), "frame_count": .number(1), "width": .number(256), "height": .number(192)])
        let video = try F.run(try F.tracker(["path": .string("t.json")], base: dir), meta: meta)[0]
        F.expectPixels(video["camera"]!, F.points.map { F.pixel(full["camera"]!, $0) * 2 }, "camera at the video's size")
        let square: Value = .record(["path": .string("clip.mp4"), "frame_count": .number(1), "width": .number(256), "height": .number(256)])
        #expect { try F.run(try F.tracker(["path": .string("t.json")], base: dir), meta: square) } throws: { error in
            "\(error)".contains("128×96") && "\(error)".contains("256×256")
        }
    }

    // MARK: PortraitGen

    /// PortraitGen's own projection (geometry_utils.proj_pts after pytorch3d's row-vector
    /// `p @ so3_exp_map(cam_angle) + cam_trans`): x = −fx·X/Z + cx, y = fy·Y/Z + cy.
    static func portraitGenPixel(_ p: SIMD3<Double>, angle: SIMD3<Double>, trans: SIMD3<Double>, para: [Double]) -> SIMD2<Double> {
        let e = F.rodrigues(angle)
        let q = (0..<3).map { j in p.x * e[0][j] + p.y * e[1][j] + p.z * e[2][j] + trans[j] }
        return SIMD2(-para[0] * q[0] / q[2] + para[2], para[1] * q[1] / q[2] + para[3])
    }

    static let pgAngles: [SIMD3<Double>] = [SIMD3(0.1, -0.2, 0.05), SIMD3(-0.05, 0.3, 0), SIMD3(0.2, 0.1, -0.1)]
    static let pgTrans: [SIMD3<Double>] = [SIMD3(0.01, 0.02, -0.9), SIMD3(-0.02, 0.0, -1.1), SIMD3(0.0, -0.03, -1.0)]
    static let pgPara: [Double] = [1100, 1105, 256, 256]

    /// A PortraitGen-layout NPZ (T = 3) with `drop` left out and `truncate` cut to two frames.
    static func writePortraitGen(_ url: URL, drop: String? = nil, truncate: String? = nil, extra: [(String, Tensor)] = []) throws {
        let t = 3
        func seq(_ n: Int, _ f: (Int, Int) -> Float) -> [Float] { (0..<(t * n)).map { f($0 / n, $0 % n) } }
        var arrays: [(String, Tensor)] = [
            ("body_pose", Tensor(shape: [t, 63], scalars: seq(63) { Float($0 + 1) * 0.001 * Float($1 % 7) })),
            ("jaw_pose", Tensor(shape: [t, 3], scalars: seq(3) { $1 == 0 ? 0.1 * Float($0) : 0 })),
            ("expr", Tensor(shape: [t, 100], scalars: seq(100) { Float($1) * 0.01 - Float($0) * 0.1 })),
            ("shape", Tensor(shape: [1, 300], scalars: (0..<300).map { Float($0 % 5) * 0.1 })),
            ("cam_angle", Tensor(shape: [t, 3], scalars: pgAngles.flatMap { [Float($0.x), Float($0.y), Float($0.z)] })),
            ("cam_trans", Tensor(shape: [t, 3], scalars: pgTrans.flatMap { [Float($0.x), Float($0.y), Float($0.z)] })),
            ("cam_para", Tensor(shape: [1, 4], scalars: pgPara.map(Float.init))),
            ("lhand_pose", Tensor(shape: [t, 45], scalars: seq(45) { Float($1) * 0.002 })),
        ]
        arrays.removeAll { $0.0 == drop }
        arrays += extra
        if let truncate, let i = arrays.firstIndex(where: { $0.0 == truncate }) {
            let a = arrays[i].1
            arrays[i].1 = Tensor(shape: [2] + a.shape.dropFirst(), scalars: Array(a.scalars.prefix(2 * a.count / 3)))
        }
        try NPZ.write(arrays, to: url)
    }

    @Test func portraitGenTrackImportsWithItsFlippedCamera() throws {
        let dir = try F.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try Self.writePortraitGen(dir.appendingPathComponent("smplx_track.npz"))
        let frames = try F.run(try F.tracker(["path": .string("smplx_track.npz")], base: dir))
        #expect(frames.count == 3)
        for (t, f) in frames.enumerated() {
            let cam = f["camera"]!
            #expect(cam["width"]!.number == 512 && cam["height"]!.number == 512, "2·cx × 2·cy without image_size")
            let expected = F.points.map { Self.portraitGenPixel($0, angle: Self.pgAngles[t], trans: Self.pgTrans[t], para: Self.pgPara) }
            F.expectPixels(cam, expected, "PortraitGen frame \(t)", tolerance: 2e-3)
            let tracking = try Tracking(value: f["tracking"]!)
            #expect(tracking.model == "smplx")
            #expect(tracking.pose.count == 55 * 3)
            #expect(Array(tracking.pose[0..<3]) == [0, 0, 0], "root pose stays 0")
            #expect(tracking.pose[3 + 5] == Float(t + 1) * 0.001 * 5, "body_pose value 5 is joint 1's z")
            #expect(Array(tracking.pose[66..<69]) == [0, 0, 0], "jaw_pose goes to 'jaw', not pose[22]")
            #expect(tracking.pose[75 + 44] == 44 * 0.002, "lhand_pose fills joints 25–39")
            #expect(tracking.jaw == SIMD3(0.1 * Float(t), 0, 0))
            #expect(tracking.expression.count == 100 && tracking.shape.count == 300)
            // No model file: mesh, mask and box are empty rather than made up.
            #expect(f["mesh"]!["vertices"]!.tensor!.shape == [0, 3])
            #expect(f["mask"]!.tensor!.scalars.allSatisfy { $0 == 0 })
            #expect(f["head_box"]!.tensor!.scalars == [0, 0, 0, 0])
        }
    }

    /// A stand-in SMPL-X file: SMPL-X's 55 joints, 300 + 100 blendshape directions, one triangle of
    /// head vertices in front of the face, everything skinned to the root.
    static func writeTriangleSMPLX(_ url: URL) throws {
        let v = 3, j = 55
        let template: [Float] = [-0.1, -0.1, 0, 0.1, -0.1, 0, 0, 0.12, 0]
        var weights = [Float](repeating: 0, count: v * j)
        for i in 0..<v { weights[i * j] = 1 }
        var regressor = [Float](repeating: 0, count: j * v)
        for k in 0..<j { regressor[k * v + k % v] = 1 }
        let model = ParametricModel(name: "triangle", template: template,
                                    shapeDirections: [Float](repeating: 0, count: v * 3 * 300), shapeCount: 300,
                                    expressionDirections: [Float](repeating: 0, count: v * 3 * 100), expressionCount: 100,
                                    poseDirections: [], jointRegressor: regressor, weights: weights,
                                    parents: (0..<j).map { $0 == 0 ? -1 : 0 }, faces: [0, 1, 2],
                                    vertexRegions: [ParametricModel.Region.head.rawValue, ParametricModel.Region.head.rawValue,
                                                    ParametricModel.Region.head.rawValue], jawJoint: 22)
        try model.write(npz: url)
    }

    @Test func portraitGenWithAModelFileGivesMeshMaskAndBox() throws {
        let dir = try F.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try Self.writePortraitGen(dir.appendingPathComponent("smplx_track.npz"))
        try Self.writeTriangleSMPLX(dir.appendingPathComponent("smplx.npz"))
        let frames = try F.run(try F.tracker(["path": .string("smplx_track.npz"), "model": .string("smplx.npz"), "width": .int(128)], base: dir))
        let corners: [SIMD3<Double>] = [SIMD3(-0.1, -0.1, 0), SIMD3(0.1, -0.1, 0), SIMD3(0, 0.12, 0)]
        for (t, f) in frames.enumerated() {
            #expect(f["mesh"]!["vertices"]!.tensor!.scalars == [-0.1, -0.1, 0, 0.1, -0.1, 0, 0, 0.12, 0])
            #expect(f["mesh"]!["faces"]!.tensor!.scalars == [0, 1, 2])
            // PortraitGen's own projection, at a quarter of its 512-pixel image.
            let px = corners.map { Self.portraitGenPixel($0, angle: Self.pgAngles[t], trans: Self.pgTrans[t], para: Self.pgPara) / 4 }
            let mask = f["mask"]!.tensor!
            #expect(mask.shape == [1, 128, 128])
            let centre = (px[0] + px[1] + px[2]) / 3
            #expect(mask.scalars[Int(centre.y) * 128 + Int(centre.x)] == 1, "frame \(t): the triangle's centre \(centre) is covered")
            #expect(mask.scalars[2 * 128 + 2] == 0)
            let box = f["head_box"]!.tensor!.scalars.map(Double.init)
            #expect(abs((box[2] - box[0]) - (box[3] - box[1])) < 1e-3, "square")
            for p in px { #expect(p.x > box[0] && p.x < box[2] && p.y > box[1] && p.y < box[3], "frame \(t): corner \(p) inside \(box)") }
        }
    }

    // MARK: metrical-tracker

    /// pytorch3d's matrix_to_rotation_6d: the first two rows.
    static func sixD(_ w: SIMD3<Double>) -> [Float] {
        let m = F.rodrigues(w)
        return (m[0] + m[1]).map(Float.init)
    }

    static func metricalArrays(frame t: Int) -> [(String, Tensor)] {
        let r = F.rodrigues(SIMD3(0.1 * Double(t), 0.2, -0.1))
        // A camera looking at the face along −z from 1 m, as pytorch3d's look_at leaves it in OpenCV.
        let rr = [r[0], r[1].map { -$0 }, r[2].map { -$0 }]
        return [
            ("flame/exp", Tensor(shape: [1, 100], scalars: (0..<100).map { Float($0) * 0.01 + Float(t) })),
            ("flame/shape", Tensor(shape: [1, 300], scalars: (0..<300).map { Float($0 % 3) * 0.1 })),
            ("flame/jaw", Tensor(shape: [1, 6], scalars: sixD(SIMD3(0.15 + 0.01 * Double(t), 0, 0)))),
            ("flame/eyes", Tensor(shape: [1, 12], scalars: sixD(SIMD3(0, 0.2, 0)) + sixD(SIMD3(0.1, -0.1, 0)))),
            ("flame/eyelids", Tensor(shape: [1, 2], scalars: [0.3, 0.4])),
            ("opencv/R", Tensor(shape: [1, 3, 3], scalars: rr.flatMap { $0.map(Float.init) })),
            ("opencv/t", Tensor(shape: [1, 3], scalars: [0.01 * Float(t), -0.02, 1.0])),
            ("opencv/K", Tensor(shape: [1, 3, 3], scalars: [900, 0, 330, 0, 905, 238, 0, 0, 1])),
            ("img_size", Tensor(shape: [2], scalars: [480, 640])),
        ]
    }

    /// K·(R·p + t) from the frame's own arrays.
    static func metricalPixel(_ arrays: [(String, Tensor)], _ p: SIMD3<Double>) -> SIMD2<Double> {
        let get = { (k: String) in arrays.first { $0.0 == k }!.1.scalars.map(Double.init) }
        let r = get("opencv/R"), t = get("opencv/t"), k = get("opencv/K")
        let c = (0..<3).map { i in r[3 * i] * p.x + r[3 * i + 1] * p.y + r[3 * i + 2] * p.z + t[i] }
        let h = (0..<3).map { i in k[3 * i] * c[0] + k[3 * i + 1] * c[1] + k[3 * i + 2] * c[2] }
        return SIMD2(h[0] / h[2], h[1] / h[2])
    }

    @Test func metricalFramesImportFromAFolderInNaturalOrder() throws {
        let dir = try F.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let folder = dir.appendingPathComponent("checkpoint")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        // Named so that plain string order (10 before 2) would be wrong.
        for (t, name) in [(0, "frame1.npz"), (1, "frame2.npz"), (2, "frame10.npz")] {
            try NPZ.write(Self.metricalArrays(frame: t), to: folder.appendingPathComponent(name))
        }
        try Data("not a frame".utf8).write(to: folder.appendingPathComponent("notes.txt"))
        let frames = try F.run(try F.tracker(["path": .string("checkpoint")], base: dir))
        #expect(frames.count == 3)
        for (t, f) in frames.enumerated() {
            #expect(f["camera"]!["width"]!.number == 640 && f["camera"]!["height"]!.number == 480, "img_size is [height, width]")
            F.expectPixels(f["camera"]!, F.points.map { Self.metricalPixel(Self.metricalArrays(frame: t), $0) }, "metrical frame \(t)")
            let tracking = try Tracking(value: f["tracking"]!)
            #expect(tracking.model == "flame")
            #expect(tracking.expression.first == Float(t), "frame \(t) is the file for frame \(t)")
            #expect(abs(tracking.jaw.x - Float(0.15 + 0.01 * Double(t))) < 1e-5 && abs(tracking.jaw.y) < 1e-6)
            #expect(tracking.pose.count == 15)
            let eyes = Array(tracking.pose[9..<15])
            for (a, b) in zip(eyes, [0, 0.2, 0, 0.1, -0.1, 0] as [Float]) { #expect(abs(a - b) < 1e-5, "eyes \(eyes)") }
            #expect(f["tracking"]!["eyelids"]!.tensor!.scalars == [0.3, 0.4])
        }
    }

    @Test func metricalJSONFrameNestedLikeTheCheckpoint() throws {
        let dir = try F.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let arrays = Self.metricalArrays(frame: 1)
        func list(_ key: String) -> String { "[" + arrays.first { $0.0 == key }!.1.scalars.map { "\($0)" }.joined(separator: ", ") + "]" }
        let text = """
        {"flame": {"exp": [\(list("flame/exp"))], "shape": [\(list("flame/shape"))], "jaw": [\(list("flame/jaw"))],
                   "eyes": [\(list("flame/eyes"))], "eyelids": [\(list("flame/eyelids"))]},
         "opencv": {"R": [\(list("opencv/R"))], "t": [\(list("opencv/t"))], "K": [\(list("opencv/K"))]},
         "img_size": \(list("img_size")), "frame_id": 1}
        """
        try Data(text.utf8).write(to: dir.appendingPathComponent("00001.json"))
        let frames = try F.run(try F.tracker(["path": .string("00001.json")], base: dir))
        #expect(frames.count == 1)
        F.expectPixels(frames[0]["camera"]!, F.points.map { Self.metricalPixel(arrays, $0) }, "metrical JSON")
    }

    // MARK: errors

    @Test func frameCountMismatchesNameTheFileAndBothCounts() throws {
        let dir = try F.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try Self.writePortraitGen(dir.appendingPathComponent("smplx_track.npz"))
        let path = dir.appendingPathComponent("smplx_track.npz").path
        #expect { try F.run(try F.tracker(["path": .string("smplx_track.npz"), "frames": .int(5)], base: dir)) } throws: { error in
            let m = "\(error)"
            return m.contains(path) && m.contains("3 tracked frames") && m.contains("expects 5")
        }
        let meta: Value = .record(["path": .string("/videos/clip.mp4"), "frame_count": .number(4), "width": .number(512), "height": .number(512)])
        #expect { try F.run(try F.tracker(["path": .string("smplx_track.npz")], base: dir), meta: meta) } throws: { error in
            let m = "\(error)"
            return m.contains(path) && m.contains("3 tracked frames") && m.contains("/videos/clip.mp4") && m.contains("gives 4")
        }
        // Arrays inside one file that disagree.
        try Self.writePortraitGen(dir.appendingPathComponent("short.npz"), truncate: "cam_trans")
        #expect { try F.run(try F.tracker(["path": .string("short.npz")], base: dir)) } throws: { error in
            let m = "\(error)"
            return m.contains("short.npz") && m.contains("'body_pose' has 3 frames but 'cam_trans' has 2")
        }
    }

    /// pgflow's optional image_size key sets the image (the projection stays the same pixels);
    /// without whole positive pixels it is an error that says what it got.
    @Test func portraitGenImageSizeSetsTheCameraImage() throws {
        let dir = try F.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try Self.writePortraitGen(dir.appendingPathComponent("sized.npz"), extra: [("image_size", Tensor(shape: [2], scalars: [640, 480]))])
        let frames = try F.run(try F.tracker(["path": .string("sized.npz")], base: dir))
        for (t, f) in frames.enumerated() {
            #expect(f["camera"]!["width"]!.number == 640 && f["camera"]!["height"]!.number == 480)
            let expected = F.points.map { Self.portraitGenPixel($0, angle: Self.pgAngles[t], trans: Self.pgTrans[t], para: Self.pgPara) }
            F.expectPixels(f["camera"]!, expected, "PortraitGen frame \(t) with image_size", tolerance: 2e-3)
        }
        try Self.writePortraitGen(dir.appendingPathComponent("bad.npz"), extra: [("image_size", Tensor(shape: [2], scalars: [640.5, 480]))])
        #expect { try F.run(try F.tracker(["path": .string("bad.npz")], base: dir)) } throws: {
            "\($0)".contains("bad.npz") && "\($0)".contains("'image_size' should be [width, height] in whole pixels, got [640.5, 480.0]")
        }
    }

    /// Every import format checks its frame count against the clip's.
    @Test func frameCountMismatchesAreCaughtInEveryFormat() throws {
        let dir = try F.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let folder = dir.appendingPathComponent("checkpoint")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for t in 0..<3 { try NPZ.write(Self.metricalArrays(frame: t), to: folder.appendingPathComponent("\(t).npz")) }
        let written = (0..<3).map { t in
            var tracking = FieldFixtures.tracking(for: HeadModel.model, seed: UInt64(t) + 1)
            tracking.shape = [0.1]   // one β for the clip, as the format stores it
            return TrackedFrame(tracking: tracking, camera: F.openCVCamera(frame: t))
        }
        try TrackingFile.write(written, model: "builtin:head", to: dir.appendingPathComponent("track.json"))
        for path in ["checkpoint", "track.json"] {
            #expect { try F.run(try F.tracker(["path": .string(path), "frames": .int(5)], base: dir)) } throws: {
                "\($0)".contains(dir.appendingPathComponent(path).path) && "\($0)".contains("3 tracked frames") && "\($0)".contains("expects 5")
            }
        }
    }

    @Test func missingKeysAreNamed() throws {
        let dir = try F.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try Self.writePortraitGen(dir.appendingPathComponent("no-angle.npz"), drop: "cam_angle")
        #expect { try F.run(try F.tracker(["path": .string("no-angle.npz"), "format": .string("portraitgen")], base: dir)) } throws: { error in
            "\(error)".contains("no-angle.npz") && "\(error)".contains("'cam_angle' is missing")
        }
        try NPZ.write(Self.metricalArrays(frame: 0).filter { $0.0 != "opencv/K" }, to: dir.appendingPathComponent("no-k.npz"))
        #expect { try F.run(try F.tracker(["path": .string("no-k.npz")], base: dir)) } throws: { error in
            "\(error)".contains("no-k.npz") && "\(error)".contains("'opencv/K' is missing")
        }
        try Data(#"{"format": "pgflow-tracking", "version": 1, "frames": [{"expression": []}]}"#.utf8)
            .write(to: dir.appendingPathComponent("no-camera.json"))
        #expect { try F.run(try F.tracker(["path": .string("no-camera.json")], base: dir)) } throws: { error in
            "\(error)".contains("no-camera.json") && "\(error)".contains("frame 0: the key 'camera' is missing")
        }
        try NPZ.write([("world_to_camera", Tensor(shape: [4, 4], scalars: F.openCVCamera(frame: 0).worldToCamera)),
                       ("image_size", Tensor(shape: [2], scalars: [64, 64]))], to: dir.appendingPathComponent("no-k-pgflow.npz"))
        #expect { try F.run(try F.tracker(["path": .string("no-k-pgflow.npz")], base: dir)) } throws: { error in
            "\(error)".contains("no-k-pgflow.npz") && "\(error)".contains("'intrinsics' is missing")
        }
        try Data("x".utf8).write(to: dir.appendingPathComponent("smplx_track.pth"))
        #expect { try F.run(try F.tracker(["path": .string("smplx_track.pth")], base: dir)) } throws: { error in
            "\(error)".contains("smplx_track.pth") && "\(error)".contains("np.savez")
        }
    }

    // MARK: builtin:head geometry

    @Test func builtinHeadMeshMaskAndBoxArePlausible() throws {
        let dir = try F.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = HeadModel.model
        var tracking = Tracking(model: HeadModel.name, jaw: SIMD3(0.2, 0, 0))
        tracking.pose = [Float](repeating: 0, count: 3 * model.jointCount)
        tracking.pose[3 * 2 + 1] = 0.3   // the head turned a little
        tracking.expression = [0, 0.6]
        let camera = F.openCVCamera(frame: 0, width: 128, height: 128)
        try TrackingFile.write([TrackedFrame(tracking: tracking, camera: camera)], model: "builtin:head", to: dir.appendingPathComponent("t.json"))
        let f = try F.run(try F.tracker(["path": .string("t.json")], base: dir))[0]

        let vertices = f["mesh"]!["vertices"]!.tensor!
        #expect(vertices.shape == [model.vertexCount, 3])
        #expect(f["mesh"]!["faces"]!.tensor!.shape == [model.faceCount, 3])
        let expectedVertices = model.skin(try tracking.pose(for: model)).posedVertices()
        #expect(zip(vertices.scalars, expectedVertices).allSatisfy { abs($0 - $1) < 1e-6 })

        // Landmarks on the posed mesh, projected by the test's own projection.
        let v = vertices.scalars.map(Double.init)
        func vertex(_ i: Int) -> SIMD3<Double> { SIMD3(v[3 * i], v[3 * i + 1], v[3 * i + 2]) }
        let landmarks = (0..<model.landmarkCount).map { k -> SIMD2<Double> in
            let (a, b, c) = model.face(Int(model.landmarkFaces[k]))
            let w = model.landmarkBarycentrics[(3 * k)..<(3 * k + 3)].map(Double.init)
            return F.pixel(f["camera"]!, w[0] * vertex(a) + w[1] * vertex(b) + w[2] * vertex(c))
        }
        let mask = f["mask"]!.tensor!
        #expect(mask.shape == [1, 128, 128])
        #expect(mask.scalars.allSatisfy { $0 == 0 || $0 == 1 })
        let nose = landmarks[30]
        #expect(mask.scalars[Int(nose.y) * 128 + Int(nose.x)] == 1, "the nose tip \(nose) is covered")
        let coverage = mask.scalars.reduce(0, +) / Float(mask.count)
        #expect(coverage > 0.05 && coverage < 0.9, "coverage \(coverage)")
        #expect(mask.scalars[0] == 0 && mask.scalars[127] == 0, "the top corners are background")

        let box = f["head_box"]!.tensor!.scalars.map(Double.init)
        #expect(abs((box[2] - box[0]) - (box[3] - box[1])) < 1e-3, "the box \(box) is square")
        #expect(box[0] >= 0 && box[1] >= 0 && box[2] <= 128 && box[3] <= 128, "inside the image")
        for (k, p) in landmarks.enumerated() {
            #expect(p.x > box[0] && p.x < box[2] && p.y > box[1] && p.y < box[3], "landmark \(k) at \(p) inside \(box)")
        }
        // The head is a fraction of the image, and the box a little more than the landmarks span.
        let span = landmarks.map(\.x).max()! - landmarks.map(\.x).min()!
        #expect(box[2] - box[0] > span && box[2] - box[0] < 110)
    }

    // MARK: rotations

    @Test func rotationConversionsRoundTripIncludingNearHalfTurns() throws {
        var rng = SplitMix64(seed: 11)
        func r() -> Double { Double(rng.next() % 20001) / 10000 - 1 }
        for angle in [0, 1e-7, 0.3, 1.5, 2.5, Double.pi - 1e-4, Double.pi - 1e-7] {
            for _ in 0..<4 {
                var axis = SIMD3(r(), r(), r())
                axis /= (axis * axis).sum().squareRoot()
                let w = angle * axis
                let m = F.rodrigues(w)
                let back = Matrix3(rowMajor: m.flatMap { $0.map(Float.init) }).axisAngle
                // Compare rotations, not vectors: near π, w and −w are the same half turn.
                let again = F.rodrigues(back)
                for i in 0..<3 { for j in 0..<3 { #expect(abs(again[i][j] - m[i][j]) < 2e-6, "angle \(angle) axis \(axis)") } }
                if angle < 3 { #expect(((back - w) * (back - w)).sum().squareRoot() < 1e-5, "angle \(angle): \(back) vs \(w)") }
                let six = try #require(Matrix3(sixD: Self.sixD(w)))
                #expect(abs(six.r2.x - m[2][0]) < 1e-6 && abs(six.r2.y - m[2][1]) < 1e-6 && abs(six.r2.z - m[2][2]) < 1e-6)
            }
        }
    }

    // MARK: engine

    @Test func trackerRunsInsideAGraph() throws {
        let dir = try F.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let nodes = dir.appendingPathComponent("Nodes")
        try FileManager.default.createDirectory(at: nodes, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: shippedCatalog.appendingPathComponent("Tracker.json"), to: nodes.appendingPathComponent("Tracker.json"))
        try Data("""
        {"type": "TrackerProbe", "doc": "Sums up a tracker's per-frame outputs into one tensor for the tests.",
         "inputs": {"camera": {"type": "Camera", "rate": "per-frame"}, "box": {"type": "Boxes", "rate": "per-frame"},
                    "mask": {"type": "Image", "rate": "per-frame"}, "tracking": {"type": "Tracking", "rate": "per-frame"}},
         "outputs": {"summary": {"type": "Tensor", "rate": "static"}}}
        """.utf8).write(to: nodes.appendingPathComponent("TrackerProbe.json"))
        var written: [TrackedFrame] = []
        for t in 0..<3 {
            var tracking = FieldFixtures.tracking(for: HeadModel.model, seed: UInt64(t) + 1, scale: 0.3)
            tracking.shape = [0.1, 0.2]   // one β for the clip
            written.append(TrackedFrame(tracking: tracking, camera: F.openCVCamera(frame: t, width: 96, height: 96)))
        }
        try TrackingFile.write(written, model: "builtin:head", to: dir.appendingPathComponent("track.npz"))
        let graphURL = dir.appendingPathComponent("graph.json")
        try Data("""
        {"pgflow": 1, "name": "tracker-import", "outputs": ["probe.summary"],
         "nodes": {
           "track": {"type": "Tracker", "params": {"path": "track.npz", "frames": 3, "width": 48}},
           "probe": {"type": "TrackerProbe", "in": {"camera": "track.camera", "box": "track.head_box", "mask": "track.mask",
                                                    "tracking": "track.tracking"}}
         }}
        """.utf8).write(to: graphURL)
        let catalog = try Catalog.load(nodes)
        let engine = try Engine(graph: try Graph.load(graphURL, catalog: catalog), catalog: catalog,
                                operators: [Tracker.self, TrackerProbe.self],
                                cacheDirectory: dir.appendingPathComponent("cache"), options: RunOptions(threads: 2))
        let summary = try engine.run()
        let got = try #require(summary.outputs.first { $0.target == "probe.summary" }?.value.tensor)
        // The same numbers from the node run on its own.
        let direct = try F.run(try F.tracker(["path": .string("track.npz"), "width": .int(48)], base: dir))
        #expect(got == TrackerProbe.summary(direct.map { ($0["camera"]!, $0["head_box"]!, $0["mask"]!, $0["tracking"]!) }))
        #expect(got.shape == [3, 8])
        for t in 0..<3 { #expect(got.scalars[8 * t] == 75, "fx 150 at half size") }
    }
}

/// A test-only sink: per frame fx, the head box, the mask's coverage, the first expression value
/// and the frame's tracked rotation about y.
struct TrackerProbe: FrameSink {
    static let type = "TrackerProbe"
    static let version = 1
    init(params: Params) throws {}

    static func summary(_ frames: [(camera: Value, box: Value, mask: Value, tracking: Value)]) -> Tensor {
        var out: [Float] = []
        for f in frames {
            let mask = f.mask.tensor!
            out.append(Float(f.camera["fx"]!.number!))
            out += f.box.tensor!.scalars
            out.append(mask.scalars.reduce(0, +))
            out.append(f.tracking["expression"]!.tensor!.scalars[0])
            out.append(f.tracking["rotation"]!.tensor!.scalars[1])
        }
        return Tensor(shape: [frames.count, 8], scalars: out)
    }

    func consume(_ frames: FrameStream, inputs: Inputs, context: RunContext) throws -> [String: Value] {
        var collected: [(camera: Value, box: Value, mask: Value, tracking: Value)] = []
        while let next = try frames.next() {
            let i = next.inputs
            collected.append((try i.value("camera"), try i.value("box"), try i.value("mask"), try i.value("tracking")))
        }
        return ["summary": .tensor(Self.summary(collected))]
    }
}
