import PGTensor

// Loss terms of PortraitGen §3.2.3 (Eq. 10–13) and their VJPs. Each loss is a mean (or sum) over
// all elements, accumulated in Double; each VJP writes ∂L/∂prediction · vLoss and, where the
// target can carry gradients too (I_F[:3] in Eq. 12 is trained, so is an edited target's source),
// ∂L/∂target. Cotangent buffers are overwritten. At |p − t| = 0 the L1 subgradient is 0.

extension Kernels {
    /// Eq. 10–12: L = mean |p − t|.
    public static func l1Loss(
        _ p: UnsafeBufferPointer<Float>,                        // [N]
        _ t: UnsafeBufferPointer<Float>                         // [N]
    ) -> Float {
        lossCheck("l1Loss", p, t)
        let sum = lossSum(p.count) { i in Double(abs(p[i] - t[i])) }
        return Float(sum / Double(max(p.count, 1)))
    }

    public static func l1LossVJP(
        _ p: UnsafeBufferPointer<Float>,                        // [N]
        _ t: UnsafeBufferPointer<Float>,                        // [N]
        vLoss: Float,
        vPrediction: UnsafeMutableBufferPointer<Float>,         // [N]
        vTarget: UnsafeMutableBufferPointer<Float>?             // [N]
    ) {
        lossCheck("l1LossVJP", p, t, vPrediction, vTarget)
        let g = vLoss / Float(max(p.count, 1))
        lossMap(p.count) { i in
            let d = p[i] - t[i]
            let v = d > 0 ? g : (d < 0 ? -g : 0)
            vPrediction[i] = v
            vTarget?[i] = -v
        }
    }

    /// L = Σ m·|p − t| / Σ m: L1 over the pixels a mask selects, as a weighted mean so its scale
    /// does not depend on how much of the frame the mask covers. `mask` has N or N/C values: a
    /// [1, H, W] mask of a [C, H, W] image applies to every channel (element i uses mask[i mod M]).
    /// An all-zero mask gives 0. The mask itself is treated as constant (no cotangent).
    public static func maskedL1Loss(
        _ p: UnsafeBufferPointer<Float>,                        // [C, H, W]
        _ t: UnsafeBufferPointer<Float>,                        // [C, H, W]
        mask m: UnsafeBufferPointer<Float>                      // [1, H, W] or [C, H, W]
    ) -> Float {
        lossCheck("maskedL1Loss", p, t)
        maskCheck("maskedL1Loss", p.count, m.count)
        let weight = maskWeight(m, total: p.count)
        guard weight > 0 else { return 0 }
        let sum = lossSum(p.count) { i in Double(m[i % m.count] * abs(p[i] - t[i])) }
        return Float(sum / weight)
    }

    public static func maskedL1LossVJP(
        _ p: UnsafeBufferPointer<Float>,                        // [C, H, W]
        _ t: UnsafeBufferPointer<Float>,                        // [C, H, W]
        mask m: UnsafeBufferPointer<Float>,                     // [1, H, W] or [C, H, W]
        vLoss: Float,
        vPrediction: UnsafeMutableBufferPointer<Float>,         // [C, H, W]
        vTarget: UnsafeMutableBufferPointer<Float>?             // [C, H, W]
    ) {
        lossCheck("maskedL1LossVJP", p, t, vPrediction, vTarget)
        maskCheck("maskedL1LossVJP", p.count, m.count)
        let weight = maskWeight(m, total: p.count)
        let g = weight > 0 ? Float(Double(vLoss) / weight) : 0
        lossMap(p.count) { i in
            let d = p[i] - t[i]
            let v = g * m[i % m.count] * (d > 0 ? 1 : (d < 0 ? -1 : 0))
            vPrediction[i] = v
            vTarget?[i] = -v
        }
    }

    /// L = mean (p − t)².
    public static func mseLoss(
        _ p: UnsafeBufferPointer<Float>,                        // [N]
        _ t: UnsafeBufferPointer<Float>                         // [N]
    ) -> Float {
        lossCheck("mseLoss", p, t)
        let sum = lossSum(p.count) { i in
            let d = Double(p[i] - t[i])
            return d * d
        }
        return Float(sum / Double(max(p.count, 1)))
    }

    public static func mseLossVJP(
        _ p: UnsafeBufferPointer<Float>,                        // [N]
        _ t: UnsafeBufferPointer<Float>,                        // [N]
        vLoss: Float,
        vPrediction: UnsafeMutableBufferPointer<Float>,         // [N]
        vTarget: UnsafeMutableBufferPointer<Float>?             // [N]
    ) {
        lossCheck("mseLossVJP", p, t, vPrediction, vTarget)
        let g = 2 * vLoss / Float(max(p.count, 1))
        lossMap(p.count) { i in
            let v = g * (p[i] - t[i])
            vPrediction[i] = v
            vTarget?[i] = -v
        }
    }

    /// L = mean h(p − t), h(d) = ½d² for |d| ≤ δ and δ(|d| − ½δ) beyond (PyTorch's HuberLoss):
    /// quadratic near the target, L1-like for outliers.
    public static func huberLoss(
        _ p: UnsafeBufferPointer<Float>,                        // [N]
        _ t: UnsafeBufferPointer<Float>,                        // [N]
        delta: Float
    ) -> Float {
        lossCheck("huberLoss", p, t)
        precondition(delta > 0, "huberLoss: delta must be positive, got \(delta)")
        let dl = Double(delta)
        let sum = lossSum(p.count) { i in
            let d = Double(abs(p[i] - t[i]))
            return d <= dl ? 0.5 * d * d : dl * (d - 0.5 * dl)
        }
        return Float(sum / Double(max(p.count, 1)))
    }

    public static func huberLossVJP(
        _ p: UnsafeBufferPointer<Float>,                        // [N]
        _ t: UnsafeBufferPointer<Float>,                        // [N]
        delta: Float,
        vLoss: Float,
        vPrediction: UnsafeMutableBufferPointer<Float>,         // [N]
        vTarget: UnsafeMutableBufferPointer<Float>?             // [N]
    ) {
        lossCheck("huberLossVJP", p, t, vPrediction, vTarget)
        precondition(delta > 0, "huberLossVJP: delta must be positive, got \(delta)")
        let g = vLoss / Float(max(p.count, 1))
        lossMap(p.count) { i in
            let d = p[i] - t[i]
            let v = g * min(max(d, -delta), delta)
            vPrediction[i] = v
            vTarget?[i] = -v
        }
    }

    /// L = Σ x·w: a weighted sum, e.g. a regulariser's per-element weights or a fixed linear probe.
    public static func weightedSum(
        _ x: UnsafeBufferPointer<Float>,                        // [N]
        weights w: UnsafeBufferPointer<Float>                   // [N]
    ) -> Float {
        lossCheck("weightedSum", x, w)
        return Float(lossSum(x.count) { i in Double(x[i]) * Double(w[i]) })
    }

    /// vX = vLoss·w, vW = vLoss·x.
    public static func weightedSumVJP(
        _ x: UnsafeBufferPointer<Float>,                        // [N]
        weights w: UnsafeBufferPointer<Float>,                  // [N]
        vLoss: Float,
        vInput: UnsafeMutableBufferPointer<Float>,              // [N]
        vWeights: UnsafeMutableBufferPointer<Float>?            // [N]
    ) {
        lossCheck("weightedSumVJP", x, w, vInput, vWeights)
        lossMap(x.count) { i in
            vInput[i] = vLoss * w[i]
            vWeights?[i] = vLoss * x[i]
        }
    }
}

// MARK: - Tensor-level wrappers

extension Kernels {
    public static func l1Loss(_ prediction: Tensor, _ target: Tensor) -> Float {
        lossShapes("l1Loss", prediction, target)
        return prediction.withUnsafeBufferPointer { p in target.withUnsafeBufferPointer { t in l1Loss(p, t) } }
    }

    public static func l1LossVJP(_ prediction: Tensor, _ target: Tensor, vLoss: Float)
        -> (vPrediction: Tensor, vTarget: Tensor) {
        lossShapes("l1LossVJP", prediction, target)
        return lossCotangents(prediction, target) { p, t, vp, vt in
            l1LossVJP(p, t, vLoss: vLoss, vPrediction: vp, vTarget: vt)
        }
    }

    /// `mask` is [1, H, W] (every channel) or the image's own shape.
    public static func maskedL1Loss(_ prediction: Tensor, _ target: Tensor, mask: Tensor) -> Float {
        lossShapes("maskedL1Loss", prediction, target)
        maskShape("maskedL1Loss", prediction, mask)
        return prediction.withUnsafeBufferPointer { p in
            target.withUnsafeBufferPointer { t in mask.withUnsafeBufferPointer { m in maskedL1Loss(p, t, mask: m) } }
        }
    }

    public static func maskedL1LossVJP(_ prediction: Tensor, _ target: Tensor, mask: Tensor, vLoss: Float)
        -> (vPrediction: Tensor, vTarget: Tensor) {
        lossShapes("maskedL1LossVJP", prediction, target)
        maskShape("maskedL1LossVJP", prediction, mask)
        return mask.withUnsafeBufferPointer { m in
            lossCotangents(prediction, target) { p, t, vp, vt in
                maskedL1LossVJP(p, t, mask: m, vLoss: vLoss, vPrediction: vp, vTarget: vt)
            }
        }
    }

    public static func mseLoss(_ prediction: Tensor, _ target: Tensor) -> Float {
        lossShapes("mseLoss", prediction, target)
        return prediction.withUnsafeBufferPointer { p in target.withUnsafeBufferPointer { t in mseLoss(p, t) } }
    }

    public static func mseLossVJP(_ prediction: Tensor, _ target: Tensor, vLoss: Float)
        -> (vPrediction: Tensor, vTarget: Tensor) {
        lossShapes("mseLossVJP", prediction, target)
        return lossCotangents(prediction, target) { p, t, vp, vt in
            mseLossVJP(p, t, vLoss: vLoss, vPrediction: vp, vTarget: vt)
        }
    }

    public static func huberLoss(_ prediction: Tensor, _ target: Tensor, delta: Float) -> Float {
        lossShapes("huberLoss", prediction, target)
        return prediction.withUnsafeBufferPointer { p in
            target.withUnsafeBufferPointer { t in huberLoss(p, t, delta: delta) }
        }
    }

    public static func huberLossVJP(_ prediction: Tensor, _ target: Tensor, delta: Float, vLoss: Float)
        -> (vPrediction: Tensor, vTarget: Tensor) {
        lossShapes("huberLossVJP", prediction, target)
        return lossCotangents(prediction, target) { p, t, vp, vt in
            huberLossVJP(p, t, delta: delta, vLoss: vLoss, vPrediction: vp, vTarget: vt)
        }
    }

    public static func weightedSum(_ x: Tensor, weights: Tensor) -> Float {
        lossShapes("weightedSum", x, weights)
        return x.withUnsafeBufferPointer { xb in weights.withUnsafeBufferPointer { wb in weightedSum(xb, weights: wb) } }
    }

    public static func weightedSumVJP(_ x: Tensor, weights: Tensor, vLoss: Float) -> (vInput: Tensor, vWeights: Tensor) {
        lossShapes("weightedSumVJP", x, weights)
        let r = lossCotangents(x, weights) { xb, wb, vx, vw in
            weightedSumVJP(xb, weights: wb, vLoss: vLoss, vInput: vx, vWeights: vw)
        }
        return (r.vPrediction, r.vTarget)
    }
}

// MARK: - Helpers

/// Σ term(i) over 0..<n in Double. The sum has one fixed shape, so its bits do not depend on the
/// thread budget (`KernelThreads`): large sums are split in two halves added in order, and each
/// range keeps eight running sums (over i mod 8) added at its end. Eight sums instead of one let
/// the adds pipeline; inlined, `term` vectorises. The halves run on two cores when allowed.
@inline(__always)
func lossSum(_ n: Int, _ term: (Int) -> Double) -> Double {
    @inline(__always) func range(_ lo: Int, _ hi: Int) -> Double {
        var s = SIMD8<Double>()
        var i = lo
        while i + 8 <= hi {
            s += SIMD8(term(i), term(i + 1), term(i + 2), term(i + 3), term(i + 4), term(i + 5), term(i + 6), term(i + 7))
            i += 8
        }
        var tail = 0.0
        while i < hi { tail += term(i); i += 1 }
        return s.sum() + tail
    }
    if n < 1 << 16 { return range(0, n) }
    var halves = (0.0, 0.0)
    withUnsafeMutablePointer(to: &halves) { h in
        h.withMemoryRebound(to: Double.self, capacity: 2) { out in
            func half(_ w: Int) { out[w] = range(n * w / 2, n * (w + 1) / 2) }
            if KernelThreads.budget >= 2 { concurrentWorkers(2, half) } else { half(0); half(1) }
        }
    }
    return halves.0 + halves.1
}

/// body(i) for i in 0..<n, on up to `KernelThreads.budget` cores for large n; each i is independent.
/// Inlined, so `body` is too and the loop vectorises.
@inline(__always)
func lossMap(_ n: Int, _ body: (Int) -> Void) {
    if n < 1 << 16 {
        for i in 0..<n { body(i) }
        return
    }
    parallelChunks(n, threads: KernelThreads.budget, minimumChunk: 1 << 15) { (_: Int, range: Range<Int>) in
        for i in range { body(i) }
    }
}

/// Σ of the mask broadcast over all `total` elements.
func maskWeight(_ m: UnsafeBufferPointer<Float>, total: Int) -> Double {
    var s = 0.0
    for v in m { s += Double(v) }
    return s * Double(total / max(m.count, 1))
}

func lossCheck(_ name: String, _ p: UnsafeBufferPointer<Float>, _ t: UnsafeBufferPointer<Float>,
               _ vp: UnsafeMutableBufferPointer<Float>? = nil, _ vt: UnsafeMutableBufferPointer<Float>? = nil) {
    precondition(p.count == t.count, "\(name): \(p.count) values against \(t.count)")
    precondition(vp == nil || vp!.count == p.count, "\(name): cotangent has \(vp!.count) values, needs \(p.count)")
    precondition(vt == nil || vt!.count == p.count, "\(name): cotangent has \(vt!.count) values, needs \(p.count)")
}

func maskCheck(_ name: String, _ n: Int, _ m: Int) {
    precondition(m > 0 && n % m == 0, "\(name): a mask of \(m) values does not broadcast over \(n)")
}

func lossShapes(_ name: String, _ a: Tensor, _ b: Tensor) {
    precondition(a.shape == b.shape, "\(name): shapes \(a.shape) and \(b.shape) differ")
}

/// A mask is the image's shape, or [1, H, W] / [H, W] for a [C, H, W] image.
func maskShape(_ name: String, _ image: Tensor, _ mask: Tensor) {
    let s = image.shape
    let ok = mask.shape == s
        || (s.count == 3 && (mask.shape == [1, s[1], s[2]] || mask.shape == [s[1], s[2]]))
    precondition(ok, "\(name): mask \(mask.shape) does not fit image \(s) (use [1, H, W] or the image's shape)")
}

/// Fresh cotangent tensors for a (prediction, target) pair filled by `body`.
func lossCotangents(
    _ a: Tensor, _ b: Tensor,
    _ body: (UnsafeBufferPointer<Float>, UnsafeBufferPointer<Float>,
             UnsafeMutableBufferPointer<Float>, UnsafeMutableBufferPointer<Float>) -> Void
) -> (vPrediction: Tensor, vTarget: Tensor) {
    // The kernels overwrite every cotangent value, so the buffers start uninitialised.
    var target = Tensor(shape: [0], scalars: [])
    let prediction = Tensor(shape: a.shape) { vab in
        target = Tensor(shape: b.shape) { vbb in
            a.withUnsafeBufferPointer { ab in b.withUnsafeBufferPointer { bb in body(ab, bb, vab, vbb) } }
        }
    }
    return (prediction, target)
}
