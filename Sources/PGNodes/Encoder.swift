import Foundation
import PGFlow
import PGMedia
import PGTensor

/// Writes the frames it receives to an H.264/MPEG-4 video or a folder of PNGs, and outputs a
/// `File` record with the result's path and SHA-256. See `Nodes/Encoder.json`.
public struct Encoder: FrameSink {
    public static let type = "Encoder"
    public static let version = 1

    let url: URL
    let settings: EncoderSettings
    /// Set when the graph gives `fps`; otherwise it comes from `meta`, else 25.
    let fps: Double?

    public init(params: Params) throws {
        url = try params.url("path")
        let codecName = try params.string("codec")
        guard let codec = VideoCodec(rawValue: codecName) else {
            throw OperatorError("param 'codec' should be one of \(VideoCodec.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(codecName)\"")
        }
        let chromaName = try params.string("pixel_format")
        guard let chroma = ChromaFormat(rawValue: chromaName) else {
            throw OperatorError("param 'pixel_format' should be one of \(ChromaFormat.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(chromaName)\"")
        }
        let crf = try params.int("crf")
        guard (0...51).contains(crf) else { throw OperatorError("param 'crf' should be 0…51, got \(crf)") }
        let preset = try params.string("preset")
        guard EncoderSettings.presets.contains(preset) else {
            throw OperatorError("param 'preset' should be one of \(EncoderSettings.presets.joined(separator: ", ")), got \"\(preset)\"")
        }
        let bits = try params.int("bits")
        guard bits == 8 || bits == 16 else { throw OperatorError("param 'bits' should be 8 or 16, got \(bits)") }
        if params.has("fps") {
            let f = try params.double("fps")
            guard f.isFinite && f > 0 else { throw OperatorError("param 'fps' should be a positive number, got \(f)") }
            fps = f
        } else {
            fps = nil
        }
        settings = EncoderSettings(codec: codec, crf: crf, preset: preset, chroma: chroma, bits: bits)
    }

    public func consume(_ frames: FrameStream, inputs: Inputs, context: RunContext) throws -> [String: Value] {
        let meta = inputs["meta"]?.record
        var settings = self.settings
        settings.fps = fps ?? meta?["fps"]?.number ?? VideoInfo.defaultFPS
        settings.threads = context.threads
        // Writing over a file the run reads is refused when the graph is validated, from this run's
        // paths (Graph.writeConflicts); meta may come from the cache and name an earlier run's source.
        // Opening checks the destination before the first frame is pulled (and rendered upstream).
        let writer = try VideoWriter(url, settings: settings)
        if writer.codec != settings.codec {
            context.warn("this FFmpeg has no libx264 encoder; writing MPEG-4 Part 2 to \(url.path) instead of H.264")
        }
        do {
            while let (_, frameInputs) = try frames.next() {
                try context.checkCancelled()
                try writer.append(try frameInputs.tensor("frames"))
                context.progress(writer.framesWritten, of: frames.count)
            }
            try writer.finish(cancelled: { (try? context.checkCancelled()) == nil })
        } catch {
            writer.cancel()
            throw error
        }
        // Hashed the way the cache checks written outputs (a folder file by file), so an unchanged
        // PNG folder is recognised as unchanged on the next run.
        let digest: String
        do { digest = try FileDigest.contentDigest(of: writer.url) } catch { throw OperatorError("\(error)") }
        return ["file": .record(["path": .string(writer.url.path), "sha256": .string(digest)])]
    }
}
