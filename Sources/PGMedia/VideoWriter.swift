internal import CFFmpeg
import Foundation
import PGTensor

/// Writes frames to an MP4/MOV/MKV file (H.264 or MPEG-4) or a folder of PNG files.
///
/// Everything goes to a hidden temporary name beside the destination; `finish()` renames it into
/// place, and a writer dropped or `cancel()`led before that removes it. Creating a writer checks
/// the destination (not an input being read, parent folders creatable, file vs. folder) before any
/// frame is produced, so a bad path fails before expensive upstream work.
public final class VideoWriter {
    public let url: URL
    public let settings: EncoderSettings
    /// The codec actually used: `.mpeg4` when `.h264` was asked for and libx264 is missing.
    public let codec: VideoCodec
    public private(set) var framesWritten = 0
    /// Size of the first frame; every later frame must match it.
    public private(set) var frameSize: ImageSize?

    private let staged: StagedOutput
    private var encoder: FFmpegEncoder?
    private var finished = false

    /// Video containers pgflow writes, by extension.
    public static let videoExtensions = ["mp4", "m4v", "mov", "mkv"]

    /// - Parameters:
    ///   - inputs: files or folders being read; the writer refuses to overwrite them.
    ///   - hasEncoder: whether FFmpeg has an encoder of that name (replaceable to test the fallback).
    public init(_ url: URL, settings: EncoderSettings, protecting inputs: [URL] = [],
                hasEncoder: (String) -> Bool = VideoWriter.hasEncoder) throws {
        let dest = url.standardizedFileURL
        let path = dest.path
        self.url = dest
        self.settings = settings
        let ext = dest.pathExtension.lowercased()
        switch settings.codec {
        case .png:
            guard settings.bits == 8 || settings.bits == 16 else {
                throw MediaError.badOutput(.invalidSetting, path, "PNG frames have 8 or 16 bits per sample, not \(settings.bits)")
            }
            if Self.videoExtensions.contains(ext) || ext == "png" {
                throw MediaError.badOutput(.invalidSetting, path,
                                           "codec png writes a folder of PNG frames, so the path should name a folder, not a .\(ext) file")
            }
            codec = .png
        case .h264, .mpeg4:
            guard Self.videoExtensions.contains(ext) else {
                throw MediaError.badOutput(.invalidSetting, path,
                                           "codec \(settings.codec.rawValue) writes .mp4, .m4v, .mov or .mkv files"
                                           + (ext.isEmpty ? ", and the path has no extension" : ", not .\(ext)")
                                           + "; for a folder of PNG frames use codec png")
            }
            guard settings.fps.isFinite && settings.fps > 0 else {
                throw MediaError.badOutput(.invalidSetting, path, "a frame rate of \(settings.fps) fps is not positive")
            }
            guard EncoderSettings.presets.contains(settings.preset) else {
                throw MediaError.badOutput(.invalidSetting, path,
                                           "x264 has no preset '\(settings.preset)' (use one of \(EncoderSettings.presets.joined(separator: ", ")))")
            }
            var chosen = settings.codec
            if chosen == .h264 && !hasEncoder("libx264") { chosen = .mpeg4 }
            if chosen == .mpeg4 {
                guard hasEncoder("mpeg4") else {
                    throw MediaError.badOutput(.codecUnavailable, path, "this FFmpeg build has neither libx264 nor the mpeg4 encoder")
                }
                guard settings.chroma == .yuv420p else {
                    throw MediaError.badOutput(.invalidSetting, path,
                                               (settings.codec == .h264 ? "libx264 is not available and its fallback, " : "")
                                               + "MPEG-4 Part 2 stores only yuv420p, not \(settings.chroma.rawValue)")
                }
            }
            codec = chosen
        }
        staged = try StagedOutput(destination: dest, folder: codec == .png, protecting: inputs)
    }

    deinit { cancel() }

    public static func hasEncoder(_ name: String) -> Bool { avcodec_find_encoder_by_name(name) != nil }

    /// Appends one frame `[C, H, W]` with values in 0…1 (clamped): C = 1 gray, 3 RGB or 4 RGBA
    /// (video drops alpha; 16-bit and 8-bit PNG keep it; C = 2 gray + alpha only for PNG).
    public func append(_ image: Tensor) throws {
        precondition(!finished, "VideoWriter.append after finish/cancel")
        let path = url.path
        let index = framesWritten
        guard image.rank == 3 else {
            throw MediaError.badOutput(.unsupportedPixelFormat, path,
                                       "frame \(index) has shape \(image.shape); frames are images of shape [C, H, W]")
        }
        let (c, h, w) = (image.shape[0], image.shape[1], image.shape[2])
        let allowed = codec == .png ? [1, 2, 3, 4] : [1, 3, 4]
        guard allowed.contains(c) else {
            throw MediaError.badOutput(.unsupportedPixelFormat, path,
                                       "frame \(index) has \(c) channels; \(codec == .png ? "PNG" : "video") frames have "
                                       + (codec == .png ? "1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA)" : "1 (gray), 3 (RGB) or 4 (RGBA)"))
        }
        guard w > 0 && h > 0 else {
            throw MediaError.badOutput(.badSize, path, "frame \(index) is \(w)×\(h) pixels and has nothing to encode")
        }
        let size = ImageSize(width: w, height: h)
        if let first = frameSize {
            guard size == first else {
                throw MediaError.badOutput(.badSize, path, "frame \(index) is \(size) pixels but the first frame was \(first); "
                                           + "a video keeps one size")
            }
        } else {
            if codec != .png && settings.chroma == .yuv420p && (w % 2 != 0 || h % 2 != 0) {
                throw MediaError.badOutput(.badSize, path,
                                           "frames of \(size) pixels cannot be stored as yuv420p, which needs an even width "
                                           + "and height; use pixel_format yuv444p, codec png, or an even size")
            }
            frameSize = size
        }
        switch codec {
        case .png:
            let name = String(format: "frame_%06d.png", index)
            try PNGImage.write(image, to: staged.staging.appendingPathComponent(name), bits: settings.bits)
        case .h264, .mpeg4:
            if encoder == nil {
                encoder = try FFmpegEncoder(filePath: staged.staging.path, displayPath: path, size: size,
                                            encoderName: codec == .h264 ? "libx264" : "mpeg4", settings: settings)
            }
            try encoder!.encode(image)
        }
        framesWritten += 1
    }

    /// Completes the file and moves it into place. Throws, leaving nothing behind, when no frame
    /// was written or when `cancelled` turns true while the encoder drains.
    public func finish(cancelled: () -> Bool = { false }) throws {
        precondition(!finished, "VideoWriter.finish called twice")
        guard framesWritten > 0 else {
            cancel()
            throw MediaError.badOutput(.noFrames, url.path, "no frames were given to write")
        }
        do {
            try encoder?.finish(cancelled: cancelled)
            encoder = nil
            try staged.commit()
            finished = true
        } catch {
            cancel()
            throw error
        }
    }

    /// Abandons the output: the temporary file or folder is removed and the destination untouched.
    public func cancel() {
        guard !finished else { return }
        finished = true
        encoder = nil
        staged.discard()
    }
}
