import Foundation
@testable import PGFlow
import PGTensor
import Testing

/// Adam against a Float64 transcription of PyTorch's update, the learning-rate schedules, gradient
/// clipping, and the two ways gradients combine: summed where a value fans out, averaged over a batch.
@Suite struct OptimizerTests {
    @Test(arguments: [UInt64(1), 2])
    func adamFollowsPyTorchsUpdate(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        func uniform() -> Double { Double(rng.next() >> 11) / 9_007_199_254_740_992 * 2 - 1 }
        let n = 7, lr = 0.01, b1 = 0.8, b2 = 0.99, eps = 1e-8
        var theta = Tensor(shape: [n], scalars: (0..<n).map { _ in Float(uniform()) })
        var adam = Adam(shape: [n], learningRate: Float(lr), beta1: Float(b1), beta2: Float(b2), eps: Float(eps))
        // torch.optim.Adam (amsgrad off, no weight decay), in Float64.
        var ref = theta.scalars.map(Double.init), m = [Double](repeating: 0, count: n), v = m
        for t in 1...60 {
            let g = (0..<n).map { _ in uniform() * (t % 7 == 0 ? 10 : 1) }
            let scale = 0.5 + 0.5 * Double(t % 3)   // a schedule's factor
            adam.update(&theta, gradient: Tensor(shape: [n], scalars: g.map(Float.init)), lrScale: Float(scale))
            for i in 0..<n {
                m[i] = b1 * m[i] + (1 - b1) * g[i]
                v[i] = b2 * v[i] + (1 - b2) * g[i] * g[i]
                let mHat = m[i] / (1 - pow(b1, Double(t))), vHat = v[i] / (1 - pow(b2, Double(t)))
                ref[i] -= lr * scale * mHat / (vHat.squareRoot() + eps)
            }
        }
        #expect(adam.steps == 60)
        for i in 0..<n { #expect(abs(Double(theta.scalars[i]) - ref[i]) < 1e-5, "seed \(seed), element \(i): \(theta.scalars[i]) vs \(ref[i])") }
    }

    @Test func schedulesScaleTheLearningRate() {
        let exponential = TrainingSettings.Schedule.exponential(final: 0.01)
        #expect(exponential.scale(step: 0, of: 100) == 1)
        #expect(abs(exponential.scale(step: 50, of: 100) - 0.1) < 1e-12)
        #expect(abs(exponential.scale(step: 100, of: 100) - 0.01) < 1e-12)
        let step = TrainingSettings.Schedule.step(every: 30, gamma: 0.5)
        #expect([0, 29, 30, 59, 60, 95].map { step.scale(step: $0, of: 100) } == [1, 1, 0.5, 0.5, 0.25, 0.125])
        #expect(TrainingSettings.Schedule.constant.scale(step: 77, of: 100) == 1)
    }

    @Test func clippingShortensOnlyLongGradients() {
        let g = Tensor(shape: [2], scalars: [3, 4])            // norm 5
        #expect(clipped(g, toNorm: 1).scalars == [0.6, 0.8])
        #expect(clipped(g, toNorm: 5).scalars == [3, 4])
        #expect(clipped(g, toNorm: 10).scalars == [3, 4])
    }

    /// w feeds two Affine nodes whose outputs are added: dL/dw is the sum over both paths.
    /// loss = mean((w0·t + w1 + w0·2t + w1 − y)²) over the frame's one element, y = 10.
    @Test func gradientsAreSummedWhereAValueFansOutAndAveragedOverABatch() throws {
        let box = try Sandbox()
        defer { box.remove() }
        let url = try box.write("fanout.json", """
        {"pgflow": 1, "nodes": {
          "t":      {"type": "Ramp", "params": {"count": 6}},
          "t2":     {"type": "Scale", "in": {"in": "t.out"}, "params": {"factor": 2}},
          "ten":    {"type": "Constant", "params": {"value": 10}},
          "y":      {"type": "Scale", "in": {"in": "t.out", "offset": "ten.out"}, "params": {"factor": 0}},
          "w":      {"type": "Param", "params": {"init": [0.3, -0.2]}},
          "a":      {"type": "Affine", "in": {"x": "t.out", "w": "w.value"}},
          "b":      {"type": "Affine", "in": {"x": "t2.out", "w": "w.value"}},
          "sum":    {"type": "Add", "in": {"a": "a.out", "b": "b.out"}},
          "loss":   {"type": "SquaredError", "in": {"pred": "sum.out", "target": "y.out"}}
        }, "outputs": ["loss.loss"]}
        """)
        let engine = try box.engine(try Graph.load(url, catalog: box.catalog))
        let loss = PortRef(node: "loss", port: "loss")
        // d/dw of (3t·w0 + 2·w1 − 10)²: 2r·(3t, 2) with r the residual.
        func expected(_ t: Double) -> [Double] {
            let r = 3 * t * 0.3 + 2 * -0.2 - 10
            return [2 * r * 3 * t, 2 * r * 2]
        }
        let one = try engine.gradients(loss: loss, frame: 4)
        #expect(one.map(\.0) == ["w.w"])
        for (got, want) in zip(one[0].1.scalars, expected(4)) { #expect(abs(Double(got) - want) < 1e-4, "\(one) vs \(expected(4))") }

        let batch = try engine.gradients(loss: loss, frames: [1, 4, 5])
        let mean = (0..<2).map { i in [1.0, 4, 5].map { expected($0)[i] }.reduce(0, +) / 3 }
        for (got, want) in zip(batch[0].1.scalars, mean) { #expect(abs(Double(got) - want) < 1e-4, "\(batch) vs \(mean)") }
    }
}

/// Lazy Adam (for groups with a row per frame): an element a step gives no gradient keeps its
/// value and moments, where plain Adam keeps moving it on momentum.
@Test func lazyAdamLeavesUntouchedRowsAlone() {
    var plain = Adam(shape: [2], learningRate: 0.1), lazy = plain
    var a = Tensor(shape: [2], scalars: [1, 1]), b = a
    plain.update(&a, gradient: Tensor(shape: [2], scalars: [1, 1]))
    lazy.update(&b, gradient: Tensor(shape: [2], scalars: [1, 1]), lazy: true)
    #expect(a == b)
    plain.update(&a, gradient: Tensor(shape: [2], scalars: [1, 0]))
    lazy.update(&b, gradient: Tensor(shape: [2], scalars: [1, 0]), lazy: true)
    #expect(a.scalars[0] == b.scalars[0], "rows with a gradient update alike")
    #expect(b.scalars[1] > a.scalars[1], "plain Adam moved the untouched element on momentum (\(a.scalars[1])), lazy Adam did not (\(b.scalars[1]))")
    #expect(abs(lazy.m.scalars[1] - 0.1) < 1e-6 && plain.m.scalars[1] < 0.095, "its moment is where the first step left it")
}

/// Adam is elementwise, so splitting its step over threads changes the speed, never the bits.
@Test func adamGivesTheSameBitsOnOneThreadOrTwo() {
    var rng = SplitMix64(seed: 9)
    let n = 3 << 16
    let start = Tensor(shape: [n], scalars: (0..<n).map { _ in Float.random(in: -1...1, using: &rng) })
    var one = Adam(shape: [n], learningRate: 0.01), two = one
    var a = start, b = start
    for _ in 0..<3 {
        let g = Tensor(shape: [n], scalars: (0..<n).map { _ in Float.random(in: -1...1, using: &rng) })
        one.update(&a, gradient: g, threads: 1)
        two.update(&b, gradient: g, threads: 2)
    }
    #expect(a == b && one.m == two.m && one.v == two.v)
    #expect(a != start)
}

/// Plain Adam runs four lanes at a time; lazy Adam goes element by element. With no zero in the
/// gradient both do the same arithmetic in the same order, so they must agree to the bit
/// (including lengths that leave a tail of 1–3 elements).
@Test(arguments: [37, 1 << 16 + 3])
func adamsFourLanesGiveTheScalarBits(n: Int) {
    var rng = SplitMix64(seed: 4)
    let start = Tensor(shape: [n], scalars: (0..<n).map { _ in Float.random(in: -1...1, using: &rng) })
    var vector = Adam(shape: [n], learningRate: 0.003), scalar = vector
    var a = start, b = start
    for _ in 0..<4 {
        let g = Tensor(shape: [n], scalars: (0..<n).map { _ in Float.random(in: 0.01...2, using: &rng) * (Bool.random(using: &rng) ? 1 : -1) })
        vector.update(&a, gradient: g, threads: 2)
        scalar.update(&b, gradient: g, lazy: true, threads: 2)
    }
    #expect(a == b && vector.m == scalar.m && vector.v == scalar.v)
    #expect(a != start)
}
