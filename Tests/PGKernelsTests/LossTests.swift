import Foundation
import PGTensor
import Testing
@testable import PGKernels

/// A loss term with its Float64 reference, evaluated on the exact Float32 inputs.
struct LossCase: Sendable, CustomTestStringConvertible {
    enum Kind: Sendable { case l1, maskedL1(fullMask: Bool), mse, huber(Float), weightedSum }
    var kind: Kind
    var seed: UInt64
    var testDescription: String { "\(kind) seed \(seed)" }

    static let all: [LossCase] = [
        LossCase(kind: .l1, seed: 101),
        LossCase(kind: .maskedL1(fullMask: false), seed: 102),
        LossCase(kind: .maskedL1(fullMask: true), seed: 103),
        LossCase(kind: .mse, seed: 104),
        LossCase(kind: .huber(0.3), seed: 105),
        LossCase(kind: .weightedSum, seed: 106),
    ]

    static let shape = [3, 5, 6]

    /// L(p, t) in Float64; `mask` is [1, H, W] or [C, H, W] per the kind.
    func reference(_ p: [Double], _ t: [Double], _ mask: [Double]) -> Double {
        let n = Double(p.count)
        switch kind {
        case .l1: return zip(p, t).map { abs($0 - $1) }.reduce(0, +) / n
        case .maskedL1:
            let m = mask.count
            let num = p.indices.map { mask[$0 % m] * abs(p[$0] - t[$0]) }.reduce(0, +)
            let den = p.indices.map { mask[$0 % m] }.reduce(0, +)
            return num / den
        case .mse: return zip(p, t).map { ($0 - $1) * ($0 - $1) }.reduce(0, +) / n
        case .huber(let delta):
            let d = Double(delta)
            return zip(p, t).map { a, b in
                let e = abs(a - b)
                return e <= d ? 0.5 * e * e : d * (e - 0.5 * d)
            }.reduce(0, +) / n
        case .weightedSum: return zip(p, t).map { $0 * $1 }.reduce(0, +)
        }
    }

    func fast(_ p: Tensor, _ t: Tensor, _ mask: Tensor) -> Float {
        switch kind {
        case .l1: return Kernels.l1Loss(p, t)
        case .maskedL1: return Kernels.maskedL1Loss(p, t, mask: mask)
        case .mse: return Kernels.mseLoss(p, t)
        case .huber(let delta): return Kernels.huberLoss(p, t, delta: delta)
        case .weightedSum: return Kernels.weightedSum(p, weights: t)
        }
    }

    func fastVJP(_ p: Tensor, _ t: Tensor, _ mask: Tensor, vLoss: Float) -> (Tensor, Tensor) {
        switch kind {
        case .l1: return Kernels.l1LossVJP(p, t, vLoss: vLoss)
        case .maskedL1: return Kernels.maskedL1LossVJP(p, t, mask: mask, vLoss: vLoss)
        case .mse: return Kernels.mseLossVJP(p, t, vLoss: vLoss)
        case .huber(let delta): return Kernels.huberLossVJP(p, t, delta: delta, vLoss: vLoss)
        case .weightedSum: return Kernels.weightedSumVJP(p, weights: t, vLoss: vLoss)
        }
    }

    var maskShape: [Int] {
        if case .maskedL1(let full) = kind, full { return LossCase.shape }
        return [1, LossCase.shape[1], LossCase.shape[2]]
    }
}

@Suite("loss terms")
struct LossTests {
    @Test("forward and VJP of both sides match Float64 central differences", arguments: LossCase.all)
    func gradients(_ c: LossCase) {
        var rng = ConvTestRandom(seed: c.seed)
        let n = LossCase.shape.reduce(1, *)
        let p = exact(rng.values(n, 0, 1)), t = exact(rng.values(n, 0, 1))
        let mask = exact(rng.values(c.maskShape.reduce(1, *), 0, 1).map { $0 < 0.3 ? 0 : $0 })
        let pt = Tensor(shape: LossCase.shape, scalars: float32(p))
        let tt = Tensor(shape: LossCase.shape, scalars: float32(t))
        let mt = Tensor(shape: c.maskShape, scalars: float32(mask))

        let value = c.fast(pt, tt, mt), expected = c.reference(p, t, mask)
        #expect(abs(Double(value) - expected) <= 1e-6 * max(1, abs(expected)),
                "\(c.testDescription): loss \(value), reference \(expected)")

        let vLoss: Float = 1.75
        let (vp, vt) = c.fastVJP(pt, tt, mt, vLoss: vLoss)
        let fdP = p.indices.map { i in 1.75 * centralDifference({ c.reference($0, t, mask) }, p, i) }
        let fdT = t.indices.map { i in 1.75 * centralDifference({ c.reference(p, $0, mask) }, t, i) }
        let ep = convMaxError(vp.scalars, fdP), et = convMaxError(vt.scalars, fdT)
        #expect(ep < 1e-5, "\(c.testDescription): vPrediction error \(ep)")
        #expect(et < 1e-5, "\(c.testDescription): vTarget error \(et)")
    }

    @Test("an empty mask gives zero loss and zero gradients")
    func emptyMask() {
        let p = Tensor(repeating: 0.2, shape: [3, 4, 4]), t = Tensor(repeating: 0.7, shape: [3, 4, 4])
        let m = Tensor(zeros: [1, 4, 4])
        #expect(Kernels.maskedL1Loss(p, t, mask: m) == 0)
        let (vp, vt) = Kernels.maskedL1LossVJP(p, t, mask: m, vLoss: 1)
        #expect(vp.scalars.allSatisfy { $0 == 0 } && vt.scalars.allSatisfy { $0 == 0 })
    }

    @Test("large images take the two-core path and give the same sums")
    func largeImages() {
        var rng = ConvTestRandom(seed: 111)
        let shape = [3, 128, 200]
        let n = shape.reduce(1, *)
        let p = exact(rng.values(n, 0, 1)), t = exact(rng.values(n, 0, 1))
        let pt = Tensor(shape: shape, scalars: float32(p)), tt = Tensor(shape: shape, scalars: float32(t))
        let l1 = zip(p, t).map { abs($0 - $1) }.reduce(0, +) / Double(n)
        let mse = zip(p, t).map { ($0 - $1) * ($0 - $1) }.reduce(0, +) / Double(n)
        #expect(abs(Double(Kernels.l1Loss(pt, tt)) - l1) < 1e-6)
        #expect(abs(Double(Kernels.mseLoss(pt, tt)) - mse) < 1e-6)
        let (vp, _) = Kernels.mseLossVJP(pt, tt, vLoss: 1)
        let i = n - 5
        #expect(abs(Double(vp.scalars[i]) - 2 * (p[i] - t[i]) / Double(n)) < 1e-12)
        // The thread budget (the run's --threads) changes who adds, never the bits.
        for budget in [1, 2, 3] {
            KernelThreads.$budget.withValue(budget) {
                let one = KernelThreads.$budget.withValue(1) { (Kernels.l1Loss(pt, tt), Kernels.mseLossVJP(pt, tt, vLoss: 1).0) }
                #expect(Kernels.l1Loss(pt, tt) == one.0, "budget \(budget)")
                #expect(Kernels.mseLossVJP(pt, tt, vLoss: 1).0 == one.1, "budget \(budget)")
            }
        }
    }

    @Test("Huber is ½d² inside δ and δ(|d| − ½δ) outside")
    func huberPieces() {
        let p = Tensor(shape: [2], scalars: [0.1, 2]), t = Tensor(zeros: [2])
        let expected = (0.5 * 0.01 + 0.5 * (2 - 0.25)) / 2
        #expect(abs(Double(Kernels.huberLoss(p, t, delta: 0.5)) - expected) < 1e-7)
        let (vp, _) = Kernels.huberLossVJP(p, t, delta: 0.5, vLoss: 2)
        #expect(vp.scalars == [0.1, 0.5])
    }
}
