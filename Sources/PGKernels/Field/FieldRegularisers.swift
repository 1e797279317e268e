import Foundation

/// Regularisers of the neural Gaussian field, each a scalar with its VJP. They are means, so a
/// loss weight means the same at every UV resolution.
public enum FieldRegularisers {
    /// UV-neighbour smoothness: the graph-Laplacian quadratic form xᵀLx of the UV grid, as the mean
    /// over neighbouring texel pairs (i, j) and channels of (xᵢ − xⱼ)². Zero when there are no edges.
    public static func laplacian(_ values: [Float],   // [N, C]
                                 channels c: Int,
                                 edges: [Int32]) -> Double {   // [M, 2]
        precondition(c >= 1 && values.count % c == 0, "values should be [N, \(c)]")
        let m = edges.count / 2
        if m == 0 { return 0 }
        var sum = 0.0
        for e in 0..<m {
            let i = Int(edges[2 * e]) * c, j = Int(edges[2 * e + 1]) * c
            for k in 0..<c {
                let d = Double(values[i + k]) - Double(values[j + k])
                sum += d * d
            }
        }
        return sum / Double(m * c)
    }

    public static func laplacianVJP(_ values: [Float],   // [N, C]
                                    channels c: Int,
                                    edges: [Int32],      // [M, 2]
                                    vLoss: Float) -> [Float] {   // [N, C]
        var out = [Float](repeating: 0, count: values.count)
        let m = edges.count / 2
        if m == 0 || vLoss == 0 { return out }
        let scale = 2 * vLoss / Float(m * c)
        for e in 0..<m {
            let i = Int(edges[2 * e]) * c, j = Int(edges[2 * e + 1]) * c
            for k in 0..<c {
                let g = scale * (values[i + k] - values[j + k])
                out[i + k] += g
                out[j + k] -= g
            }
        }
        return out
    }

    /// Offset magnitude: the mean over Gaussians of ‖offset‖².
    public static func offsetNorm(_ offsets: [Float]) -> Double {   // [N, 3]
        precondition(offsets.count % 3 == 0, "offsets should be [N, 3]")
        if offsets.isEmpty { return 0 }
        return offsets.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(offsets.count / 3)
    }

    public static func offsetNormVJP(_ offsets: [Float], vLoss: Float) -> [Float] {   // [N, 3]
        if offsets.isEmpty { return [] }
        let scale = 2 * vLoss / Float(offsets.count / 3)
        return offsets.map { scale * $0 }
    }

    /// Scale hinge: the mean of (exp(s) − bound) over the scale entries above `bound`, the way the
    /// reference code writes `(scales[scales > bound] - bound).mean()`, but 0 (not NaN) when no
    /// scale exceeds the bound.
    public static func scaleHinge(_ logScales: [Float], bound: Float) -> Double {   // [N, 3] or [N, 1]
        precondition(bound > 0, "the scale bound must be positive")
        var sum = 0.0, count = 0
        for s in logScales {
            let e = Double(exp(s))
            if e > Double(bound) { sum += e - Double(bound); count += 1 }
        }
        return count == 0 ? 0 : sum / Double(count)
    }

    public static func scaleHingeVJP(_ logScales: [Float], bound: Float, vLoss: Float) -> [Float] {
        var count = 0
        for s in logScales where exp(s) > bound { count += 1 }
        if count == 0 { return [Float](repeating: 0, count: logScales.count) }
        let scale = vLoss / Float(count)
        return logScales.map { s in
            let e = exp(s)
            return e > bound ? scale * e : 0
        }
    }

    /// Opacity sparsity: the mean of log(o) + log(1 − o) with o = sigmoid(logit), which pushes
    /// every opacity towards 0 or 1. Written with softplus so it stays finite at large |logit|:
    /// log σ(x) + log(1 − σ(x)) = −softplus(−x) − softplus(x) = −|x| − 2·log1p(e^−|x|), one
    /// exp and one log1p per Gaussian (GaussianField computes it every step: with two of each it
    /// was ~3 ms a step on a 100k cloud).
    public static func opacitySparsity(_ logits: [Float]) -> Double {   // [N]
        if logits.isEmpty { return 0 }
        var sum = 0.0
        for x in logits { let a = abs(Double(x)); sum -= a + 2 * log1p(exp(-a)) }
        return sum / Double(logits.count)
    }

    public static func opacitySparsityVJP(_ logits: [Float], vLoss: Float) -> [Float] {
        if logits.isEmpty { return [] }
        let scale = Double(vLoss) / Double(logits.count)
        // d/dx [−softplus(−x) − softplus(x)] = σ(−x) − σ(x) = 1 − 2σ(x).
        return logits.map { x in Float(scale * (1 - 2 / (1 + exp(-Double(x))))) }
    }
}
