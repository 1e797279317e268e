import Foundation
import PGTensor
import Testing
@testable import PGKernels

@Suite("metrics")
struct MetricsTests {
    @Test("PSNR of a known error, of identical images, and inside a mask")
    func psnr() {
        let x = Tensor(repeating: 0.5, shape: [3, 4, 6])
        let r = Tensor(repeating: 0.6, shape: [3, 4, 6])
        #expect(abs(Metrics.psnr(x, r) - 20) < 1e-5)                          // MSE 0.01
        #expect(abs(Metrics.psnr(x, r, maxValue: 255) - (20 + 20 * log10(255))) < 1e-4)
        #expect(Metrics.psnr(x, x) == .infinity)
        // The error lives only where the mask is zero: inside it the images agree.
        var y = x
        var mask = Tensor(repeating: 1, shape: [1, 4, 6])
        for c in 0..<3 { y[c, 2, 3] = 0.9 }
        mask[0, 2, 3] = 0
        #expect(Metrics.psnr(y, x, mask: mask) == .infinity)
        #expect(Metrics.psnr(y, x) < 40)
        #expect(Metrics.psnr(y, x, mask: Tensor(zeros: [1, 4, 6])).isNaN)
    }

    @Test("L1 and MSE, plain and mask-weighted")
    func l1AndMSE() {
        var rng = ConvTestRandom(seed: 201)
        let shape = [2, 3, 5]
        let x = exact(rng.values(30, 0, 1)), r = exact(rng.values(30, 0, 1)), m = exact(rng.values(15, 0, 1))
        let xt = Tensor(shape: shape, scalars: float32(x)), rt = Tensor(shape: shape, scalars: float32(r))
        let mt = Tensor(shape: [1, 3, 5], scalars: float32(m))
        let l1 = zip(x, r).map { abs($0 - $1) }.reduce(0, +) / 30
        let weighted = x.indices.map { m[$0 % 15] * abs(x[$0] - r[$0]) }.reduce(0, +) / (2 * m.reduce(0, +))
        let mse = zip(x, r).map { ($0 - $1) * ($0 - $1) }.reduce(0, +) / 30
        #expect(abs(Metrics.l1(xt, rt) - l1) < 1e-12)
        #expect(abs(Metrics.l1(xt, rt, mask: mt) - weighted) < 1e-12)
        #expect(abs(Metrics.l1(xt, rt, mask: mt.reshaped([3, 5])) - weighted) < 1e-12)
        #expect(abs(Metrics.mse(xt, rt) - mse) < 1e-12)
    }

    @Test("SSIM metric: the kernel's mean, a full mask changes nothing, a half mask averages half the map")
    func ssim() {
        let (x, y) = SSIMTests.pair(seed: 17, shape: [3, 12, 14])
        let xt = Tensor(shape: [3, 12, 14], scalars: float32(x)), yt = Tensor(shape: [3, 12, 14], scalars: float32(y))
        let plain = Metrics.ssim(xt, yt)
        #expect(abs(plain - Double(Kernels.ssim(xt, yt))) < 1e-12)
        #expect(abs(Metrics.ssim(xt, yt, mask: Tensor(repeating: 1, shape: [1, 12, 14])) - plain) < 1e-6)
        var left = Tensor(zeros: [1, 12, 14])
        for i in 0..<12 { for j in 0..<7 { left[0, i, j] = 1 } }
        let map = ConvReference.ssimMap(x, y, channels: 3, height: 12, width: 14)
        let expected = (0..<3).flatMap { c in (0..<12).flatMap { i in (0..<7).map { j in map[(c * 12 + i) * 14 + j] } } }
        #expect(abs(Metrics.ssim(xt, yt, mask: left) - expected.reduce(0, +) / Double(expected.count)) < 1e-4)
        #expect(Metrics.ssim(xt, xt) > 0.99999)
    }

    @Test("temporal flicker: mean frame-to-frame change, streamed or at once, and relative to the source")
    func flicker() {
        let frames = (0..<5).map { Tensor(repeating: Float($0) * 0.1, shape: [3, 4, 4]) }
        let source = (0..<5).map { Tensor(repeating: Float($0) * 0.05, shape: [3, 4, 4]) }
        #expect(abs(Metrics.temporalFlicker(frames) - 0.1) < 1e-7)
        #expect(abs(Metrics.relativeFlicker(frames, source: source) - 2) < 1e-5)
        var stream = TemporalFlicker()
        #expect(stream.value == 0)
        for f in frames { stream.add(f) }
        #expect(stream.pairs == 4 && abs(stream.value - 0.1) < 1e-7)

        // Alternating frames flicker although their mean is steady.
        let blink = (0..<4).map { Tensor(repeating: $0 % 2 == 0 ? 0.2 : 0.6, shape: [1, 2, 2]) }
        #expect(abs(Metrics.temporalFlicker(blink) - 0.4) < 1e-7)
        // A mask restricts it to the pixels that matter.
        var moving = (0..<3).map { _ in Tensor(repeating: 0.5, shape: [1, 2, 2]) }
        moving[1][0, 0, 0] = 0.9
        let still = Tensor(shape: [1, 2, 2], scalars: [0, 1, 1, 1])
        #expect(Metrics.temporalFlicker(moving, mask: still) == 0)
        #expect(abs(Metrics.temporalFlicker(moving) - 0.1) < 1e-7)

        let still3 = Array(repeating: Tensor(repeating: 0.3, shape: [1, 2, 2]), count: 3)
        #expect(Metrics.relativeFlicker(still3, source: still3) == 1)
        #expect(Metrics.relativeFlicker(moving, source: still3) == .infinity)
        #expect(Metrics.temporalFlicker([frames[0]]) == 0)
    }
}
