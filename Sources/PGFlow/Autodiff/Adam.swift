import PGTensor

/// Adam (Kingma & Ba) with PyTorch's bias correction. One instance per parameter group; its
/// moments belong to the checkpoint so an interrupted stage resumes exactly.
public struct Adam: Sendable {
    public var learningRate: Float
    public var beta1: Float
    public var beta2: Float
    public var eps: Float
    public var m: Tensor
    public var v: Tensor
    /// Updates applied so far (for bias correction).
    public var steps: Int

    public init(shape: [Int], learningRate: Float, beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-15) {
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps
        self.m = Tensor(zeros: shape)
        self.v = Tensor(zeros: shape)
        self.steps = 0
    }

    /// θ ← θ − lr·m̂/(√v̂ + eps), with `lrScale` from the schedule. `lazy`: elements whose gradient
    /// is exactly zero keep their value and moments (for groups with one row per frame, which a
    /// step's batch touches only in part: plain Adam would keep moving the other rows on momentum).
    /// Elementwise, so `threads` changes the speed, never the bits.
    public mutating func update(_ parameter: inout Tensor, gradient: Tensor, lrScale: Float = 1, lazy: Bool = false, threads: Int = 1) {
        precondition(parameter.shape == gradient.shape && parameter.shape == m.shape,
                     "Adam: parameter \(parameter.shape), gradient \(gradient.shape), state \(m.shape)")
        steps += 1
        let b1 = beta1, b2 = beta2, eps = self.eps
        let c1 = 1 - Float(Double(b1).power(steps))
        let c2 = 1 - Float(Double(b2).power(steps))
        let lr = learningRate * lrScale
        let sqrtC2 = c2.squareRoot()
        parameter.withUnsafeMutableBufferPointer { pb in
            gradient.withUnsafeBufferPointer { gb in
                m.withUnsafeMutableBufferPointer { mb in
                    v.withUnsafeMutableBufferPointer { vb in
                        let (p, g, m, v) = (pb, gb, mb, vb)
                        parallelChunks(p.count, threads: threads, minimumChunk: 1 << 16) { range in
                            for i in range {
                                let gi = g[i]
                                if lazy && gi == 0 { continue }
                                m[i] = b1 * m[i] + (1 - b1) * gi
                                v[i] = b2 * v[i] + (1 - b2) * gi * gi
                                // PyTorch's form: step = lr/c1 · m / (√v/√c2 + eps)
                                p[i] -= lr / c1 * m[i] / (v[i].squareRoot() / sqrtC2 + eps)
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The gradient scaled down to L2 norm `maxNorm` when it is longer (the optimize stage's `clip`,
/// applied per parameter group); shorter gradients pass unchanged.
func clipped(_ gradient: Tensor, toNorm maxNorm: Float) -> Tensor {
    let norm = gradient.scalars.reduce(Float(0)) { $0 + $1 * $1 }.squareRoot()
    return norm > maxNorm ? gradient * (maxNorm / norm) : gradient
}

extension Double {
    func power(_ n: Int) -> Double {
        var r = 1.0
        for _ in 0..<n { r *= self }
        return r
    }
}
