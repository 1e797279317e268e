import Foundation
import PGTensor
import Testing
@testable import PGKernels

@Suite("SSIM and D-SSIM")
struct SSIMTests {
    /// Two correlated random images: y is x plus noise, so SSIM is well inside (0, 1).
    static func pair(seed: UInt64, shape: [Int]) -> (x: [Double], y: [Double]) {
        var rng = ConvTestRandom(seed: seed)
        let n = shape.reduce(1, *)
        let x = exact(rng.values(n, 0, 1))
        let y = exact(x.map { min(1, max(0, $0 + rng.uniform(-0.25, 0.25))) })
        return (x, y)
    }

    @Test("the map and its mean match the direct 11×11 window formula",
          arguments: [[3, 12, 13], [1, 4, 5], [2, 20, 9], [3, 1, 17]])
    func forward(_ shape: [Int]) {
        let seed = UInt64(shape.reduce(7, *))
        let (x, y) = Self.pair(seed: seed, shape: shape)
        let xt = Tensor(shape: shape, scalars: float32(x)), yt = Tensor(shape: shape, scalars: float32(y))
        let reference = ConvReference.ssimMap(x, y, channels: shape[0], height: shape[1], width: shape[2])
        let map = Kernels.ssimMap(xt, yt)
        let error = convMaxError(map.scalars, reference)
        #expect(error < 2e-4, "shape \(shape) seed \(seed): map error \(error)")
        let mean = reference.reduce(0, +) / Double(reference.count)
        #expect(abs(Double(Kernels.ssim(xt, yt)) - mean) < 1e-4, "shape \(shape) seed \(seed)")
        #expect(abs(Double(Kernels.dssimLoss(xt, yt)) - (1 - mean)) < 1e-4, "shape \(shape) seed \(seed)")
    }

    @Test("D-SSIM VJP of both images matches Float64 central differences",
          arguments: [[2, 7, 12], [1, 9, 9]])
    func vjp(_ shape: [Int]) {
        let seed = UInt64(shape.reduce(11, *))
        let (x, y) = Self.pair(seed: seed, shape: shape)
        let (c, h, w) = (shape[0], shape[1], shape[2])
        let xt = Tensor(shape: shape, scalars: float32(x)), yt = Tensor(shape: shape, scalars: float32(y))
        let vLoss: Float = 0.8
        let (vx, vy) = Kernels.dssimLossVJP(xt, yt, vLoss: vLoss)
        func loss(_ a: [Double], _ b: [Double]) -> Double {
            0.8 * (1 - ConvReference.ssim(a, b, channels: c, height: h, width: w))
        }
        let fdX = x.indices.map { centralDifference({ loss($0, y) }, x, $0) }
        let fdY = y.indices.map { centralDifference({ loss(x, $0) }, y, $0) }
        // Relative to the largest entry: these gradients are ~1/N small.
        let scaleX = fdX.map(abs).max()!, scaleY = fdY.map(abs).max()!
        let ex = zip(vx.scalars, fdX).map { abs(Double($0) - $1) }.max()! / scaleX
        let ey = zip(vy.scalars, fdY).map { abs(Double($0) - $1) }.max()! / scaleY
        #expect(ex < 2e-3, "shape \(shape) seed \(seed): vPrediction error \(ex)")
        #expect(ey < 2e-3, "shape \(shape) seed \(seed): vTarget error \(ey)")
    }

    @Test("SSIM of an image with itself is 1 and its D-SSIM gradient vanishes; SSIM is symmetric")
    func identities() {
        let (x, y) = Self.pair(seed: 5, shape: [3, 10, 11])
        let xt = Tensor(shape: [3, 10, 11], scalars: float32(x)), yt = Tensor(shape: [3, 10, 11], scalars: float32(y))
        #expect(abs(Kernels.ssim(xt, xt) - 1) < 1e-5)
        let (v, _) = Kernels.dssimLossVJP(xt, xt, vLoss: 1)
        #expect(v.scalars.map(abs).max()! < 1e-5)
        #expect(abs(Kernels.ssim(xt, yt) - Kernels.ssim(yt, xt)) < 1e-6)
        #expect(Kernels.ssim(xt, yt) < 0.95)
    }

    @Test("one and two threads agree")
    func threads() {
        let shape = [3, 16, 24]
        let (x, y) = Self.pair(seed: 9, shape: shape)
        let xs = float32(x), ys = float32(y)
        var v1 = [Float](repeating: 0, count: xs.count), v2 = v1
        xs.withUnsafeBufferPointer { xb in
            ys.withUnsafeBufferPointer { yb in
                let s1 = Kernels.ssim(xb, yb, channels: 3, height: 16, width: 24, threads: 1)
                let s2 = Kernels.ssim(xb, yb, channels: 3, height: 16, width: 24, threads: 2)
                #expect(s1 == s2)
                v1.withUnsafeMutableBufferPointer {
                    Kernels.dssimLossVJP(xb, yb, channels: 3, height: 16, width: 24, vLoss: 1, vPrediction: $0,
                                         vTarget: nil, threads: 1)
                }
                v2.withUnsafeMutableBufferPointer {
                    Kernels.dssimLossVJP(xb, yb, channels: 3, height: 16, width: 24, vLoss: 1, vPrediction: $0,
                                         vTarget: nil, threads: 2)
                }
            }
        }
        #expect(v1 == v2)
    }
}
