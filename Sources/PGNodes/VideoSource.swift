import Foundation
import PGFlow
import PGMedia
import PGTensor

/// Decodes a video file or a folder of PNG frames into the per-frame `frames` and `mask` images,
/// plus a static `meta` record. See `Nodes/VideoSource.json` for the user-facing description.
///
/// Output frame t is source frame `start + t·step`. The engine caches per-frame results keyed by
/// the file's content, so this node never caches: `produce` opens the file once per call and
/// decodes forward, skipping (but still decoding) the frames it was not asked for.
public struct VideoSource: FrameSource {
    public static let type = "VideoSource"
    /// 2: frames are turned upright by the file's display matrix.
    public static let version = 2

    let url: URL
    let size: ImageSize?
    let fit: FitMode
    let start: Int
    /// 0 means "to the end".
    let count: Int
    let step: Int
    let matte: URL?
    /// Apply the file's display matrix (as players do) rather than keep the stored orientation.
    let upright: Bool

    public init(params: Params) throws {
        url = try params.url("path")
        if params.has("size") {
            let wh = try params.ints("size")
            guard wh.count == 2, wh[0] > 0, wh[1] > 0 else {
                throw OperatorError("param 'size' should be [width, height] with both at least 1, got \(params["size"]!.text)")
            }
            size = ImageSize(width: wh[0], height: wh[1])
        } else {
            size = nil
        }
        let fitName = try params.string("fit")
        guard let fit = FitMode(rawValue: fitName) else {
            throw OperatorError("param 'fit' should be one of \(FitMode.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(fitName)\"")
        }
        self.fit = fit
        start = try params.int("start")
        count = try params.int("count")
        step = try params.int("step")
        guard start >= 0 else { throw OperatorError("param 'start' should be 0 or more, got \(start)") }
        guard count >= 0 else { throw OperatorError("param 'count' should be 0 (all) or more, got \(count)") }
        guard step >= 1 else { throw OperatorError("param 'step' should be 1 or more, got \(step)") }
        matte = params.has("matte") ? try params.url("matte") : nil
        upright = try params.string("orientation") == "display"
    }

    // MARK: frame range

    /// Source frame index of output frame t.
    func sourceIndex(_ t: Int) -> Int { start + t * step }

    /// How many frames the range yields from a source of `available` frames; throws when it
    /// reaches past the end.
    func yieldCount(available: Int, path: String) throws -> Int {
        guard start < available else {
            throw MediaError(.rangePastEnd, path: path,
                             "Cannot read '\(path)' from frame \(start) (param 'start'): it has only \(available) frame"
                             + "\(available == 1 ? "" : "s") (0…\(available - 1))")
        }
        if count == 0 { return (available - start + step - 1) / step }
        let last = sourceIndex(count - 1)
        guard last < available else {
            throw MediaError(.rangePastEnd, path: path,
                             "Cannot read \(count) frames of '\(path)' from frame \(start) every \(step): that reaches frame "
                             + "\(last), but it has only \(available) frames (0…\(available - 1)); lower 'count' or set it to 0 for all")
        }
        return count
    }

    /// Checks the matte covers every source frame read.
    func checkMatte(_ info: VideoInfo, frames: Int) throws {
        let needed = sourceIndex(frames - 1) + 1
        guard info.frameCount >= needed else {
            throw MediaError(.rangePastEnd, path: info.path,
                             "Cannot use '\(info.path)' as the matte: it has \(info.frameCount) frames but frames up to "
                             + "\(needed - 1) of '\(url.path)' are read")
        }
    }

    // MARK: Operator

    public func frameCount(_ inputs: Inputs, context: RunContext) throws -> Int {
        let info = try VideoReader.probe(url)
        let n = try yieldCount(available: info.frameCount, path: info.path)
        if let matte { try checkMatte(try VideoReader.probe(matte), frames: n) }
        return n
    }

    /// `frame == nil`: the static `meta` record. `frame == t`: `frames` and `mask` for output frame t
    /// (one file open per call; `produce` is the efficient way to read many).
    public func evaluate(_ inputs: Inputs, frame: Int?, context: RunContext) throws -> [String: Value] {
        guard let t = frame else { return ["meta": try meta()] }
        var out: [String: Value] = [:]
        try produce(frames: [t], inputs: inputs, context: context) { _, values in out = values }
        return out
    }

    public func produce(frames: [Int], inputs: Inputs, context: RunContext,
                        emit: (Int, [String: Value]) throws -> Void) throws {
        guard !frames.isEmpty else { return }
        let reader = try VideoReader(url, size: size, fit: fit, threads: context.threads, upright: upright)
        let n = try yieldCount(available: reader.info.frameCount, path: reader.info.path)
        let matteReader = try matte.map { try VideoReader($0, size: reader.outputSize, fit: fit, threads: context.threads, upright: upright) }
        if let matteReader { try checkMatte(matteReader.info, frames: n) }
        var previous = -1
        for (done, t) in frames.enumerated() {
            try context.checkCancelled()
            guard t > previous else {
                throw OperatorError("VideoSource.produce needs ascending frame indices, got \(t) after \(previous)")
            }
            previous = t
            guard t >= 0 && t < n else {
                throw MediaError(.rangePastEnd, path: reader.info.path,
                                 "Cannot give frame \(t) of '\(reader.info.path)': the chosen range has \(n) frames (0…\(n - 1))")
            }
            let picture = try reader.frame(sourceIndex(t))
            let mask: Tensor
            if let matteReader {
                let m = try matteReader.frame(sourceIndex(t))
                mask = matteReader.info.hasAlpha ? m.alpha : Self.luma(m.rgb)
            } else {
                mask = picture.alpha
            }
            try emit(t, ["frames": .tensor(picture.rgb), "mask": .tensor(mask)])
            context.progress(done + 1, of: frames.count)
        }
    }

    /// The static description of what this node yields.
    func meta() throws -> Value {
        let info = try VideoReader.probe(url)
        let n = try yieldCount(available: info.frameCount, path: info.path)
        let turn = upright ? info.orientation : .upright
        let out = size ?? (upright ? info.displaySize : info.size)
        let fps = info.fps / Double(step)
        var record: [String: Value] = [
            "path": .string(info.path),
            "fps": .number(fps),
            "frame_count": .number(Double(n)),
            "width": .number(Double(out.width)),
            "height": .number(Double(out.height)),
            "duration": .number(Double(n) / fps),
            "source_fps": .number(info.fps),
            "source_frame_count": .number(Double(info.frameCount)),
            "source_width": .number(Double(info.width)),
            "source_height": .number(Double(info.height)),
            "start": .number(Double(start)),
            "step": .number(Double(step)),
            "codec": .string(info.codec),
            "has_alpha": .number(info.hasAlpha ? 1 : 0),
            // What was applied, and what the file asks for (they differ with orientation "stored").
            "rotation": .number(Double(turn.degrees)),
            "mirrored": .number(turn.isMirror ? 1 : 0),
            "display_rotation": .number(Double(info.orientation.degrees)),
        ]
        if let matte { record["matte"] = .string(matte.path) }
        return .record(record)
    }

    /// A matte without alpha is read as its brightness (BT.601 weights; gray mattes pass through).
    static func luma(_ rgb: Tensor) -> Tensor {
        let (h, w) = (rgb.shape[1], rgb.shape[2])
        let n = h * w
        var out = Tensor(zeros: [1, h, w])
        rgb.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for i in 0..<n { dst[i] = 0.299 * src[i] + 0.587 * src[n + i] + 0.114 * src[2 * n + i] }
            }
        }
        return out
    }
}
