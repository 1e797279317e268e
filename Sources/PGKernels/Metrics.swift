import Foundation
import PGTensor

/// Image-quality and temporal-stability metrics for reports (no gradients; Double accumulation).
///
/// Images are [C, H, W] in 0…1 as everywhere in pgflow. Every metric takes an optional mask, either
/// [1, H, W] (applied to every channel), [H, W], or the image's own shape; with a mask the metric is
/// the mask-weighted mean over pixels (soft masks weigh pixels), and a mask that selects nothing
/// gives NaN (there is nothing to measure).
public enum Metrics {
    /// Mean squared error.
    public static func mse(_ x: Tensor, _ reference: Tensor, mask: Tensor? = nil) -> Double {
        metricShapes("Metrics.mse", x, reference, mask)
        return weightedMean(x, reference, mask) { d in d * d }
    }

    /// Mean absolute error (the L1 of Eq. 10 as a report number).
    public static func l1(_ x: Tensor, _ reference: Tensor, mask: Tensor? = nil) -> Double {
        metricShapes("Metrics.l1", x, reference, mask)
        return weightedMean(x, reference, mask) { d in abs(d) }
    }

    /// Peak signal-to-noise ratio in dB, 10·log10(maxValue² / MSE): +∞ for identical images.
    public static func psnr(_ x: Tensor, _ reference: Tensor, mask: Tensor? = nil, maxValue: Double = 1) -> Double {
        precondition(maxValue > 0, "Metrics.psnr: maxValue must be positive")
        let e = mse(x, reference, mask: mask)
        if e.isNaN { return .nan }
        return e == 0 ? .infinity : 10 * log10(maxValue * maxValue / e)
    }

    /// Mean SSIM with the 3DGS window (`Kernels.ssim`); with a mask, the mask-weighted mean of the
    /// SSIM map (the window still sees the pixels around the mask's edge).
    public static func ssim(_ x: Tensor, _ reference: Tensor, mask: Tensor? = nil) -> Double {
        metricShapes("Metrics.ssim", x, reference, mask)
        precondition(x.rank == 3, "Metrics.ssim: images must be [C, H, W], got \(x.shape)")
        guard let mask else { return Double(Kernels.ssim(x, reference)) }
        let map = Kernels.ssimMap(x, reference)
        return weightedMean(map, Tensor(zeros: map.shape), mask) { $0 }
    }

    /// Temporal flicker of a sequence: the mean absolute difference between consecutive frames,
    /// averaged over the T − 1 pairs (0 for fewer than two frames). A stable render of a still
    /// head flickers ~0; per-frame independent edits flicker a lot.
    public static func temporalFlicker(_ frames: [Tensor], mask: Tensor? = nil) -> Double {
        var f = TemporalFlicker(mask: mask)
        for frame in frames { f.add(frame) }
        return f.value
    }

    /// Flicker of `frames` relative to the flicker of the `source` they were made from: 1 means the
    /// edit added no temporal instability, 2 twice as much frame-to-frame change as the source.
    /// Both still (zero flicker): 1; a still source with a changing edit: +∞.
    public static func relativeFlicker(_ frames: [Tensor], source: [Tensor], mask: Tensor? = nil) -> Double {
        precondition(frames.count == source.count,
                     "Metrics.relativeFlicker: \(frames.count) frames against \(source.count) source frames")
        return relativeFlicker(temporalFlicker(frames, mask: mask), source: temporalFlicker(source, mask: mask))
    }

    public static func relativeFlicker(_ flicker: Double, source: Double) -> Double {
        if source == 0 { return flicker == 0 ? 1 : .infinity }
        return flicker / source
    }
}

/// Temporal flicker accumulated one frame at a time (for a sink that streams its frames).
extension Metrics {
    /// Per channel, the (mask-weighted) mean and standard deviation of the image: the colour
    /// statistics a style or colour edit moves, [mean₀, std₀, mean₁, std₁, …].
    public static func colourStatistics(_ x: Tensor, mask: Tensor?) -> [Double] {
        let c = x.shape[0], plane = x.count / c
        var out: [Double] = []
        for ch in 0..<c {
            var w = 0.0, s = 0.0, s2 = 0.0
            for i in 0..<plane {
                let m = mask.map { Double($0.scalars[$0.count == plane ? i : ch * plane + i]) } ?? 1
                let v = Double(x.scalars[ch * plane + i])
                w += m; s += m * v; s2 += m * v * v
            }
            let mean = w > 0 ? s / w : 0
            out += [mean, (max(0, (w > 0 ? s2 / w : 0) - mean * mean)).squareRoot()]
        }
        return out
    }

    /// ‖colourStatistics(a) − colourStatistics(b)‖₂.
    public static func colourDistance(_ a: Tensor, _ b: Tensor, mask: Tensor?) -> Double {
        zip(colourStatistics(a, mask: mask), colourStatistics(b, mask: mask)).map { ($0 - $1) * ($0 - $1) }.reduce(0, +).squareRoot()
    }
}

public struct TemporalFlicker: Sendable {
    public let mask: Tensor?
    private var previous: Tensor?
    private var sum = 0.0
    /// Consecutive pairs seen so far.
    public private(set) var pairs = 0

    public init(mask: Tensor? = nil) { self.mask = mask }

    public mutating func add(_ frame: Tensor) {
        if let previous {
            metricShapes("TemporalFlicker", frame, previous, mask)
            sum += weightedMean(frame, previous, mask) { abs($0) }
            pairs += 1
        }
        previous = frame
    }

    /// Mean over pairs of the mean |f(t+1) − f(t)|; 0 before the second frame.
    public var value: Double { pairs == 0 ? 0 : sum / Double(pairs) }
}

// MARK: - Helpers

func metricShapes(_ name: String, _ x: Tensor, _ reference: Tensor, _ mask: Tensor?) {
    precondition(x.shape == reference.shape, "\(name): shapes \(x.shape) and \(reference.shape) differ")
    if let mask { maskShape(name, x, mask) }
}

/// Σ m·f(x − r) / Σ m over all elements (m broadcast over channels), or the plain mean.
func weightedMean(_ x: Tensor, _ r: Tensor, _ mask: Tensor?, _ f: (Double) -> Double) -> Double {
    x.withUnsafeBufferPointer { xb in
        r.withUnsafeBufferPointer { rb in
            guard let mask else {
                guard xb.count > 0 else { return .nan }
                return lossSum(xb.count) { f(Double(xb[$0]) - Double(rb[$0])) } / Double(xb.count)
            }
            return mask.withUnsafeBufferPointer { mb in
                let weight = maskWeight(mb, total: xb.count)
                guard weight > 0 else { return .nan }
                let m = mb.count
                return lossSum(xb.count) { i in Double(mb[i % m]) * f(Double(xb[i]) - Double(rb[i])) } / weight
            }
        }
    }
}
