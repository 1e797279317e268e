import Foundation
import PGTensor
import Testing
@testable import PGMedia

@Suite struct RoundTripTests {
    /// Small frames for the behaviour tests.
    static let frames = Synthetic.frames(10, width: 64, height: 48)
    /// The quality tests use larger frames: at tiny sizes x264 spends its bits on overhead.
    static let qualityFrames = Synthetic.frames(16, width: 256, height: 192)

    /// Mean over frames of the RGB PSNR after an encode → decode round trip.
    func meanPSNR(_ settings: EncoderSettings) throws -> Double {
        let dir = TempFolder()
        defer { dir.remove() }
        let url = dir.file("clip.mp4")
        try encode(Self.qualityFrames, to: url, settings)
        let decoded = try decodeAll(url)
        #expect(decoded.count == Self.qualityFrames.count)
        let scores = zip(Self.qualityFrames, decoded).map { psnr($0, $1.rgb) }
        return scores.reduce(0, +) / Double(scores.count)
    }

    @Test func h264YUV420AtCRF18() throws {
        let p = try meanPSNR(EncoderSettings(codec: .h264, crf: 18, chroma: .yuv420p))
        print("h264 yuv420p crf 18: mean PSNR \(String(format: "%.2f", p)) dB")
        #expect(p >= 34)
    }

    @Test func h264YUV444AtCRF18() throws {
        let p = try meanPSNR(EncoderSettings(codec: .h264, crf: 18, chroma: .yuv444p))
        print("h264 yuv444p crf 18: mean PSNR \(String(format: "%.2f", p)) dB")
        #expect(p >= 40)
    }

    @Test func mpeg4() throws {
        let p = try meanPSNR(EncoderSettings(codec: .mpeg4, crf: 18))
        print("mpeg4 (crf 18 → q 3): mean PSNR \(String(format: "%.2f", p)) dB")
        #expect(p >= 30)
    }

    @Test func fallsBackToMPEG4WithoutLibx264() throws {
        let dir = TempFolder()
        defer { dir.remove() }
        let url = dir.file("fallback.mp4")
        let writer = try VideoWriter(url, settings: EncoderSettings(codec: .h264), hasEncoder: { $0 != "libx264" })
        #expect(writer.codec == .mpeg4)
        for f in Self.frames.prefix(3) { try writer.append(f) }
        try writer.finish()
        let info = try VideoReader.probe(url)
        #expect(info.codec == "mpeg4")
        #expect(info.frameCount == 3)
    }

    @Test(arguments: [25.0, 30000.0 / 1001, 12.5, 60])
    func keepsFrameRateAndCount(fps: Double) throws {
        let dir = TempFolder()
        defer { dir.remove() }
        let url = dir.file("rate.mp4")
        try encode(Array(Self.frames.prefix(10)), to: url, EncoderSettings(preset: "ultrafast", fps: fps))
        let info = try VideoReader.probe(url)
        #expect(abs(info.fps - fps) < 1e-6)
        #expect(info.frameCount == 10)
        #expect(abs(info.duration - 10 / fps) < 1e-6)
        // Frame t is shown at t/fps (to the container's timestamp resolution).
        let times = try decodeAll(url).map(\.time)
        #expect(times.count == 10)
        for (t, time) in times.enumerated() { #expect(abs(time - Double(t) / fps) < 1e-4, "frame \(t) at \(time) s") }
    }

    @Test(arguments: ["mov", "mkv"])
    func otherContainers(ext: String) throws {
        let dir = TempFolder()
        defer { dir.remove() }
        let url = dir.file("clip.\(ext)")
        try encode(Array(Self.frames.prefix(6)), to: url, EncoderSettings(preset: "ultrafast", fps: 24))
        let info = try VideoReader.probe(url)
        #expect(info.frameCount == 6)   // Matroska has no count: counted from packets
        #expect(abs(info.fps - 24) < 1e-6)
        let decoded = try decodeAll(url)
        #expect(decoded.count == 6)
        #expect(psnr(decoded[3].rgb, Self.frames[3]) > 30)
    }

    @Test(arguments: [8, 16])
    func pngSequence(bits: Int) throws {
        let dir = TempFolder()
        defer { dir.remove() }
        let url = dir.file("frames")
        let input = Array(Self.frames.prefix(4))
        try encode(input, to: url, EncoderSettings(codec: .png, bits: bits))
        #expect(dir.contents("frames") == (0..<4).map { String(format: "frame_%06d.png", $0) })
        #expect(dir.contents() == ["frames"])
        let reader = try VideoReader(url)
        #expect(reader.info.frameCount == 4)
        #expect(reader.info.isImageSequence)
        #expect(reader.info.pixelFormat == (bits == 8 ? "rgb24" : "rgb48"))
        var i = 0
        while let f = try reader.next() {
            // Only quantisation error: half a step of the sample size.
            let step: Float = bits == 8 ? 1 / 255 : 1 / 65535
            let worst = zip(f.rgb.scalars, input[i].scalars).map { abs($0 - $1) }.max()!
            #expect(worst <= step / 2 + 1e-6)
            i += 1
        }
        #expect(i == 4)
    }

    @Test func rewritingReplacesEarlierResult() throws {
        let dir = TempFolder()
        defer { dir.remove() }
        let url = dir.file("again.mp4")
        try encode(Array(Self.frames.prefix(2)), to: url, EncoderSettings(preset: "ultrafast"))
        try encode(Array(Self.frames.prefix(5)), to: url, EncoderSettings(preset: "ultrafast"))
        #expect(try VideoReader.probe(url).frameCount == 5)
        let pngs = dir.file("pngs")
        try encode(Array(Self.frames.prefix(3)), to: pngs, EncoderSettings(codec: .png))
        try encode(Array(Self.frames.prefix(2)), to: pngs, EncoderSettings(codec: .png))
        #expect(dir.contents("pngs").count == 2)
        #expect(dir.contents() == ["again.mp4", "pngs"])
    }

    @Test func createsMissingParentFolders() throws {
        let dir = TempFolder()
        defer { dir.remove() }
        let url = dir.file("out/deeper/clip.mp4")
        try encode(Array(Self.frames.prefix(2)), to: url, EncoderSettings(preset: "ultrafast"))
        #expect(FileManager.default.fileExists(atPath: url.path))
        #expect(dir.contents("out/deeper") == ["clip.mp4"])
    }

    @Test func grayAndRGBAFramesEncode() throws {
        let dir = TempFolder()
        defer { dir.remove() }
        let gray = Synthetic.frame(0, width: 32, height: 16, channels: 1)
        let url = dir.file("gray.mp4")
        try encode([gray, gray], to: url, EncoderSettings(chroma: .yuv444p))
        let back = try decodeAll(url)[0].rgb
        // All three channels carry the gray picture.
        for c in 0..<3 {
            let plane = Tensor(shape: [1, 16, 32], scalars: Array(back.scalars[(c * 512)..<((c + 1) * 512)]))
            #expect(psnr(plane, gray) > 35)
        }
        let rgba = Synthetic.frame(1, width: 32, height: 16, channels: 4)
        try encode([rgba], to: dir.file("rgba.mp4"))
        #expect(try VideoReader.probe(dir.file("rgba.mp4")).hasAlpha == false)
    }

    /// Other codecs and containers this FFmpeg decodes, made with its own encoders: only those
    /// this build has become test cases (Debian's libavcodec has all four).
    @Test(arguments: [("libx265", "mp4", "hevc"), ("libvpx-vp9", "webm", "vp9"), ("libaom-av1", "mkv", "av1"),
                      ("mpeg4", "mov", "mpeg4")].filter { VideoWriter.hasEncoder($0.0) })
    func decodesOtherCodecs(encoder: String, ext: String, codec: String) throws {
        let dir = TempFolder()
        defer { dir.remove() }
        let url = dir.file("clip.\(ext)")
        let frames = Array(Self.frames.prefix(5))
        let enc = try FFmpegEncoder(filePath: url.path, displayPath: url.path, size: ImageSize(width: 64, height: 48),
                                    encoderName: encoder, settings: EncoderSettings(fps: 25, threads: 1))
        for f in frames { try enc.encode(f) }
        try enc.finish()
        let reader = try VideoReader(url)
        #expect(reader.info.codec == codec)
        #expect(reader.info.frameCount == 5)
        #expect(abs(reader.info.fps - 25) < 1e-6)
        var i = 0
        while let f = try reader.next() {
            #expect(psnr(f.rgb, frames[i]) > 22)
            i += 1
        }
        #expect(i == 5)
    }
}
