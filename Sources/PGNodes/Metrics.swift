import Foundation
import PGFlow
import PGKernels
import PGTensor

/// Image-quality metrics over a frame sequence, written as a JSON report (see `Nodes/Metrics.json`).
/// No gradients: this is what a run reports, never what it trains on.
public struct Metrics: FrameSink {
    public static let type = "Metrics"
    public static let version = 2

    let url: URL
    let frames: String
    let label: String?

    public init(params: Params) throws {
        url = try params.url("path")
        frames = try params.string("frames")
        guard TrainingSettings.frameRange(.string(frames), count: 100) != nil else {
            throw OperatorError("param 'frames' should be \"all\" or \"A:B\" with indices or percentages (\"60%:\"), got \"\(frames)\"")
        }
        label = params.has("label") ? try params.string("label") : nil
    }

    /// Running sums of one sequence's per-frame metrics.
    struct Accumulator {
        var psnr = 0.0, ssim = 0.0, l1 = 0.0, mse = 0.0, count = 0
        var flicker: TemporalFlicker
        var referenceFlicker: TemporalFlicker
        var perFrame: [[String: Any]] = []
        var landmarkError = 0.0, landmarkFrames = 0, landmarkMissed = 0
        var blendshapeL2 = 0.0, blendshapeFrames = 0
        /// The per-frame 2D edit the result is compared with (input per_frame).
        var perFrameFlicker: TemporalFlicker?
        var colourToPerFrame = 0.0, colourToReference = 0.0
    }

    public func consume(_ stream: FrameStream, inputs: Inputs, context: RunContext) throws -> [String: Value] {
        // The metric kernels split their work by the run's --threads (KernelThreads).
        try KernelThreads.$budget.withValue(context.threads) { try measure(stream, inputs: inputs, context: context) }
    }

    func measure(_ stream: FrameStream, inputs: Inputs, context: RunContext) throws -> [String: Value] {
        let range = TrainingSettings.frameRange(.string(frames), count: stream.count) ?? 0..<0
        var acc: Accumulator?
        var seen = 0
        while let (t, f) = try stream.next() {
            try context.checkCancelled()
            seen += 1
            context.progress(seen, of: stream.count)
            guard range.contains(t) else { continue }
            let image = try Self.image(f, "image")
            let reference = try f["reference"].map { _ in try Self.image(f, "reference") }
            let mask = try f["mask"].map { _ in try Self.image(f, "mask") }
            if let reference, reference.shape != image.shape {
                throw OperatorError("frame \(t): input 'image' is \(image.shape) but 'reference' is \(reference.shape)")
            }
            if let mask, !(mask.shape == image.shape || mask.shape == [1] + image.shape.dropFirst()) {
                throw OperatorError("frame \(t): input 'mask' should be [1, H, W] or the image's shape \(image.shape), got \(mask.shape)")
            }
            if acc == nil { acc = Accumulator(flicker: TemporalFlicker(mask: mask), referenceFlicker: TemporalFlicker(mask: mask)) }
            acc!.flicker.add(image)
            var row: [String: Any] = ["frame": t]
            if f["per_frame"] != nil {
                let baseline = try Self.image(f, "per_frame")
                guard baseline.shape == image.shape else {
                    throw OperatorError("frame \(t): input 'image' is \(image.shape) but 'per_frame' is \(baseline.shape)")
                }
                if acc!.perFrameFlicker == nil { acc!.perFrameFlicker = TemporalFlicker(mask: mask) }
                acc!.perFrameFlicker!.add(baseline)
                let toBaseline = PGKernels.Metrics.colourDistance(image, baseline, mask: mask)
                acc!.colourToPerFrame += toBaseline
                row["colour_distance_to_per_frame"] = toBaseline
                if let reference {
                    let toReference = PGKernels.Metrics.colourDistance(image, reference, mask: mask)
                    acc!.colourToReference += toReference
                    row["colour_distance_to_reference"] = toReference
                }
            }
            if let reference {
                acc!.referenceFlicker.add(reference)
                let p = PGKernels.Metrics.psnr(image, reference, mask: mask)
                let s = PGKernels.Metrics.ssim(image, reference, mask: mask)
                let l1 = PGKernels.Metrics.l1(image, reference, mask: mask)
                let mse = PGKernels.Metrics.mse(image, reference, mask: mask)
                acc!.psnr += p; acc!.ssim += s; acc!.l1 += l1; acc!.mse += mse
                row["psnr"] = Self.json(p); row["ssim"] = s; row["l1"] = l1
            }
            if f["points"] != nil || f["reference_points"] != nil {
                if let e = try Self.landmarkError(f) {
                    acc!.landmarkError += e; acc!.landmarkFrames += 1; row["landmark_error_px"] = e
                } else {
                    acc!.landmarkMissed += 1
                }
            }
            if let e = try Self.blendshapeDistance(f) {
                acc!.blendshapeL2 += e; acc!.blendshapeFrames += 1; row["blendshape_l2"] = e
            }
            acc!.count += 1
            acc!.perFrame.append(row)
        }
        guard let acc, acc.count > 0 else {
            throw OperatorError("no frames to measure: frames \"\(frames)\" of \(stream.count) selects none")
        }
        let n = Double(acc.count)
        var summary: [String: Any] = ["frames": acc.count, "first_frame": range.lowerBound, "flicker": acc.flicker.value]
        var numbers: [String: Value] = ["frames": .number(n), "flicker": .number(acc.flicker.value)]
        if acc.perFrame.first?["psnr"] != nil {
            let psnrOfMeanMSE = acc.mse > 0 ? 10 * log10(n / acc.mse) : Double.infinity
            let values: [String: Double] = ["psnr": acc.psnr / n, "ssim": acc.ssim / n, "l1": acc.l1 / n,
                                            "psnr_of_mean_mse": psnrOfMeanMSE,
                                            "reference_flicker": acc.referenceFlicker.value,
                                            "relative_flicker": PGKernels.Metrics.relativeFlicker(acc.flicker.value, source: acc.referenceFlicker.value)]
            for (k, v) in values { summary[k] = Self.json(v); numbers[k] = .number(v) }
        }
        if acc.landmarkFrames > 0 || acc.landmarkMissed > 0 {
            let e = acc.landmarkFrames > 0 ? acc.landmarkError / Double(acc.landmarkFrames) : Double.nan
            summary["landmark_error_px"] = acc.landmarkFrames > 0 ? e : NSNull()
            summary["landmark_frames"] = acc.landmarkFrames
            summary["landmark_missed"] = acc.landmarkMissed
            if acc.landmarkFrames > 0 { numbers["landmark_error_px"] = .number(e) }
            numbers["landmark_missed"] = .number(Double(acc.landmarkMissed))
        }
        if let pf = acc.perFrameFlicker {
            var values: [String: Double] = ["per_frame_flicker": pf.value,
                                            "flicker_vs_per_frame": pf.value > 0 ? acc.flicker.value / pf.value : Double.infinity,
                                            "colour_distance_to_per_frame": acc.colourToPerFrame / n]
            if acc.perFrame.first?["psnr"] != nil { values["colour_distance_to_reference"] = acc.colourToReference / n }
            for (k, v) in values { summary[k] = Self.json(v); numbers[k] = .number(v) }
        }
        if acc.blendshapeFrames > 0 {
            let e = acc.blendshapeL2 / Double(acc.blendshapeFrames)
            summary["blendshape_l2"] = e
            numbers["blendshape_l2"] = .number(e)
        }
        var report: [String: Any] = ["summary": summary, "per_frame": acc.perFrame, "frames_spec": frames,
                                     "masked": inputs["mask"] != nil || acc.flicker.mask != nil]
        if let label { report["label"] = label }
        let data = try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys])
        return ["report": try AtomicFile.write(data, to: url),
                "metrics": .record(numbers)]
    }

    /// Mean distance in pixels between corresponding points of `points` and `reference_points`
    /// ([L, 2], or [L, 3] with a confidence column as FaceLandmarks gives); nil when either
    /// side found no face (no rows, or confidence 0).
    static func landmarkError(_ f: Inputs) throws -> Double? {
        guard let a = f["points"]?.tensor, let b = f["reference_points"]?.tensor else {
            throw OperatorError("inputs 'points' and 'reference_points' go together: connect both (e.g. FaceLandmarks.points of the result and of the source)")
        }
        for (name, t) in [("points", a), ("reference_points", b)] where t.rank != 2 || !(2...3).contains(t.shape[1]) {
            throw OperatorError("input '\(name)' should be [L, 2] or [L, 3] pixel positions, got \(t.shape)")
        }
        if a.shape[0] == 0 || b.shape[0] == 0 { return nil }
        guard a.shape[0] == b.shape[0] else {
            throw OperatorError("input 'points' has \(a.shape[0]) points but 'reference_points' \(b.shape[0])")
        }
        let ca = a.shape[1], cb = b.shape[1]
        if ca == 3, a.scalars[2] <= 0 { return nil }
        if cb == 3, b.scalars[2] <= 0 { return nil }
        var sum = 0.0
        for k in 0..<a.shape[0] {
            let dx = Double(a.scalars[ca * k] - b.scalars[cb * k]), dy = Double(a.scalars[ca * k + 1] - b.scalars[cb * k + 1])
            sum += (dx * dx + dy * dy).squareRoot()
        }
        return sum / Double(a.shape[0])
    }

    /// ‖blendshapes − reference_blendshapes‖₂ (e.g. MediaPipe's 52 scores), nil when not connected
    /// or when either is all zeros (no face).
    static func blendshapeDistance(_ f: Inputs) throws -> Double? {
        guard f["blendshapes"] != nil || f["reference_blendshapes"] != nil else { return nil }
        let a = try f.tensor("blendshapes"), b = try f.tensor("reference_blendshapes")
        guard a.count == b.count else {
            throw OperatorError("input 'blendshapes' has \(a.count) values but 'reference_blendshapes' \(b.count)")
        }
        if a.scalars.allSatisfy({ $0 == 0 }) || b.scalars.allSatisfy({ $0 == 0 }) { return nil }
        return zip(a.scalars, b.scalars).map { Double($0 - $1) * Double($0 - $1) }.reduce(0, +).squareRoot()
    }

    static func image(_ inputs: Inputs, _ port: String) throws -> Tensor {
        let t = try inputs.tensor(port)
        guard t.rank == 3 else { throw OperatorError("input '\(port)' should be an image [C, H, W], got \(t.shape)") }
        return t
    }

    /// JSON has no infinity: identical images report PSNR as the string "inf".
    static func json(_ d: Double) -> Any { d.isFinite ? d : (d > 0 ? "inf" : "-inf") }
}
