import Foundation
import PGTensor
import Testing
@testable import PGKernels

// Slow, obvious Float64 references for the convolution, network, loss and SSIM kernels, the
// seeded random numbers the tests draw from, and checks of the references themselves.

/// SplitMix64: small, seedable, the same on every platform.
struct ConvTestRandom {
    var bits: SplitMix64
    init(seed: UInt64) { bits = SplitMix64(seed: seed) }

    mutating func next() -> UInt64 { bits.next() }

    /// Uniform in [lo, hi).
    mutating func uniform(_ lo: Double = 0, _ hi: Double = 1) -> Double {
        lo + (hi - lo) * Double(next() >> 11) / 9_007_199_254_740_992
    }

    mutating func values(_ n: Int, _ lo: Double = -1, _ hi: Double = 1) -> [Double] {
        (0..<n).map { _ in uniform(lo, hi) }
    }
}

/// Values as Float32 and back, so the Float64 references see exactly what the kernels see.
func float32(_ v: [Double]) -> [Float] { v.map { Float($0) } }
func float64(_ v: [Float]) -> [Double] { v.map { Double($0) } }
func exact(_ v: [Double]) -> [Double] { v.map { Double(Float($0)) } }

/// max |a − b| relative to the larger of 1 and the reference's largest magnitude.
func convMaxError(_ a: [Float], _ b: [Double]) -> Double {
    precondition(a.count == b.count)
    let scale = max(1, b.map(abs).max() ?? 0)
    return zip(a, b).map { abs(Double($0) - $1) }.max().map { $0 / scale } ?? 0
}

/// Central difference of f along coordinate i, in Float64.
func centralDifference(_ f: ([Double]) -> Double, _ x: [Double], _ i: Int, step h: Double = 1e-6) -> Double {
    var plus = x, minus = x
    plus[i] += h
    minus[i] -= h
    return (f(plus) - f(minus)) / (2 * h)
}

enum ConvReference {
    static func activate(_ z: Double, _ a: Activation) -> Double {
        switch a {
        case .identity: return z
        case .relu: return max(z, 0)
        case .sigmoid: return 1 / (1 + exp(-z))
        }
    }

    /// y[o, i, j] = act(b[o] + Σ_{c, u, v} w[o, c, u, v] · x[c, i + u − p, j + v − p]), zero outside.
    static func conv(_ x: [Double], weight w: [Double], bias b: [Double]?, cin: Int, cout: Int, k: Int,
                     height h: Int, width wd: Int, activation: Activation) -> [Double] {
        let p = (k - 1) / 2
        var y = [Double](repeating: 0, count: cout * h * wd)
        for o in 0..<cout {
            for i in 0..<h {
                for j in 0..<wd {
                    var s = b?[o] ?? 0
                    for c in 0..<cin {
                        for u in 0..<k {
                            let yy = i + u - p
                            if yy < 0 || yy >= h { continue }
                            for v in 0..<k {
                                let xx = j + v - p
                                if xx < 0 || xx >= wd { continue }
                                s += w[((o * cin + c) * k + u) * k + v] * x[(c * h + yy) * wd + xx]
                            }
                        }
                    }
                    y[(o * h + i) * wd + j] = activate(s, activation)
                }
            }
        }
        return y
    }

    /// The renderer as a chain of reference convolutions; parameters in `parameters` order.
    static func network(_ c: NeuralRendererNet.Configuration, parameters: [[Double]], input: [Double],
                        height: Int, width: Int) -> [Double] {
        var x = input
        for (l, layer) in c.layers.enumerated() {
            x = conv(x, weight: parameters[2 * l], bias: parameters[2 * l + 1], cin: c.channelsIn(l),
                     cout: layer.channels, k: layer.kernelSize, height: height, width: width,
                     activation: layer.activation)
        }
        return x
    }

    /// The 11-tap Gaussian of 3DGS's `ssim` (σ = 1.5), normalised to sum 1.
    static func gaussian(size: Int = 11, sigma: Double = 1.5) -> [Double] {
        let g = (0..<size).map { exp(-Double(($0 - size / 2) * ($0 - size / 2)) / (2 * sigma * sigma)) }
        let s = g.reduce(0, +)
        return g.map { $0 / s }
    }

    /// SSIM map written the obvious way: the full 11×11 window summed directly at every pixel with
    /// zero padding (the 3DGS / PortraitGen `_ssim` with `F.conv2d(..., padding=5, groups=C)`).
    static func ssimMap(_ x: [Double], _ y: [Double], channels: Int, height h: Int, width w: Int) -> [Double] {
        let g = gaussian(), r = 5
        let c1 = 0.01 * 0.01, c2 = 0.03 * 0.03
        var out = [Double](repeating: 0, count: x.count)
        for c in 0..<channels {
            for i in 0..<h {
                for j in 0..<w {
                    var mx = 0.0, my = 0.0, exx = 0.0, eyy = 0.0, exy = 0.0
                    for u in -r...r {
                        for v in -r...r {
                            let ii = i + u, jj = j + v
                            if ii < 0 || ii >= h || jj < 0 || jj >= w { continue }
                            let wt = g[u + r] * g[v + r]
                            let a = x[(c * h + ii) * w + jj], b = y[(c * h + ii) * w + jj]
                            mx += wt * a; my += wt * b
                            exx += wt * a * a; eyy += wt * b * b; exy += wt * a * b
                        }
                    }
                    let sxx = exx - mx * mx, syy = eyy - my * my, sxy = exy - mx * my
                    out[(c * h + i) * w + j] = ((2 * mx * my + c1) * (2 * sxy + c2))
                        / ((mx * mx + my * my + c1) * (sxx + syy + c2))
                }
            }
        }
        return out
    }

    static func ssim(_ x: [Double], _ y: [Double], channels: Int, height: Int, width: Int) -> Double {
        let m = ssimMap(x, y, channels: channels, height: height, width: width)
        return m.reduce(0, +) / Double(m.count)
    }
}

@Suite("Float64 references")
struct ConvReferenceTests {
    @Test("the reference convolution of a one-hot kernel shifts the image")
    func shiftKernel() {
        let h = 4, w = 5
        let x = (0..<(h * w)).map(Double.init)
        var k = [Double](repeating: 0, count: 9)
        k[2 * 3 + 1] = 1   // tap (dy, dx) = (1, 0) relative to centre: reads the row below
        let y = ConvReference.conv(x, weight: k, bias: nil, cin: 1, cout: 1, k: 3, height: h, width: w,
                                   activation: .identity)
        for i in 0..<h {
            for j in 0..<w {
                #expect(y[i * w + j] == (i + 1 < h ? x[(i + 1) * w + j] : 0))
            }
        }
    }

    @Test("the Gaussian window is the 3DGS one")
    func gaussianWindow() {
        let g = ConvReference.gaussian()
        #expect(abs(g.reduce(0, +) - 1) < 1e-12)
        #expect(abs(g[5] - 0.266_011_72) < 1e-8)    // 3DGS gaussian(11, 1.5)[5]
        #expect(abs(g[0] - 0.001_028_38) < 1e-8)
    }

    @Test("SSIM of an image with itself is 1")
    func ssimOfItself() {
        var r = ConvTestRandom(seed: 3)
        let x = r.values(2 * 6 * 7, 0, 1)
        #expect(abs(ConvReference.ssim(x, x, channels: 2, height: 6, width: 7) - 1) < 1e-12)
    }
}
