import Foundation
import PGFlow
import PGKernels
import PGTensor

/// Image-quality metrics over a frame sequence, written as a JSON report (see `Nodes/Metrics.json`).
/// No gradients: this is what a run reports, never what it trains on.
public struct Metrics: FrameSink {
    public static let type = "Metrics"
    public static let version = 1

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
    }

    public func consume(_ stream: FrameStream, inputs: Inputs, context: RunContext) throws -> [String: Value] {
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
            if let reference {
                acc!.referenceFlicker.add(reference)
                let p = PGKernels.Metrics.psnr(image, reference, mask: mask)
                let s = PGKernels.Metrics.ssim(image, reference, mask: mask)
                let l1 = PGKernels.Metrics.l1(image, reference, mask: mask)
                let mse = PGKernels.Metrics.mse(image, reference, mask: mask)
                acc!.psnr += p; acc!.ssim += s; acc!.l1 += l1; acc!.mse += mse
                row["psnr"] = Self.json(p); row["ssim"] = s; row["l1"] = l1
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
        var report: [String: Any] = ["summary": summary, "per_frame": acc.perFrame, "frames_spec": frames,
                                     "masked": inputs["mask"] != nil || acc.flicker.mask != nil]
        if let label { report["label"] = label }
        let data = try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys])
        return ["report": try AtomicFile.write(data, to: url),
                "metrics": .record(numbers)]
    }

    static func image(_ inputs: Inputs, _ port: String) throws -> Tensor {
        let t = try inputs.tensor(port)
        guard t.rank == 3 else { throw OperatorError("input '\(port)' should be an image [C, H, W], got \(t.shape)") }
        return t
    }

    /// JSON has no infinity: identical images report PSNR as the string "inf".
    static func json(_ d: Double) -> Any { d.isFinite ? d : (d > 0 ? "inf" : "-inf") }
}
