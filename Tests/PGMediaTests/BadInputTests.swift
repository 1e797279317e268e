import CFFmpeg
import Foundation
import PGTensor
import Testing
@testable import PGMedia

/// Every way input or output can be wrong ends in a MediaError that names the file and the
/// problem, and leaves no temporary or half-written file behind.
@Suite struct BadInputTests {
    static let frames = Synthetic.frames(10, width: 64, height: 48)

    /// A 10-frame MP4 with its index at the front (faststart), as pgflow writes it.
    func clip(_ dir: TempFolder, _ name: String = "clip.mp4") throws -> URL {
        let url = dir.file(name)
        try encode(Self.frames, to: url, EncoderSettings(preset: "ultrafast"))
        return url
    }

    // MARK: reading

    @Test func missingFile() {
        let dir = TempFolder()
        defer { dir.remove() }
        let url = dir.file("nope.mp4")
        let e = mediaError { _ = try VideoReader(url) }
        #expect(e?.code == .fileNotFound)
        #expect(e?.description == "Cannot read '\(url.path)': no such file or folder.")
    }

    @Test func notAMediaFile() throws {
        let dir = TempFolder()
        defer { dir.remove() }
        let url = dir.file("notes.mp4")
        try "this is a text file, not a video\n".write(to: url, atomically: true, encoding: .utf8)
        let e = mediaError { _ = try VideoReader(url) }
        #expect(e?.code == .notMedia)
        #expect(e?.description == "Cannot read '\(url.path)': it is not a video file FFmpeg can read, or it is truncated "
                + "(FFmpeg: Invalid data found when processing input).")
        let empty = dir.file("empty.mov")
        #expect(FileManager.default.createFile(atPath: empty.path, contents: Data()))
        #expect(mediaError { _ = try VideoReader(empty) }?.code == .notMedia)
    }

    @Test func audioOnlyFile() throws {
        let dir = TempFolder()
        defer { dir.remove() }
        let url = dir.file("tone.wav")
        try Self.wav(seconds: 0.1).write(to: url)
        let e = mediaError { _ = try VideoReader(url) }
        #expect(e?.code == .noVideoStream)
        #expect(e?.description == "Cannot read '\(url.path)': it has no video stream.")
    }

    @Test func truncatedFile() throws {
        let dir = TempFolder()
        defer { dir.remove() }
        let url = try clip(dir)
        let data = try Data(contentsOf: url)
        // Keep the index (at the front) but cut the picture data: the header promises 10 frames.
        let cut = dir.file("cut.mp4")
        try data.prefix(data.count * 6 / 10).write(to: cut)
        let reader = try VideoReader(cut)
        #expect(reader.info.frameCount == 10)
        var decoded = 0
        let e = mediaError { while try reader.next() != nil { decoded += 1 } }
        #expect(e?.code == .truncated)
        #expect(decoded < 10)
        #expect(e?.message == "Cannot read '\(cut.path)': the video ends after \(decoded) of the 10 frames its header "
                + "promises; the file is truncated or damaged")

        // Cut inside the index: FFmpeg cannot even open it.
        let stub = dir.file("stub.mp4")
        try data.prefix(200).write(to: stub)
        let e2 = mediaError { _ = try VideoReader(stub) }
        #expect(e2?.code == .truncated)
        #expect(e2?.description == "Cannot read '\(stub.path)': its video stream is incomplete; the file is truncated or damaged.")
    }

    /// Cut every container at many points: each read ends in a MediaError naming the file, never a crash.
    @Test(arguments: ["mp4", "mkv", "mov"])
    func truncatedAnywhere(ext: String) throws {
        let dir = TempFolder()
        defer { dir.remove() }
        let url = try clip(dir, "clip.\(ext)")
        let data = try Data(contentsOf: url)
        var codes = Set<MediaError.Code>()
        for fraction in stride(from: 0.0, to: 1.0, by: 1.0 / 24) {
            let cut = dir.file("cut.\(ext)")
            try data.prefix(Int(Double(data.count) * fraction)).write(to: cut)
            let e = mediaError {
                let reader = try VideoReader(cut)
                while try reader.next() != nil {}
            }
            // Matroska has no frame count in its header: a cut file is a shorter, valid video.
            if ext == "mkv" && e == nil { continue }
            let error = try #require(e, "a \(ext) cut at \(Int(fraction * 100))% read without error")
            #expect(error.path == cut.path)
            #expect(error.description.hasPrefix("Cannot read '\(cut.path)': "))
            codes.insert(error.code)
        }
        #expect(codes.isSubset(of: [.notMedia, .truncated, .noFrames, .corrupt]))
    }

    /// Overwrite bytes inside the picture data: decoding either conceals the damage or stops with a
    /// MediaError naming the file; it never crashes.
    @Test func damagedBytes() throws {
        let dir = TempFolder()
        defer { dir.remove() }
        let data = try Data(contentsOf: try clip(dir))
        var generator = SplitMix64(seed: 11)   // seeded: a failure reproduces
        var concealed = 0, reported = 0
        for round in 0..<8 {
            var bad = data
            let from = data.count / 4 + round * data.count / 16
            for i in from..<(from + 64) { bad[i] = UInt8.random(in: 0...255, using: &generator) }
            let url = dir.file("bad.mp4")
            try bad.write(to: url)
            // Each damaged file either decodes (FFmpeg conceals the damage) or fails with a
            // sentence naming it; both outcomes are counted, and nothing else may happen.
            let e = mediaError({ let r = try VideoReader(url); while try r.next() != nil {} })
            if let e {
                reported += 1
                #expect(e.description.hasPrefix("Cannot read '\(url.path)': "), "round \(round): \(e)")
            } else {
                concealed += 1
            }
        }
        #expect(concealed + reported == 8)
    }

    @Test func zeroFrames() throws {
        let dir = TempFolder()
        defer { dir.remove() }
        let folder = dir.file("frames")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let e = mediaError { _ = try VideoReader(folder) }
        #expect(e?.code == .noFrames)
        #expect(e?.description == "Cannot read '\(folder.path)': the folder contains no PNG frames (*.png).")

        // Valid files whose video track holds no samples (pgflow's writer refuses to make them).
        for ext in ["mp4", "mkv"] {
            let url = dir.file("empty.\(ext)")
            let encoder = try FFmpegEncoder(filePath: url.path, displayPath: url.path, size: ImageSize(width: 16, height: 16),
                                            encoderName: "libx264", settings: EncoderSettings())
            try encoder.finish()
            let e2 = mediaError { _ = try VideoReader(url) }
            #expect(e2?.code == .noFrames)
            #expect(e2?.description == "Cannot read '\(url.path)': " + (ext == "mp4"
                ? "it contains no video frames (FFmpeg finds no streams in it; the file may be truncated)."
                : "it ends before its first video frame; the file is empty or truncated."))
        }
    }

    @Test func frameRangePastTheEnd() throws {
        let dir = TempFolder()
        defer { dir.remove() }
        let url = try clip(dir)
        let reader = try VideoReader(url)
        #expect(try reader.frame(9).index == 9)
        let e = mediaError { _ = try reader.frame(12) }
        #expect(e?.code == .rangePastEnd)
        #expect(e?.description == "Cannot read frame 12 of '\(url.path)': it has only 10 frames (0…9).")
    }

    @Test func zeroOutputSize() throws {
        let dir = TempFolder()
        defer { dir.remove() }
        let url = try clip(dir)
        let e = mediaError { _ = try VideoReader(url, size: ImageSize(width: 0, height: 64)) }
        #expect(e?.code == .badSize)
        #expect(e?.description == "Cannot read '\(url.path)' at 0×64 pixels: an output size needs a positive width and height.")
    }

    @Test func pngSequenceWithAMismatchedOrDamagedFrame() throws {
        let dir = TempFolder()
        defer { dir.remove() }
        let folder = dir.file("seq")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try PNGImage.write(Synthetic.frame(0, width: 16, height: 8), to: folder.appendingPathComponent("a1.png"))
        try PNGImage.write(Synthetic.frame(1, width: 8, height: 8), to: folder.appendingPathComponent("a2.png"))
        try Data("junk".utf8).write(to: folder.appendingPathComponent("a3.png"))
        let reader = try VideoReader(folder)
        #expect(reader.info.frameCount == 3)
        _ = try reader.next()
        let e = mediaError { _ = try reader.next() }
        #expect(e?.code == .badSize)
        let second = folder.appendingPathComponent("a2.png").path
        #expect(e?.description == "Cannot read '\(second)': it is 8×8 pixels but the sequence's first frame a1.png is 16×8.")
        let e2 = mediaError { _ = try reader.next() }
        #expect(e2?.code == .notMedia)
        #expect(e2?.path == folder.appendingPathComponent("a3.png").path)
    }

    // MARK: writing

    /// A decoder can hand over pictures swscale cannot read (hardware surfaces, here VAAPI): the
    /// error names the file and the format instead of crashing in swscale.
    @Test func aPixelFormatSwscaleCannotReadIsNamed() throws {
        let converter = FrameConverter(output: ImageSize(width: 8, height: 8), fit: .crop, path: "clip.mkv")
        var frame = av_frame_alloc()
        defer { av_frame_free(&frame) }
        frame!.pointee.width = 8
        frame!.pointee.height = 8
        frame!.pointee.format = AV_PIX_FMT_VAAPI.rawValue
        #expect { try converter.convert(frame!, pixelAspect: 1) } throws: { error in
            (error as? MediaError)?.code == .unsupportedPixelFormat
                && "\(error)" == "Cannot read 'clip.mkv': its pixel format 'vaapi' cannot be converted to RGB."
        }
    }

    @Test func unsupportedPixelFormats() throws {
        let dir = TempFolder()
        defer { dir.remove() }
        let url = dir.file("out.mp4")
        do {
            let writer = try VideoWriter(url, settings: EncoderSettings())
            let e = mediaError { try writer.append(Tensor(zeros: [2, 8, 8])) }
            #expect(e?.code == .unsupportedPixelFormat)
            #expect(e?.description == "Cannot write '\(url.path)': frame 0 has 2 channels; video frames have 1 (gray), 3 (RGB) or 4 (RGBA).")
            let e2 = mediaError { try writer.append(Tensor(zeros: [8, 8])) }
            #expect(e2?.description == "Cannot write '\(url.path)': frame 0 has shape [8, 8]; frames are images of shape [C, H, W].")
        }
        #expect(dir.contents().isEmpty)
    }

    @Test func oddAndZeroSizes() throws {
        let dir = TempFolder()
        defer { dir.remove() }
        let url = dir.file("odd.mp4")
        do {
            let writer = try VideoWriter(url, settings: EncoderSettings())
            let e = mediaError { try writer.append(Synthetic.frame(0, width: 63, height: 48)) }
            #expect(e?.code == .badSize)
            #expect(e?.description == "Cannot write '\(url.path)': frames of 63×48 pixels cannot be stored as yuv420p, which "
                    + "needs an even width and height; use pixel_format yuv444p, codec png, or an even size.")
            let e2 = mediaError { try writer.append(Tensor(zeros: [3, 0, 48])) }
            #expect(e2?.code == .badSize)
            #expect(e2?.description == "Cannot write '\(url.path)': frame 0 is 48×0 pixels and has nothing to encode.")
        }
        #expect(dir.contents().isEmpty)
        // yuv444p takes odd sizes.
        try encode([Synthetic.frame(0, width: 63, height: 47)], to: url, EncoderSettings(chroma: .yuv444p))
        #expect(try VideoReader.probe(url).size == ImageSize(width: 63, height: 47))
    }

    @Test func frameSizeChangesMidStreamLeaveNothingBehind() throws {
        let dir = TempFolder()
        defer { dir.remove() }
        for (name, codec) in [("clip.mp4", VideoCodec.h264), ("frames", .png)] {
            let url = dir.file(name)
            let writer = try VideoWriter(url, settings: EncoderSettings(codec: codec))
            try writer.append(Self.frames[0])
            try writer.append(Self.frames[1])
            let e = mediaError { try writer.append(Synthetic.frame(2, width: 32, height: 48)) }
            #expect(e?.code == .badSize)
            #expect(e?.description == "Cannot write '\(url.path)': frame 2 is 32×48 pixels but the first frame was 64×48; a video keeps one size.")
            writer.cancel()
            #expect(dir.contents().isEmpty)
        }
    }

    @Test func noFramesToWrite() throws {
        let dir = TempFolder()
        defer { dir.remove() }
        let url = dir.file("none.mp4")
        let writer = try VideoWriter(url, settings: EncoderSettings())
        let e = mediaError { try writer.finish() }
        #expect(e?.code == .noFrames)
        #expect(e?.description == "Cannot write '\(url.path)': no frames were given to write.")
        #expect(dir.contents().isEmpty)
    }

    @Test func unwritableOutputs() throws {
        let dir = TempFolder()
        defer { dir.remove() }
        let file = dir.file("file.txt")
        try "x".write(to: file, atomically: true, encoding: .utf8)
        // A parent that is a file.
        let under = file.appendingPathComponent("out.mp4")
        let e = mediaError { _ = try VideoWriter(under, settings: EncoderSettings()) }
        #expect(e?.code == .unwritable)
        #expect(e?.description == "Cannot write '\(under.path)': '\(file.path)' is a file, not a folder.")
        let deeper = file.appendingPathComponent("a/b/out.mp4")
        #expect(mediaError { _ = try VideoWriter(deeper, settings: EncoderSettings()) }?.code == .unwritable)
        // A video path that is a folder, a PNG folder path that is a file.
        let folder = dir.file("taken.mp4")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let e2 = mediaError { _ = try VideoWriter(folder, settings: EncoderSettings()) }
        #expect(e2?.description == "Cannot write '\(folder.path)': it is an existing folder, not a file.")
        let e3 = mediaError { _ = try VideoWriter(file, settings: EncoderSettings(codec: .png)) }
        #expect(e3?.description == "Cannot write '\(file.path)': it is an existing file, and a PNG sequence is written to a folder.")
        // A folder with other things in it is never replaced by a PNG sequence.
        let e4 = mediaError { _ = try VideoWriter(dir.url, settings: EncoderSettings(codec: .png)) }
        #expect(e4?.code == .unwritable)
        #expect(e4?.description == "Cannot write '\(dir.url.path)': the folder exists and holds files that are not PNG frames "
                + "(such as 'file.txt'); refusing to replace it.")
        // A folder pgflow cannot write into (unless running as root, which ignores permissions).
        if getuid() != 0 {
            let locked = dir.file("locked")
            try FileManager.default.createDirectory(at: locked, withIntermediateDirectories: true)
            chmod(locked.path, 0o500)
            defer { chmod(locked.path, 0o700) }
            let e5 = mediaError { _ = try VideoWriter(locked.appendingPathComponent("x.mp4"), settings: EncoderSettings()) }
            #expect(e5?.code == .unwritable)
        }
        #expect(dir.contents() == ["file.txt", "taken.mp4"])
    }

    @Test func badExtensionsAndSettings() throws {
        let dir = TempFolder()
        defer { dir.remove() }
        let avi = dir.file("out.avi")
        let e = mediaError { _ = try VideoWriter(avi, settings: EncoderSettings()) }
        #expect(e?.code == .invalidSetting)
        #expect(e?.description == "Cannot write '\(avi.path)': codec h264 writes .mp4, .m4v, .mov or .mkv files, not .avi; "
                + "for a folder of PNG frames use codec png.")
        let e2 = mediaError { _ = try VideoWriter(dir.file("out.mp4"), settings: EncoderSettings(codec: .png)) }
        #expect(e2?.code == .invalidSetting)
        let e3 = mediaError { _ = try VideoWriter(dir.file("out.mp4"), settings: EncoderSettings(codec: .mpeg4, chroma: .yuv444p)) }
        #expect(e3?.description == "Cannot write '\(dir.file("out.mp4").path)': MPEG-4 Part 2 stores only yuv420p, not yuv444p.")
        let e4 = mediaError { _ = try VideoWriter(dir.file("out.mp4"), settings: EncoderSettings(preset: "warp")) }
        #expect(e4?.code == .invalidSetting)
        let e5 = mediaError { _ = try VideoWriter(dir.file("out.mp4"), settings: EncoderSettings(fps: 0)) }
        #expect(e5?.description == "Cannot write '\(dir.file("out.mp4").path)': a frame rate of 0.0 fps is not positive.")
        #expect(dir.contents().isEmpty)
    }

    @Test func refusesToOverwriteItsInput() throws {
        let dir = TempFolder()
        defer { dir.remove() }
        let input = try clip(dir, "input.mp4")
        let e = mediaError { _ = try VideoWriter(input, settings: EncoderSettings(), protecting: [input]) }
        #expect(e?.code == .overwritesInput)
        #expect(e?.description == "Refusing to write '\(input.path)': it would overwrite the input '\(input.path)' that is "
                + "being read; choose another output path.")
        // The same file under another name: a symbolic link and a hard link.
        let sym = dir.file("sym.mp4"), hard = dir.file("hard.mp4")
        try FileManager.default.createSymbolicLink(at: sym, withDestinationURL: input)
        try FileManager.default.linkItem(at: input, to: hard)
        #expect(mediaError { _ = try VideoWriter(sym, settings: EncoderSettings(), protecting: [input]) }?.code == .overwritesInput)
        #expect(mediaError { _ = try VideoWriter(hard, settings: EncoderSettings(), protecting: [input]) }?.code == .overwritesInput)
        // A PNG folder written over the folder it reads, or over a folder containing the input.
        let frames = dir.file("frames")
        try encode(Array(Self.frames.prefix(2)), to: frames, EncoderSettings(codec: .png))
        let e2 = mediaError { _ = try VideoWriter(frames, settings: EncoderSettings(codec: .png), protecting: [frames]) }
        #expect(e2?.code == .overwritesInput)
        let one = frames.appendingPathComponent("frame_000000.png")
        #expect(mediaError { _ = try VideoWriter(frames, settings: EncoderSettings(codec: .png), protecting: [one]) }?.code == .overwritesInput)
        #expect(try VideoReader.probe(input).frameCount == 10)
        #expect(dir.contents() == ["frames", "hard.mp4", "input.mp4", "sym.mp4"])
        #expect(dir.contents("frames") == ["frame_000000.png", "frame_000001.png"])
    }

    /// A mono 16-bit PCM WAV file (an audio-only media file).
    static func wav(seconds: Double) -> Data {
        let rate = 8000, n = Int(Double(rate) * seconds)
        var d = Data()
        func u32(_ v: Int) { withUnsafeBytes(of: UInt32(v).littleEndian) { d.append(contentsOf: $0) } }
        func u16(_ v: Int) { withUnsafeBytes(of: UInt16(v).littleEndian) { d.append(contentsOf: $0) } }
        d.append(contentsOf: Array("RIFF".utf8)); u32(36 + 2 * n); d.append(contentsOf: Array("WAVEfmt ".utf8))
        u32(16); u16(1); u16(1); u32(rate); u32(2 * rate); u16(2); u16(16)
        d.append(contentsOf: Array("data".utf8)); u32(2 * n)
        for i in 0..<n { u16(Int(UInt16(bitPattern: Int16(8000 * sin(Double(i) * 0.3))))) }
        return d
    }
}
