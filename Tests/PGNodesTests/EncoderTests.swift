import Foundation
import PGFlow
import PGMedia
import PGTensor
import Synchronization
import Testing
@testable import PGNodes

@Suite struct EncoderTests {
    typealias F = VideoNodeFixtures

    /// A FrameStream over in-memory frames, as the scheduler would hand them to a sink.
    static func stream(_ frames: [Tensor]) -> FrameStream {
        var i = 0
        return FrameStream(count: frames.count) {
            guard i < frames.count else { return nil }
            defer { i += 1 }
            return (i, Inputs(["frames": .tensor(frames[i])]))
        }
    }

    static func sha256sum(_ url: URL) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        p.arguments = [url.path]
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        p.waitUntilExit()
        return String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).split(separator: " ")[0].description
    }

    @Test func writesVideoWithFPSFromMetaAndReportsProgress() throws {
        let dir = F.tempFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let node = try Encoder(params: F.params("Encoder", ["path": "out/clip.mp4", "preset": "ultrafast"], base: dir))
        let progress = Mutex<[Int]>([])
        let ctx = RunContext(nodeID: "enc", nodeType: "Encoder", graphDirectory: dir,
                             onProgress: { done, total in progress.withLock { $0.append(done * 100 + total) } })
        let frames = (0..<5).map { F.numbered($0) }
        let meta: Value = .record(["fps": .number(24000.0 / 1001), "path": .string(dir.appendingPathComponent("src.mp4").path)])
        let out = try node.consume(Self.stream(frames), inputs: Inputs(["meta": meta]), context: ctx)
        let file = try #require(out["file"]?.record)
        let url = dir.appendingPathComponent("out/clip.mp4")
        #expect(file["path"]?.string == url.path)
        #expect(file["sha256"]?.string == (try Self.sha256sum(url)))
        let info = try VideoReader.probe(url)
        #expect(info.frameCount == 5)
        #expect(abs(info.fps - 24000.0 / 1001) < 1e-9)
        #expect(progress.withLock { $0 } == [105, 205, 305, 405, 505])
        #expect(F.contents(dir.appendingPathComponent("out")) == ["clip.mp4"])
    }

    @Test func fpsParamWinsAndDefaultIs25() throws {
        let dir = F.tempFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let frames = (0..<2).map { F.numbered($0) }
        let meta = Inputs(["meta": .record(["fps": .number(30)])])
        let a = try Encoder(params: F.params("Encoder", ["path": "a.mp4", "fps": 12], base: dir))
        _ = try a.consume(Self.stream(frames), inputs: meta, context: F.context(dir))
        #expect(try VideoReader.probe(dir.appendingPathComponent("a.mp4")).fps == 12)
        let b = try Encoder(params: F.params("Encoder", ["path": "b.mp4"], base: dir))
        _ = try b.consume(Self.stream(frames), inputs: Inputs([:]), context: F.context(dir))
        #expect(try VideoReader.probe(dir.appendingPathComponent("b.mp4")).fps == 25)
    }

    @Test func pngFolderHashCoversEveryFrame() throws {
        let dir = F.tempFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let node = try Encoder(params: F.params("Encoder", ["path": "frames", "codec": "png", "bits": 16], base: dir))
        let first = try node.consume(Self.stream((0..<3).map { F.numbered($0) }), inputs: Inputs([:]), context: F.context(dir))
        let folder = dir.appendingPathComponent("frames")
        #expect(F.contents(folder) == ["frame_000000.png", "frame_000001.png", "frame_000002.png"])
        #expect(try PNGImage.header(folder.appendingPathComponent("frame_000001.png")).bitDepth == 16)
        let again = try node.consume(Self.stream((0..<3).map { F.numbered($0) }), inputs: Inputs([:]), context: F.context(dir))
        #expect(first["file"] == again["file"])
        let changed = try node.consume(Self.stream((1..<4).map { F.numbered($0) }), inputs: Inputs([:]), context: F.context(dir))
        #expect(changed["file"]?.record?["sha256"] != first["file"]?.record?["sha256"])
        #expect(F.contents(dir) == ["frames"])
    }

    @Test func badFramesFailCleanly() throws {
        let dir = F.tempFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let node = try Encoder(params: F.params("Encoder", ["path": "odd.mp4"], base: dir))
        let url = dir.appendingPathComponent("odd.mp4")
        do {
            _ = try node.consume(Self.stream([F.numbered(0, width: 31, height: 24)]), inputs: Inputs([:]), context: F.context(dir))
            Issue.record("no error")
        } catch {
            #expect("\(error)" == "Cannot write '\(url.path)': frames of 31×24 pixels cannot be stored as yuv420p, which needs an even "
                    + "width and height; use pixel_format yuv444p, codec png, or an even size.")
        }
        do {
            _ = try node.consume(Self.stream([]), inputs: Inputs([:]), context: F.context(dir))
            Issue.record("no error")
        } catch {
            #expect("\(error)" == "Cannot write '\(url.path)': no frames were given to write.")
        }
        // A failure mid-stream (frame 2 changes size) leaves neither a file nor a temporary.
        do {
            _ = try node.consume(Self.stream([F.numbered(0), F.numbered(1), F.numbered(2, width: 16)]), inputs: Inputs([:]),
                                 context: F.context(dir))
            Issue.record("no error")
        } catch {
            #expect("\(error)".contains("frame 2 is 16×24 pixels but the first frame was 32×24"))
        }
        #expect(F.contents(dir).isEmpty)
    }

    @Test func paramsAreChecked() throws {
        let dir = F.tempFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        do { _ = try Encoder(params: F.params("Encoder", ["path": "x", "codec": "png", "bits": 12], base: dir)); Issue.record("no error") } catch {
            #expect("\(error)" == "param 'bits' should be 8 or 16, got 12")
        }
        do { _ = try Encoder(params: F.params("Encoder", ["path": "x.mp4", "pixel_format": "yuv422p"], base: dir)); Issue.record("no error") } catch {
            #expect("\(error)" == "param 'pixel_format' should be one of yuv420p, yuv444p, got \"yuv422p\"")
        }
    }

    @Test(.enabled(if: VideoNodeFixtures.sampleClip != nil, "run Scripts/fetch-sample.sh to fetch data/single_face.mp4"))
    func transcodeKeepsFrameCountAndFPS() throws {
        let clip = try #require(F.sampleClip)
        let dir = F.tempFolder()
        defer { try? FileManager.default.removeItem(at: dir) }
        let ctx = F.context(dir)
        let src = try VideoSource(params: F.params("VideoSource", ["path": JSON.string(clip.path), "size": [256, 256], "fit": "crop"], base: dir))
        let enc = try Encoder(params: F.params("Encoder", ["path": "out/transcode.mp4", "preset": "veryfast"], base: dir))
        let n = try src.frameCount(Inputs([:]), context: ctx)
        let meta = try #require(try src.evaluate(Inputs([:]), frame: nil, context: ctx)["meta"])
        // Feed the sink straight from the source, as the scheduler would.
        var frames: [Tensor] = []
        try src.produce(frames: Array(0..<n), inputs: Inputs([:]), context: ctx) { _, v in frames.append(v["frames"]!.tensor!) }
        let out = try enc.consume(Self.stream(frames), inputs: Inputs(["meta": meta]), context: ctx)
        let written = URL(fileURLWithPath: try #require(out["file"]?.record?["path"]?.string))
        let original = try VideoReader.probe(clip)
        let result = try VideoReader.probe(written)
        #expect(result.frameCount == original.frameCount)
        #expect(result.frameCount == 72)
        #expect(abs(result.fps - original.fps) < 1e-9)
        #expect(result.size == ImageSize(width: 256, height: 256))
        // The transcode looks like the resized source.
        let back = try VideoReader(written)
        var total = 0.0
        for f in frames {
            let d = try #require(try back.next())
            var se = 0.0
            for i in 0..<f.count { let e = Double(f.scalars[i] - d.rgb.scalars[i]); se += e * e }
            total += 10 * log10(Double(f.count) / se)
        }
        print("single_face.mp4 → 256×256 crf 18: mean PSNR against the resized source \(String(format: "%.2f", total / 72)) dB")
        #expect(total / 72 > 35)
    }
}
