import Foundation
import PGFlow
import PGMedia
import PGTensor
import Testing
@testable import PGNodes

/// Shared by the VideoSource and Encoder tests: catalog-completed params, temp folders, clips.
enum VideoNodeFixtures {
    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    static var sampleClip: URL? {
        let url = repoRoot.appendingPathComponent("data/single_face.mp4")
        return FileManager.default.fileExists(atPath: url.path) ? url : nil
    }

    /// Params as the engine hands them over: the given values completed with the catalog's defaults
    /// from `Nodes/<type>.json` (so these tests also check that catalog and code agree).
    static func params(_ type: String, _ given: [String: Any], base: URL) throws -> Params {
        let catalog = repoRoot.appendingPathComponent("Nodes/\(type).json")
        let doc = try JSONSerialization.jsonObject(with: Data(contentsOf: catalog)) as! [String: Any]
        var values = given.mapValues(json)
        for (name, spec) in doc["params"] as! [String: Any] {
            if values[name] == nil, let d = (spec as! [String: Any])["default"] { values[name] = json(d) }
        }
        return Params(values, baseDirectory: base)
    }

    static func json(_ any: Any) -> JSON {
        switch any {
        case let j as JSON: return j
        case let s as String: return .string(s)
        case let b as Bool where !(any is NSNumber) || String(cString: (any as! NSNumber).objCType) == "c": return .bool(b)
        case let i as Int: return .int(Int64(i))
        case let d as Double: return d.rounded() == d ? .int(Int64(d)) : .double(d)
        case let n as NSNumber:
            return n.doubleValue.rounded() == n.doubleValue ? .int(n.int64Value) : .double(n.doubleValue)
        case let a as [Any]: return .array(a.map(json))
        default: return .null
        }
    }

    static func tempFolder(_ label: String = #function) -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("pgnodes-video-\(label.filter { $0.isLetter })-\(UUID().uuidString.prefix(8))")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static func contents(_ dir: URL) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).sorted()
    }

    /// Frame t is a flat colour whose red channel encodes t, so tests can tell frames apart.
    static func numbered(_ t: Int, width: Int = 32, height: Int = 24) -> Tensor {
        var out = Tensor(zeros: [3, height, width])
        out.withUnsafeMutableBufferPointer { p in
            let n = width * height
            for i in 0..<n { p[i] = Float(t) / 20; p[n + i] = 0.5; p[2 * n + i] = Float(i % width) / Float(width) }
        }
        return out
    }

    /// A lossless (PNG folder) or near-lossless (H.264, crf 0) clip of `numbered` frames.
    static func clip(in dir: URL, name: String, frames: Int, codec: VideoCodec = .h264, fps: Double = 25) throws -> URL {
        let url = dir.appendingPathComponent(name)
        let writer = try VideoWriter(url, settings: EncoderSettings(codec: codec, crf: 0, preset: "ultrafast", chroma: .yuv444p, fps: fps))
        for t in 0..<frames { try writer.append(numbered(t)) }
        try writer.finish()
        return url
    }

    static func frameNumber(_ image: Tensor) -> Int {
        Int((image.scalars[image.count / 6] * 20).rounded())
    }

    static func context(_ dir: URL) -> RunContext { RunContext.standalone("test", directory: dir) }

    /// Everything `produce` emits, in order.
    static func produceAll(_ node: VideoSource, _ frames: [Int], _ ctx: RunContext) throws -> [(Int, [String: Value])] {
        var out: [(Int, [String: Value])] = []
        try node.produce(frames: frames, inputs: Inputs([:]), context: ctx) { out.append(($0, $1)) }
        return out
    }
}

@Suite struct VideoSourceTests {
    typealias F = VideoNodeFixtures

    @Test func rangeSelectsEveryStepthFrame() throws {
        let dir = F.tempFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        _ = try F.clip(in: dir, name: "clip.mp4", frames: 12, fps: 30)
        let node = try VideoSource(params: F.params("VideoSource", ["path": "clip.mp4", "start": 2, "count": 4, "step": 3], base: dir))
        let ctx = F.context(dir)
        #expect(try node.frameCount(Inputs([:]), context: ctx) == 4)
        let out = try F.produceAll(node, [0, 1, 3], ctx)
        #expect(out.map(\.0) == [0, 1, 3])
        #expect(out.map { F.frameNumber($0.1["frames"]!.tensor!) } == [2, 5, 11])
        for (_, values) in out {
            #expect(values["frames"]?.tensor?.shape == [3, 24, 32])
            #expect(values["mask"]?.tensor?.shape == [1, 24, 32])
            #expect(values["mask"]?.tensor?.scalars.allSatisfy { $0 == 1 } == true)
        }
        // A single frame through evaluate matches produce.
        let one = try node.evaluate(Inputs([:]), frame: 3, context: ctx)
        #expect(F.frameNumber(one["frames"]!.tensor!) == 11)

        let meta = try #require(try node.evaluate(Inputs([:]), frame: nil, context: ctx)["meta"]?.record)
        #expect(meta["path"]?.string == dir.appendingPathComponent("clip.mp4").path)
        #expect(meta["fps"]?.number == 10)
        #expect(meta["frame_count"]?.number == 4)
        #expect(meta["width"]?.number == 32 && meta["height"]?.number == 24)
        #expect(meta["duration"]?.number == 0.4)
        #expect(meta["source_fps"]?.number == 30 && meta["source_frame_count"]?.number == 12)
    }

    @Test func countZeroReadsToTheEnd() throws {
        let dir = F.tempFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        _ = try F.clip(in: dir, name: "frames", frames: 7, codec: .png)
        let node = try VideoSource(params: F.params("VideoSource", ["path": "frames", "start": 1, "step": 2], base: dir))
        let ctx = F.context(dir)
        #expect(try node.frameCount(Inputs([:]), context: ctx) == 3)   // 1, 3, 5
        let out = try F.produceAll(node, [0, 1, 2], ctx)
        #expect(out.map { F.frameNumber($0.1["frames"]!.tensor!) } == [1, 3, 5])
        let meta = try node.evaluate(Inputs([:]), frame: nil, context: ctx)["meta"]?.record
        #expect(meta?["fps"]?.number == 12.5)
        #expect(meta?["codec"]?.string == "png")
    }

    @Test func rangePastTheEndIsAClearError() throws {
        let dir = F.tempFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let clip = try F.clip(in: dir, name: "clip.mp4", frames: 6)
        let ctx = F.context(dir)
        let late = try VideoSource(params: F.params("VideoSource", ["path": "clip.mp4", "start": 6], base: dir))
        #expect(throws: MediaError.self) { try late.frameCount(Inputs([:]), context: ctx) }
        do { _ = try late.frameCount(Inputs([:]), context: ctx) } catch {
            #expect("\(error)" == "Cannot read '\(clip.path)' from frame 6 (param 'start'): it has only 6 frames (0…5).")
        }
        let long = try VideoSource(params: F.params("VideoSource", ["path": "clip.mp4", "start": 1, "count": 4, "step": 2], base: dir))
        do { _ = try F.produceAll(long, [0], ctx); Issue.record("no error") } catch {
            #expect("\(error)" == "Cannot read 4 frames of '\(clip.path)' from frame 1 every 2: that reaches frame 7, but it has "
                    + "only 6 frames (0…5); lower 'count' or set it to 0 for all.")
        }
    }

    @Test func missingFileNamesIt() throws {
        let dir = F.tempFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let node = try VideoSource(params: F.params("VideoSource", ["path": "gone.mp4"], base: dir))
        do { _ = try node.frameCount(Inputs([:]), context: F.context(dir)); Issue.record("no error") } catch {
            #expect("\(error)" == "Cannot read '\(dir.appendingPathComponent("gone.mp4").path)': no such file or folder.")
        }
    }

    @Test func sizeAndFitShapeFramesAndMask() throws {
        let dir = F.tempFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        _ = try F.clip(in: dir, name: "clip.mp4", frames: 2)   // 32×24
        let ctx = F.context(dir)
        let pad = try VideoSource(params: F.params("VideoSource", ["path": "clip.mp4", "size": [16, 16], "fit": "pad"], base: dir))
        let out = try F.produceAll(pad, [1], ctx)
        let mask = try #require(out.first?.1["mask"]?.tensor)
        #expect(out.first?.1["frames"]?.tensor?.shape == [3, 16, 16])
        #expect(mask.shape == [1, 16, 16])
        // 32×24 into 16×16 keeps 4:3 → 16×12, bars of 2 rows above and below with mask 0.
        #expect(mask[0, 0, 8] == 0 && mask[0, 1, 8] == 0 && mask[0, 14, 8] == 0 && mask[0, 15, 8] == 0)
        #expect(mask[0, 2, 8] == 1 && mask[0, 13, 8] == 1)
        let meta = try pad.evaluate(Inputs([:]), frame: nil, context: ctx)["meta"]?.record
        #expect(meta?["width"]?.number == 16 && meta?["source_width"]?.number == 32)
    }

    @Test func maskFromMatteOrAlpha() throws {
        let dir = F.tempFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        _ = try F.clip(in: dir, name: "clip.mp4", frames: 3)
        // A gray matte: frame t has brightness t/4.
        let matte = dir.appendingPathComponent("matte")
        let w = try VideoWriter(matte, settings: EncoderSettings(codec: .png))
        for t in 0..<3 { try w.append(Tensor(repeating: Float(t) / 4, shape: [1, 24, 32])) }
        try w.finish()
        let ctx = F.context(dir)
        let node = try VideoSource(params: F.params("VideoSource", ["path": "clip.mp4", "matte": "matte"], base: dir))
        let out = try F.produceAll(node, [0, 1, 2], ctx)
        for (t, values) in out {
            let m = try #require(values["mask"]?.tensor)
            #expect(m.shape == [1, 24, 32])
            #expect(m.scalars.allSatisfy { abs($0 - Float(t) / 4) < 0.003 })
        }
        // RGBA PNG frames: the mask is their alpha.
        let rgba = dir.appendingPathComponent("rgba")
        let w2 = try VideoWriter(rgba, settings: EncoderSettings(codec: .png))
        var image = Tensor(repeating: 0.5, shape: [4, 8, 8])
        for x in 0..<8 { for y in 0..<8 { image[3, y, x] = x < 4 ? 0 : 1 } }
        try w2.append(image)
        try w2.finish()
        let alphaNode = try VideoSource(params: F.params("VideoSource", ["path": "rgba"], base: dir))
        let a = try #require(try F.produceAll(alphaNode, [0], ctx).first?.1["mask"]?.tensor)
        #expect(a[0, 3, 1] == 0 && a[0, 3, 6] == 1)
        // A matte shorter than the range read.
        let short = try VideoSource(params: F.params("VideoSource", ["path": "clip.mp4", "matte": "rgba"], base: dir))
        do { _ = try short.frameCount(Inputs([:]), context: ctx); Issue.record("no error") } catch {
            #expect("\(error)" == "Cannot use '\(rgba.path)' as the matte: it has 1 frames but frames up to 2 of "
                    + "'\(dir.appendingPathComponent("clip.mp4").path)' are read.")
        }
    }

    @Test(.enabled(if: VideoNodeFixtures.sampleClip != nil, "run Scripts/fetch-sample.sh to fetch data/single_face.mp4"))
    func sampleClipAt256() throws {
        let clip = try #require(F.sampleClip)
        let node = try VideoSource(params: F.params("VideoSource", ["path": JSON.string(clip.path), "size": [256, 256], "fit": "crop"],
                                                    base: F.repoRoot))
        let ctx = F.context(F.repoRoot)
        #expect(try node.frameCount(Inputs([:]), context: ctx) == 72)
        let out = try F.produceAll(node, Array(0..<72), ctx)
        #expect(out.count == 72)
        let frameShapes = Set(out.map { $0.1["frames"]?.tensor?.shape ?? [] })
        let maskShapes = Set(out.map { $0.1["mask"]?.tensor?.shape ?? [] })
        #expect(frameShapes == [[3, 256, 256]])
        #expect(maskShapes == [[1, 256, 256]])
        let meta = try node.evaluate(Inputs([:]), frame: nil, context: ctx)["meta"]?.record
        #expect(meta?["source_width"]?.number == 640 && meta?["source_height"]?.number == 360)
        #expect(meta?["frame_count"]?.number == 72)
    }
}
