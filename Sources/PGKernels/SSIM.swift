import Foundation
import PGTensor

// SSIM as in the 3DGS / PortraitGen reference (`utils/loss_utils.py: ssim`): per channel, local
// statistics under an 11×11 Gaussian window (σ = 1.5) computed by a same-size convolution with
// zero padding 5, then
//     SSIM = (2μxμy + C1)(2σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2)),  C1 = 0.01², C2 = 0.03²,
// averaged over channels and pixels. D-SSIM = 1 − SSIM is the loss. The window is separable, so
// each of the five statistics μx, μy, E[x²], E[y²], E[xy] is a horizontal and a vertical 11-tap
// pass (exactly the 2D zero-padded convolution: a row outside the image is all zeros).

extension Kernels {
    public static let ssimWindowSize = 11
    public static let ssimSigma: Float = 1.5
    public static let ssimC1: Float = 0.01 * 0.01
    public static let ssimC2: Float = 0.03 * 0.03

    /// The normalised 1D Gaussian of the window; the 2D window is its outer product.
    public static let ssimGaussian: [Float] = {
        let n = ssimWindowSize, s = Double(ssimSigma)
        let g = (0..<n).map { exp(-Double(($0 - n / 2) * ($0 - n / 2)) / (2 * s * s)) }
        let total = g.reduce(0, +)
        return g.map { Float($0 / total) }
    }()

    /// Mean SSIM of x and y; writes the per-pixel map if asked.
    public static func ssim(
        _ x: UnsafeBufferPointer<Float>,                    // [C, H, W]
        _ y: UnsafeBufferPointer<Float>,                    // [C, H, W]
        channels: Int, height: Int, width: Int,
        map: UnsafeMutableBufferPointer<Float>? = nil,      // [C, H, W]
        threads: Int = ProcessInfo.processInfo.activeProcessorCount
    ) -> Float {
        ssimCheck("ssim", x, y, channels, height, width)
        precondition(map == nil || map!.count == x.count, "ssim: map has \(map!.count) values, needs \(x.count)")
        let n = x.count
        var stats = [Float](repeating: 0, count: 5 * n)
        var ownMap = map == nil ? [Float](repeating: 0, count: n) : []
        return stats.withUnsafeMutableBufferPointer { st in
            ssimStatistics(x.baseAddress!, y.baseAddress!, channels, height, width, into: st.baseAddress!, threads: threads)
            let s = UnsafePointer(st.baseAddress!)
            let body = { (m: UnsafeMutablePointer<Float>) -> Float in
                lossMap(n) { i in
                    m[i] = ssimValue(s[i], s[n + i], s[2 * n + i], s[3 * n + i], s[4 * n + i])
                }
                return Float(lossSum(n) { Double(m[$0]) } / Double(n))
            }
            if let map { return body(map.baseAddress!) }
            return ownMap.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
        }
    }

    /// D-SSIM = 1 − SSIM(x, y).
    public static func dssimLoss(
        _ x: UnsafeBufferPointer<Float>,                    // [C, H, W]
        _ y: UnsafeBufferPointer<Float>,                    // [C, H, W]
        channels: Int, height: Int, width: Int,
        threads: Int = ProcessInfo.processInfo.activeProcessorCount
    ) -> Float {
        1 - ssim(x, y, channels: channels, height: height, width: width, threads: threads)
    }

    /// The VJP of D-SSIM with respect to both images (overwritten). It recomputes the five window
    /// statistics instead of keeping them: five blurs cost far less than the renderer pass that
    /// produced x, and the forward then needs to save nothing but its inputs.
    public static func dssimLossVJP(
        _ x: UnsafeBufferPointer<Float>,                    // [C, H, W]
        _ y: UnsafeBufferPointer<Float>,                    // [C, H, W]
        channels: Int, height: Int, width: Int,
        vLoss: Float,
        vPrediction vX: UnsafeMutableBufferPointer<Float>,  // [C, H, W]
        vTarget vY: UnsafeMutableBufferPointer<Float>?,     // [C, H, W]
        threads: Int = ProcessInfo.processInfo.activeProcessorCount
    ) {
        ssimCheck("dssimLossVJP", x, y, channels, height, width)
        precondition(vX.count == x.count && (vY == nil || vY!.count == x.count),
                     "dssimLossVJP: cotangents must have \(x.count) values")
        let n = x.count
        let xp = x.baseAddress!, yp = y.baseAddress!
        var stats = [Float](repeating: 0, count: 5 * n)
        var blurred = [Float](repeating: 0, count: 5 * n)
        stats.withUnsafeMutableBufferPointer { st in
            blurred.withUnsafeMutableBufferPointer { bl in
                let s = st.baseAddress!, b = bl.baseAddress!
                ssimStatistics(xp, yp, channels, height, width, into: s, threads: threads)
                // ∂(−vLoss·mean SSIM)/∂(μx, μy, E[x²], E[y²], E[xy]) per pixel, in place.
                let scale = -vLoss / Float(n)
                lossMap(n) { i in
                    let g = ssimPartials(s[i], s[n + i], s[2 * n + i], s[3 * n + i], s[4 * n + i])
                    s[i] = scale * g.muX
                    s[n + i] = scale * g.muY
                    s[2 * n + i] = scale * g.xx
                    s[3 * n + i] = scale * g.yy
                    s[4 * n + i] = scale * g.xy
                }
                // The window is symmetric and zero padded, so the adjoint of each blur is itself.
                let maps = vY == nil ? [0, 2, 4] : [0, 1, 2, 3, 4]
                let plane = height * width
                convJobs(maps.count * channels, workers: threads) { _, job in
                    let m = maps[job / channels], c = job % channels
                    let offset = m * n + c * plane
                    ssimBlurPlane(s + offset, nil, into: b + offset, height: height, width: width)
                }
                // vx = B(gμx) + 2x·B(gE[x²]) + y·B(gE[xy]); vy likewise.
                lossMap(n) { i in
                    vX[i] = b[i] + 2 * xp[i] * b[2 * n + i] + yp[i] * b[4 * n + i]
                    vY?[i] = b[n + i] + 2 * yp[i] * b[3 * n + i] + xp[i] * b[4 * n + i]
                }
            }
        }
    }
}

// MARK: - Tensor-level wrappers

extension Kernels {
    /// Mean SSIM of two [C, H, W] images, on `threads` cores (by default the machine's).
    public static func ssim(_ x: Tensor, _ y: Tensor, threads: Int = ProcessInfo.processInfo.activeProcessorCount) -> Float {
        let (c, h, w) = ssimShape("ssim", x, y)
        return x.withUnsafeBufferPointer { xb in
            y.withUnsafeBufferPointer { yb in ssim(xb, yb, channels: c, height: h, width: w, threads: threads) }
        }
    }

    /// The per-pixel SSIM map [C, H, W] (for masked means and for looking at).
    public static func ssimMap(_ x: Tensor, _ y: Tensor) -> Tensor {
        let (c, h, w) = ssimShape("ssimMap", x, y)
        var map = Tensor(zeros: x.shape)
        x.withUnsafeBufferPointer { xb in
            y.withUnsafeBufferPointer { yb in
                map.withUnsafeMutableBufferPointer { mb in
                    _ = ssim(xb, yb, channels: c, height: h, width: w, map: mb)
                }
            }
        }
        return map
    }

    public static func dssimLoss(_ prediction: Tensor, _ target: Tensor, threads: Int = ProcessInfo.processInfo.activeProcessorCount) -> Float {
        1 - ssim(prediction, target, threads: threads)
    }

    public static func dssimLossVJP(_ prediction: Tensor, _ target: Tensor, vLoss: Float)
        -> (vPrediction: Tensor, vTarget: Tensor) {
        let (c, h, w) = ssimShape("dssimLossVJP", prediction, target)
        return lossCotangents(prediction, target) { p, t, vp, vt in
            dssimLossVJP(p, t, channels: c, height: h, width: w, vLoss: vLoss, vPrediction: vp, vTarget: vt)
        }
    }
}

// MARK: - Internals

func ssimCheck(_ name: String, _ x: UnsafeBufferPointer<Float>, _ y: UnsafeBufferPointer<Float>,
               _ c: Int, _ h: Int, _ w: Int) {
    precondition(c > 0 && h > 0 && w > 0, "\(name): empty image \(c)×\(h)×\(w)")
    precondition(x.count == c * h * w && y.count == c * h * w,
                 "\(name): images have \(x.count) and \(y.count) values, [\(c), \(h), \(w)] needs \(c * h * w)")
}

func ssimShape(_ name: String, _ x: Tensor, _ y: Tensor) -> (Int, Int, Int) {
    precondition(x.rank == 3 && x.shape == y.shape, "\(name): images must both be [C, H, W], got \(x.shape) and \(y.shape)")
    return (x.shape[0], x.shape[1], x.shape[2])
}

/// The five window statistics of every channel: [μx, μy, E[x²], E[y²], E[xy]] × [C, H, W].
func ssimStatistics(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ channels: Int, _ h: Int, _ w: Int,
                    into s: UnsafeMutablePointer<Float>, threads: Int) {
    let plane = h * w, n = channels * plane
    convJobs(5 * channels, workers: threads) { _, job in
        let m = job / channels, c = job % channels
        let xc = x + c * plane, yc = y + c * plane
        let out = s + m * n + c * plane
        switch m {
        case 0: ssimBlurPlane(xc, nil, into: out, height: h, width: w)
        case 1: ssimBlurPlane(yc, nil, into: out, height: h, width: w)
        case 2: ssimBlurPlane(xc, xc, into: out, height: h, width: w)
        case 3: ssimBlurPlane(yc, yc, into: out, height: h, width: w)
        default: ssimBlurPlane(xc, yc, into: out, height: h, width: w)
        }
    }
}

/// out = G ⊛ (a · b) (b nil: G ⊛ a) on one H×W plane, zero padded, same size. Horizontal pass
/// row by row through a zero-bordered row buffer, eight columns at a time, then the vertical pass
/// as 11 row-axpys per output row.
func ssimBlurPlane(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>?,
                   into out: UnsafeMutablePointer<Float>, height h: Int, width w: Int) {
    let g = Kernels.ssimGaussian, r = Kernels.ssimWindowSize / 2
    let rowLength = w + 2 * r + 8
    let scratch = UnsafeMutablePointer<Float>.allocate(capacity: h * w + rowLength)
    defer { scratch.deallocate() }
    let horizontal = scratch, row = scratch + h * w
    row.initialize(repeating: 0, count: rowLength)
    let rawRow = UnsafeRawPointer(row)
    for yy in 0..<h {
        let src = a + yy * w
        if let b {
            let other = b + yy * w
            for x in 0..<w { row[r + x] = src[x] * other[x] }
        } else {
            (row + r).update(from: src, count: w)
        }
        let dst = horizontal + yy * w
        var x = 0
        while x + 8 <= w {
            var acc = ConvLanes(repeating: 0)
            for i in 0...(2 * r) {
                acc += g[i] * rawRow.loadUnaligned(fromByteOffset: (x + i) * 4, as: ConvLanes.self)
            }
            UnsafeMutableRawPointer(dst).storeBytes(of: acc, toByteOffset: x * 4, as: ConvLanes.self)
            x += 8
        }
        while x < w {
            var acc: Float = 0
            for i in 0...(2 * r) { acc += g[i] * row[x + i] }
            dst[x] = acc
            x += 1
        }
    }
    for yy in 0..<h {
        let dst = out + yy * w
        dst.update(repeating: 0, count: w)
        for i in 0...(2 * r) {
            let source = yy + i - r
            if source < 0 || source >= h { continue }
            let gi = g[i]
            convLanes(dst, horizontal + source * w, w) { acc, v in acc + gi * v } tail: { $0 + gi * $1 }
        }
    }
}

@inline(__always)
func ssimValue(_ mx: Float, _ my: Float, _ exx: Float, _ eyy: Float, _ exy: Float) -> Float {
    let c1 = Kernels.ssimC1, c2 = Kernels.ssimC2
    let sxx = exx - mx * mx, syy = eyy - my * my, sxy = exy - mx * my
    return ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
}

/// ∂SSIM/∂(μx, μy, E[x²], E[y²], E[xy]) at one pixel. With A1 = 2μxμy + C1, A2 = 2σxy + C2,
/// B1 = μx² + μy² + C1, B2 = σx² + σy² + C2 and SSIM = A1·A2 / (B1·B2).
@inline(__always)
func ssimPartials(_ mx: Float, _ my: Float, _ exx: Float, _ eyy: Float, _ exy: Float)
    -> (muX: Float, muY: Float, xx: Float, yy: Float, xy: Float) {
    let c1 = Kernels.ssimC1, c2 = Kernels.ssimC2
    let sxx = exx - mx * mx, syy = eyy - my * my, sxy = exy - mx * my
    let a1 = 2 * mx * my + c1, a2 = 2 * sxy + c2
    let b1 = mx * mx + my * my + c1, b2 = sxx + syy + c2
    let d = 1 / (b1 * b2)
    let s = a1 * a2 * d
    let dA1 = a2 * d, dA2 = a1 * d, dB1 = -s / b1, dB2 = -s / b2
    // σxy = E[xy] − μxμy and σx² = E[x²] − μx² bring in the μ terms of A2 and B2.
    let muX = 2 * my * (dA1 - dA2) + 2 * mx * (dB1 - dB2)
    let muY = 2 * mx * (dA1 - dA2) + 2 * my * (dB1 - dB2)
    return (muX, muY, dB2, dB2, 2 * dA2)
}
