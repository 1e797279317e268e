import Crypto
import Foundation
import PGFlow
import PGKernels
import PGMedia
@testable import PGNodes
import PGTensor
import Testing

/// The synthetic sample: the Performance script, its projected landmarks, the tracking file
/// TrackingExport writes, and Graphs/make-sample.json end to end at 64², 6 frames.
@Suite struct SampleTests {
    typealias F = VideoNodeFixtures

    static func performance(_ given: [String: Any] = [:]) throws -> Performance {
        try Performance(params: F.params("Performance", given, base: FileManager.default.temporaryDirectory))
    }

    /// Every frame's (tracking, camera) of a performance.
    static func frames(_ p: Performance) throws -> [(tracking: Tracking, camera: Value)] {
        let ctx = RunContext.standalone()
        return try (0..<p.frameCount(Inputs([:]), context: ctx)).map { t in
            let out = try p.evaluate(Inputs([:]), frame: t, context: ctx)
            return (try Tracking(value: out["tracking"]!), out["camera"]!)
        }
    }

    static let model = HeadModel.model
    static func yaw(_ t: Tracking) -> Float { t.pose[3 * 1 + 1] + t.pose[3 * 2 + 1] }
    static func expression(_ t: Tracking, _ name: String) -> Float { t.expression[HeadModel.expression(name)!] }

    @Test func performanceIsDeterministicAndMoves() throws {
        let a = try Self.frames(try Self.performance()), b = try Self.frames(try Self.performance())
        #expect(a.count == 75)
        #expect(zip(a, b).allSatisfy { $0.tracking == $1.tracking }, "the same seed gives the same performance")
        let other = try Self.frames(try Self.performance(["seed": 7]))
        #expect(!zip(a, other).allSatisfy { $0.tracking == $1.tracking }, "another seed gives another performance")
        // A shorter clip is a prefix of a longer one.
        for n in [6, 40] {
            let short = try Self.frames(try Self.performance(["frames": n]))
            let differing = (0..<n).first { short[$0].tracking != a[$0].tracking }
            #expect(differing == nil, "a \(n)-frame clip differs from the 75-frame one at frame \(differing ?? -1)")
        }

        let tracks = a.map(\.tracking)
        for t in tracks {
            #expect(t.model == HeadModel.name && t.pose.count == 3 * Self.model.jointCount)
            #expect(t.expression.count == Self.model.expressionCount)
            #expect(t.jaw.x >= 0 && t.jaw.y == 0 && t.jaw.z == 0, "the jaw never closes past rest")
            _ = try t.pose(for: Self.model)
        }
        // Speech: the jaw opens on some frames, is nearly closed on others, and changes quickly.
        let jaw = tracks.map(\.jaw.x)
        #expect(jaw.max()! > 0.15 && jaw.filter { $0 > 0.05 }.count >= 10, "jaw \(jaw)")
        #expect(jaw.filter { $0 < 0.01 }.count >= 5)
        // Head turns both ways.
        let yaw = tracks.map(Self.yaw)
        #expect(yaw.max()! > 0.15 && yaw.min()! < -0.1, "yaw \(yaw.min()!)…\(yaw.max()!)")
        // Blinks: both eyes together, briefly closed.
        let blinkL = tracks.map { Self.expression($0, "blink_left") }, blinkR = tracks.map { Self.expression($0, "blink_right") }
        #expect(blinkL == blinkR)
        #expect(blinkL.max()! > 0.8, "a blink closes the eyes")
        #expect(blinkL.filter { $0 > 0.1 }.count <= 15, "blinks are short")
        // A smile (with a little brow raise) happens.
        #expect(tracks.map { Self.expression($0, "smile") }.max()! > 0.5)
        // The camera is fixed, framing head and shoulders.
        #expect(a.allSatisfy { $0.camera == a[0].camera })
        let cam = a[0].camera.record!
        #expect(cam["width"]?.number == 256 && cam["cx"]?.number == 128)
        #expect(abs(cam["fx"]!.number! - 128 / tan(0.5 * 33.4 * .pi / 180)) < 1e-9)
        let meta = try Self.performance().evaluate(Inputs([:]), frame: nil, context: .standalone())["meta"]!
        #expect(meta["fps"]?.number == 25 && meta["frame_count"]?.number == 75)
    }

    @Test func landmarksProjectInsideTheImageAndTheMouthOpens() throws {
        let p = try Self.performance()
        let frames = try Self.frames(p)
        let node = try Landmarks(params: F.params("Landmarks", [:], base: FileManager.default.temporaryDirectory))
        let ctx = RunContext.standalone()
        func points(_ tracking: Tracking, _ camera: Value) throws -> Tensor {
            try node.evaluate(Inputs(["tracking": tracking.value, "camera": camera]), frame: 0, context: ctx)["points"]!.tensor!
        }
        var gaps: [(jaw: Float, gap: Float)] = []
        for (tracking, camera) in frames {
            let l = try points(tracking, camera)
            #expect(l.shape == [68, 2])
            #expect(l.scalars.allSatisfy { $0 > 0 && $0 < 256 }, "every landmark inside the 256² image")
            // iBUG order in the image: the subject's right eye (36) on the image's left, brows
            // above eyes above the nose tip (30) above the chin (8).
            #expect(l[36, 0] < l[45, 0] && l[19, 1] < l[37, 1] && l[37, 1] < l[30, 1] && l[30, 1] < l[8, 1])
            // Inner lips: 62 upper middle, 66 lower middle.
            gaps.append((tracking.jaw.x, l[66, 1] - l[62, 1]))
        }
        let closed = gaps.filter { $0.jaw < 0.005 }, open = gaps.max { $0.jaw < $1.jaw }!
        #expect(!closed.isEmpty && closed.allSatisfy { abs($0.gap) < 1 }, "closed mouth: inner lips together \(closed.map(\.gap))")
        #expect(open.gap > 3, "jaw \(open.jaw) rad: inner lips \(open.gap) px apart")

        // The landmarks sit on the rendered head: Splat, with the same camera, covers each of them.
        let field = try FieldFixtures.field(["uv": .int(96), "features": .int(3), "init_opacity": .double(0.95)])
        let parameters = try field.initialParameters(Inputs([:]), context: ctx)
        let splat = try Splat(params: params([:]))
        let small = try Self.frames(try Self.performance(["width": 64, "height": 64, "frames": 30]))
        for t in [0, 29] {
            let (tracking, camera) = small[t]
            let g = try field.evaluate(Inputs(["tracking": tracking.value], parameters: parameters), frame: t, context: ctx)["gaussians"]!
            let alpha = try splat.evaluate(Inputs(["gaussians": g, "camera": camera]), frame: t, context: ctx)["alpha"]!.tensor!
            let l = try points(tracking, camera)
            for k in 0..<68 {
                let a = alpha[0, Int(l[k, 1]), Int(l[k, 0])]
                #expect(a > 0.5, "frame \(t): landmark \(k) at \(l[k, 0]), \(l[k, 1]) falls off the head (alpha \(a))")
            }
        }
    }

    /// The (tracking, camera, landmarks) stream a graph would hand TrackingExport.
    static func stream(_ frames: [(tracking: Tracking, camera: Value)], landmarks: Bool = true) throws -> FrameStream {
        let node = try Landmarks(params: F.params("Landmarks", [:], base: FileManager.default.temporaryDirectory))
        let values = try frames.map { f -> [String: Value] in
            var v = ["tracking": f.tracking.value, "camera": f.camera]
            if landmarks { v["landmarks"] = try node.evaluate(Inputs(v), frame: 0, context: .standalone())["points"]! }
            return v
        }
        var i = 0
        return FrameStream(count: values.count) {
            guard i < values.count else { return nil }
            defer { i += 1 }
            return (i, Inputs(values[i]))
        }
    }

    @Test func trackingExportWritesTheSpecJSON() throws {
        let dir = F.tempFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let frames = Array(try Self.frames(try Self.performance()).prefix(30))
        let node = try TrackingExport(params: F.params("TrackingExport", ["path": "out/tracking.json"], base: dir))
        let result = try node.consume(try Self.stream(frames), inputs: Inputs([:]), context: .standalone())
        let url = dir.appendingPathComponent("out/tracking.json")
        #expect(result["file"]?["path"]?.string == url.path)
        let data = try Data(contentsOf: url)
        #expect(result["file"]?["sha256"]?.string == SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined())
        #expect(try FileManager.default.contentsOfDirectory(atPath: url.deletingLastPathComponent().path) == ["tracking.json"],
                "no temporary file is left behind")

        let root = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(root["format"] as? String == "pgflow-tracking")
        #expect((root["version"] as? NSNumber)?.intValue == 1)
        #expect(root["model"] as? String == "builtin:head")
        #expect((root["shape"] as? [NSNumber])?.count == Self.model.shapeCount)
        let list = try #require(root["frames"] as? [[String: Any]])
        #expect(list.count == 30)
        func numbers(_ any: Any?) -> [Float] {
            if let n = any as? NSNumber { return [n.floatValue] }
            return (any as? [Any])?.flatMap { numbers($0) } ?? []
        }
        for (t, f) in list.enumerated() {
            let tracking = frames[t].tracking
            #expect(numbers(f["expression"]) == tracking.expression, "frame \(t) expression")
            #expect((f["pose"] as? [[NSNumber]])?.allSatisfy { $0.count == 3 } == true && numbers(f["pose"]) == tracking.pose)
            #expect(numbers(f["rotation"]) == [0, 0, 0] && numbers(f["translation"]) == [0, 0, 0])
            #expect(numbers(f["jaw"]) == [tracking.jaw.x, tracking.jaw.y, tracking.jaw.z])
            let camera = try #require(f["camera"] as? [String: Any])
            let expected = frames[t].camera.record!
            for key in ["fx", "fy", "cx", "cy", "width", "height"] {
                #expect((camera[key] as? NSNumber)?.doubleValue == expected[key]?.number, "frame \(t) camera \(key)")
            }
            let w2c = try #require(camera["world_to_camera"] as? [[NSNumber]])
            #expect(w2c.count == 4 && w2c.allSatisfy { $0.count == 4 })
            #expect(numbers(w2c) == expected["world_to_camera"]!.tensor!.scalars)
            let landmarks = try #require(f["landmarks"] as? [[NSNumber]])
            #expect(landmarks.count == 68 && landmarks.allSatisfy { $0.count == 2 })
        }
    }

    @Test func trackingExportWritesTheSpecNPZ() throws {
        let dir = F.tempFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let frames = Array(try Self.frames(try Self.performance()).prefix(5))
        let node = try TrackingExport(params: F.params("TrackingExport", ["path": "t.npz"], base: dir))
        _ = try node.consume(try Self.stream(frames), inputs: Inputs([:]), context: .standalone())
        let arrays = try NPZ.read(dir.appendingPathComponent("t.npz"))
        let e = Self.model.expressionCount, j = Self.model.jointCount
        let shapes = arrays.mapValues(\.shape)
        #expect(shapes == ["shape": [10], "expression": [5, e], "pose": [5, j, 3], "rotation": [5, 3], "translation": [5, 3],
                           "jaw": [5, 3], "intrinsics": [5, 4], "image_size": [2], "world_to_camera": [5, 4, 4],
                           "landmarks": [5, 68, 2]])
        #expect(arrays["image_size"]!.scalars == [256, 256])
        #expect(Array(arrays["expression"]!.scalars[(3 * e)..<(4 * e)]) == frames[3].tracking.expression)
        #expect(arrays["jaw"]![4, 0] == frames[4].tracking.jaw.x)

        // Without landmarks there is no landmarks array.
        let bare = try TrackingExport(params: F.params("TrackingExport", ["path": "bare.npz"], base: dir))
        _ = try bare.consume(try Self.stream(frames, landmarks: false), inputs: Inputs([:]), context: .standalone())
        #expect(try NPZ.read(dir.appendingPathComponent("bare.npz"))["landmarks"] == nil)
    }

    @Test func trackingExportRefusesWhatTheFormatCannotHold() throws {
        let dir = F.tempFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        #expect(throws: OperatorError.self) { try TrackingExport(params: F.params("TrackingExport", ["path": "t.csv"], base: dir)) }
        // Frames of two image sizes: an error naming the frame, and no file.
        var frames = Array(try Self.frames(try Self.performance()).prefix(2))
        frames[1].camera = try Self.frames(try Self.performance(["width": 128, "frames": 1]))[0].camera
        let node = try TrackingExport(params: F.params("TrackingExport", ["path": "t.json"], base: dir))
        let error = #expect(throws: OperatorError.self) {
            try node.consume(try Self.stream(frames, landmarks: false), inputs: Inputs([:]), context: .standalone())
        }
        #expect(error?.message.contains("frame 1") == true, "\(String(describing: error))")
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("t.json").path))
    }

    @Test func makeSampleGraphRunsEndToEnd() throws {
        let scratch = F.tempFolder()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let url = repositoryRoot.appendingPathComponent("Graphs/make-sample.json")
        let catalog = try Catalog.load(shippedCatalog)
        let out = scratch.appendingPathComponent("out")
        let graph = try Graph.load(url, catalog: catalog, overrides: [("out", out.path), ("size", "64"), ("frames", "6")])
        let summary = try Engine(graph: graph, catalog: catalog, operators: Registry.operators,
                                 cacheDirectory: scratch.appendingPathComponent("cache")).run()
        #expect(Set(summary.outputs.map(\.target)) == ["video.file", "matte.file", "truth.file"])
        let again = try Engine(graph: graph, catalog: catalog, operators: Registry.operators,
                               cacheDirectory: scratch.appendingPathComponent("cache")).run()
        #expect(again.ran.isEmpty, "a second run reuses everything, re-ran \(again.ran)")

        let video = try VideoReader.probe(out.appendingPathComponent("sample.mp4"))
        #expect(video.frameCount == 6 && video.width == 64 && video.height == 64 && video.fps == 25)
        let tracking = try JSONSerialization.jsonObject(with: Data(contentsOf: out.appendingPathComponent("sample_tracking.json"))) as? [String: Any]
        #expect((tracking?["frames"] as? [Any])?.count == 6)

        // The way the reconstruct graph reads it: VideoSource with the matte.
        let source = try VideoSource(params: F.params("VideoSource", ["path": "out/sample.mp4", "matte": "out/sample_matte.mp4"], base: scratch))
        #expect(try source.frameCount(Inputs([:]), context: .standalone()) == 6)
        var masks: [Tensor] = [], rgbs: [Tensor] = []
        try source.produce(frames: Array(0..<6), inputs: Inputs([:]), context: .standalone()) { _, v in
            masks.append(v["mask"]!.tensor!)
            rgbs.append(v["frames"]!.tensor!)
        }
        for (mask, rgb) in zip(masks, rgbs) {
            #expect(mask[0, 2, 2] < 0.1 && mask[0, 30, 32] > 0.9, "background outside, head inside the matte")
            #expect(rgb[0, 2, 2] > 0.9 && rgb[1, 2, 2] > 0.9, "white background")
        }
        #expect(masks[0] != masks[5], "the head moves")
    }
}
