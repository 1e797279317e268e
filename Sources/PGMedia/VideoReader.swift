import Foundation
import PGTensor

/// One decoded frame as pgflow images.
public struct VideoFrame: Sendable, Equatable {
    /// Index of the frame in the file (0 = first).
    public var index: Int
    /// `[3, H, W]` RGB in 0…1.
    public var rgb: Tensor
    /// `[1, H, W]`: the source's alpha where it has one; otherwise 1 on the picture and 0 on pad bars.
    public var alpha: Tensor
    /// Presentation time in seconds from the first frame: the stream's timestamp where it has one,
    /// else `index / fps` (always so for PNG folders).
    public var time: Double
}

/// Reads a video file (MP4, MOV, MKV, WebM, … with any codec this FFmpeg decodes) or a folder of
/// PNG files frame by frame, in order, at an optional output size.
///
/// Frames come out sequentially: `next()` decodes and converts, `skip()` advances without the
/// colour conversion (a video still has to decode skipped frames, because later ones refer to
/// them). A reader holds C resources and is used by one thread at a time.
public final class VideoReader {
    public let info: VideoInfo
    /// Size of every frame this reader returns.
    public let outputSize: ImageSize
    public let fit: FitMode
    /// What is applied to every frame: the file's display orientation, or `.upright` when the
    /// stored orientation was asked for.
    public let orientation: Orientation
    /// Index of the frame `next()` returns.
    public private(set) var position = 0

    private enum Backend {
        case video(FFmpegDecoder)
        case images(PNGSequence)
    }
    private let backend: Backend
    private let converter: FrameConverter

    /// - Parameters:
    ///   - size: output size; nil keeps the stored size.
    ///   - fit: how the picture is brought to `size` (see `FitMode`).
    ///   - threads: decoder threads.
    ///   - upright: turn frames as the file's display matrix says (as players do); false keeps the
    ///     stored orientation. Size and fit apply to the turned picture.
    public init(_ url: URL, size: ImageSize? = nil, fit: FitMode = .crop, threads: Int = 2, upright: Bool = true) throws {
        let path = url.standardizedFileURL.path
        if let size, size.width <= 0 || size.height <= 0 {
            throw MediaError(.badSize, path: path,
                             "Cannot read '\(path)' at \(size.width)×\(size.height) pixels: an output size needs a positive width and height")
        }
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isFolder) else { throw MediaError.notFound(path) }
        if isFolder.boolValue {
            let seq = try PNGSequence(folder: URL(fileURLWithPath: path))
            backend = .images(seq)
            info = seq.info
        } else if path.lowercased().hasSuffix(".png") {
            let seq = try PNGSequence(file: URL(fileURLWithPath: path))
            backend = .images(seq)
            info = seq.info
        } else {
            let decoder = try FFmpegDecoder(path: path, threads: threads)
            backend = .video(decoder)
            info = decoder.info
        }
        orientation = upright ? info.orientation : .upright
        outputSize = size ?? (upright ? info.displaySize : info.size)
        self.fit = fit
        // Scaling and cropping happen in stored orientation at the turned-back size, then the
        // picture is turned: the same pixels as turning first, without a second resample.
        let storedOutput = orientation.swapsAxes ? ImageSize(width: outputSize.height, height: outputSize.width) : outputSize
        converter = FrameConverter(output: storedOutput, fit: fit, path: path)
    }

    /// Metadata only (opens the file, decodes nothing).
    public static func probe(_ url: URL) throws -> VideoInfo {
        try VideoReader(url).info
    }

    /// The next frame, or nil after the last one. A file that ends before the frame count its
    /// header promises throws a `.truncated` error instead of returning nil early.
    public func next() throws -> VideoFrame? {
        guard position < info.frameCount else { return nil }
        let index = position
        let converted: (rgb: Tensor, alpha: Tensor)
        var time = Double(index) / info.fps
        switch backend {
        case .video(let decoder):
            try decodeOrThrow(decoder)
            position += 1
            time = decoder.frameTime() ?? time
            converted = try converter.convert(decoder.frame!, pixelAspect: info.pixelAspect)
        case .images(let seq):
            // Each file stands alone: a bad one is consumed, so the caller may go on to the next.
            position += 1
            let f = try seq.packedFrame(index)
            converted = try converter.convert(packed: f.samples, channels: f.channels, width: f.width, height: f.height)
        }
        return VideoFrame(index: index, rgb: orientation.apply(converted.rgb), alpha: orientation.apply(converted.alpha), time: time)
    }

    /// Advances past one frame without converting it; false after the last frame.
    @discardableResult
    public func skip() throws -> Bool {
        guard position < info.frameCount else { return false }
        if case .video(let decoder) = backend { try decodeOrThrow(decoder) }
        position += 1
        return true
    }

    /// Frame `index`, skipping the ones before it. Reading is forward only: `index >= position`.
    public func frame(_ index: Int) throws -> VideoFrame {
        precondition(index >= position, "VideoReader reads forward only: frame \(index) is before position \(position)")
        guard index < info.frameCount else {
            throw MediaError.rangePastEnd(info.path, frame: index, available: info.frameCount)
        }
        while position < index { try skip() }
        return try next()!
    }

    private func decodeOrThrow(_ decoder: FFmpegDecoder) throws {
        guard try decoder.decodeNext() else {
            throw MediaError.truncated(info.path, decoded: position, expected: info.frameCount, cause: decoder.readFailure)
        }
    }
}
