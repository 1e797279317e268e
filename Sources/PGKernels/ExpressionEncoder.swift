import Foundation
import PGTensor

/// pgflow's built-in expression encoder E for ExprLoss (PortraitGen §3.3.1 uses EMOCA, whose
/// weights cannot be had here): a weights-free, differentiable descriptor of the *shape* of a
/// face's edges — where the mouth, eyes and brows are and which way their edges run — that
/// ignores colour, brightness, contrast and fine texture, so a stylised or relit frame with the
/// same expression encodes close to the original.
///
/// Forward (`encode`), on a head box of the image:
/// 1. crop: the box resampled bilinearly to size × size, as luminance 0.299R + 0.587G + 0.114B
///    (colour drops out here);
/// 2. blur: a Gaussian of σ = `blur` crop pixels (brush strokes and skin texture drop out);
/// 3. gradients gx, gy (central differences) and the structure tensor (gx², gx·gy, gy²),
///    averaged over cells × cells cells;
/// 4. per cell k with energy Sₖ = Aₖ + Cₖ: the edge orientation ((A − C)/(S + ε), 2B/(S + ε)),
///    the doubled-angle vector of the dominant edge scaled by how coherent it is — invariant to
///    contrast and to light/dark inversion — with ε = 0.05·mean(S) so flat cells say "no edge"
///    rather than noise.
/// The features are those 2·cells² numbers. Opening the mouth, closing an eye or raising a brow
/// moves and turns edges between cells; a uniform colour change changes none of them. (An edge
/// *energy* feature per cell was measured too and dropped: brush strokes and texture move it more
/// than expressions do — `pgbench expression`.)
///
/// Backward (`encodeVJP`) is reverse mode through the same steps back to the image; the tests
/// check it against central differences and the forward against a plain reference.
public enum ExpressionEncoder {
    public struct Settings: Sendable, Equatable {
        public var size = 128
        public var cells = 32
        public var blur = 3.0
        public init() {}
    }

    public static let lumaWeights: [Float] = [0.299, 0.587, 0.114]

    public struct Saved: Sendable {
        var box: SIMD4<Double>
        var height: Int, width: Int
        var gx: [Float], gy: [Float]
        var a: [Double], b: [Double], c: [Double]   // per cell
        public var features: [Float]
    }

    /// Feature count for `settings`.
    public static func count(_ s: Settings) -> Int { 2 * s.cells * s.cells }

    /// Encodes the box [x0, y0, x1, y1] (pixels) of `image` [3, H, W].
    public static func encode(_ image: Tensor, box: SIMD4<Double>, settings s: Settings = Settings()) -> Saved {
        precondition(image.rank == 3 && image.shape[0] == 3, "the expression encoder takes an RGB image [3, H, W]")
        precondition(s.size % s.cells == 0, "size should be a multiple of cells")
        let h = image.shape[1], w = image.shape[2], n = s.size
        // 1. Luminance crop, 2. blur, 3. gradients.
        let crop = lumaCrop(image, box: box, size: n)
        let blurred = blur(crop, size: n, sigma: s.blur)
        var gx = [Float](repeating: 0, count: n * n), gy = gx
        for i in 0..<n { for j in 0..<n {
            gx[i * n + j] = 0.5 * (blurred[i * n + min(n - 1, j + 1)] - blurred[i * n + max(0, j - 1)])
            gy[i * n + j] = 0.5 * (blurred[min(n - 1, i + 1) * n + j] - blurred[max(0, i - 1) * n + j])
        } }
        // Structure tensor per cell.
        let k = s.cells, cs = n / k
        var a = [Double](repeating: 0, count: k * k), b = a, c = a
        for i in 0..<n { for j in 0..<n {
            let cell = (i / cs) * k + j / cs
            let x = Double(gx[i * n + j]), y = Double(gy[i * n + j])
            a[cell] += x * x; b[cell] += x * y; c[cell] += y * y
        } }
        let area = Double(cs * cs)
        for q in 0..<(k * k) { a[q] /= area; b[q] /= area; c[q] /= area }
        return Saved(box: box, height: h, width: w, gx: gx, gy: gy, a: a, b: b, c: c, features: features(a, b, c))
    }

    static func features(_ a: [Double], _ b: [Double], _ c: [Double]) -> [Float] {
        let cells = a.count
        let m = zip(a, c).map(+).reduce(0, +) / Double(cells) + 1e-12
        let e = 0.05 * m
        var f = [Float](repeating: 0, count: 2 * cells)
        for q in 0..<cells {
            let d = a[q] + c[q] + e
            f[2 * q] = Float((a[q] - c[q]) / d)
            f[2 * q + 1] = Float(2 * b[q] / d)
        }
        return f
    }

    /// The gradient of ⟨features, cotangent⟩ with respect to the image, [3, H, W].
    public static func encodeVJP(_ saved: Saved, cotangent g: [Float], settings s: Settings = Settings()) -> Tensor {
        let n = s.size, k = s.cells, cs = n / k, cells = k * k
        precondition(g.count == 2 * cells, "the cotangent should have \(2 * cells) values")
        let (a, b, c) = (saved.a, saved.b, saved.c)
        // 4. Features → cell tensors.
        let m = zip(a, c).map(+).reduce(0, +) / Double(cells) + 1e-12
        let e = 0.05 * m
        var gE = 0.0
        var dA = [Double](repeating: 0, count: cells), dB = dA, dC = dA
        for q in 0..<cells {
            let d = a[q] + c[q] + e
            let g1 = Double(g[2 * q]), g2 = Double(g[2 * q + 1])
            let viaD = -g1 * (a[q] - c[q]) / (d * d) - g2 * 2 * b[q] / (d * d)
            gE += viaD
            dA[q] = g1 / d + viaD
            dC[q] = -g1 / d + viaD
            dB[q] = 2 * g2 / d
        }
        // e = 0.05·m and m = mean(A + C): every cell's A and C feed it.
        let shared = 0.05 * gE / Double(cells)
        for q in 0..<cells { dA[q] += shared; dC[q] += shared }
        // 3. Cells → gradients → blurred crop.
        let area = Double(cs * cs)
        var dBlurred = [Float](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0..<n {
            let cell = (i / cs) * k + j / cs
            let x = Double(saved.gx[i * n + j]), y = Double(saved.gy[i * n + j])
            let dgx = Float((2 * x * dA[cell] + y * dB[cell]) / area)
            let dgy = Float((x * dB[cell] + 2 * y * dC[cell]) / area)
            dBlurred[i * n + min(n - 1, j + 1)] += 0.5 * dgx
            dBlurred[i * n + max(0, j - 1)] -= 0.5 * dgx
            dBlurred[min(n - 1, i + 1) * n + j] += 0.5 * dgy
            dBlurred[max(0, i - 1) * n + j] -= 0.5 * dgy
        } }
        // 2. Blur (its transpose), 1. the crop back into the image's three channels.
        let dCrop = blurTransposed(dBlurred, size: n, sigma: s.blur)
        let h = saved.height, w = saved.width
        var out = Tensor(zeros: [3, h, w])
        out.withUnsafeMutableBufferPointer { o in
            for i in 0..<n { for j in 0..<n {
                let d = dCrop[i * n + j]
                if d == 0 { continue }
                samples(i, j, box: saved.box, size: n, height: h, width: w) { idx, wt in
                    for ch in 0..<3 { o[ch * h * w + idx] += wt * lumaWeights[ch] * d }
                }
            } }
        }
        return out
    }

    // MARK: stages

    /// The box of `image` [C, H, W] resampled bilinearly to [C, size, size] (what an external
    /// expression encoder plugin is given).
    public static func crop(_ image: Tensor, box: SIMD4<Double>, size n: Int) -> Tensor {
        let c = image.shape[0], h = image.shape[1], w = image.shape[2]
        var out = Tensor(zeros: [c, n, n])
        image.withUnsafeBufferPointer { img in
            out.withUnsafeMutableBufferPointer { o in
                for i in 0..<n { for j in 0..<n {
                    samples(i, j, box: box, size: n, height: h, width: w) { idx, wt in
                        for ch in 0..<c { o[ch * n * n + i * n + j] += wt * img[ch * h * w + idx] }
                    }
                } }
            }
        }
        return out
    }

    /// The transpose of `crop`: a gradient on the crop [C, size, size] back onto the image [C, H, W].
    public static func cropVJP(_ g: Tensor, box: SIMD4<Double>, height h: Int, width w: Int) -> Tensor {
        let c = g.shape[0], n = g.shape[1]
        var out = Tensor(zeros: [c, h, w])
        g.withUnsafeBufferPointer { gv in
            out.withUnsafeMutableBufferPointer { o in
                for i in 0..<n { for j in 0..<n {
                    samples(i, j, box: box, size: n, height: h, width: w) { idx, wt in
                        for ch in 0..<c { o[ch * h * w + idx] += wt * gv[ch * n * n + i * n + j] }
                    }
                } }
            }
        }
        return out
    }

    /// The box of `image` resampled bilinearly to size × size as luminance (row-major).
    public static func lumaCrop(_ image: Tensor, box: SIMD4<Double>, size n: Int) -> [Float] {
        let h = image.shape[1], w = image.shape[2]
        var crop = [Float](repeating: 0, count: n * n)
        image.withUnsafeBufferPointer { img in
            for i in 0..<n { for j in 0..<n {
                var v: Float = 0
                samples(i, j, box: box, size: n, height: h, width: w) { idx, wt in
                    v += wt * (lumaWeights[0] * img[idx] + lumaWeights[1] * img[h * w + idx] + lumaWeights[2] * img[2 * h * w + idx])
                }
                crop[i * n + j] = v
            } }
        }
        return crop
    }

    /// The four bilinear taps of crop pixel (i, j), handed to `body` as (image index, weight)
    /// (positions clamped to the image). A closure, not an array: it runs for every crop pixel.
    @inline(__always)
    static func samples(_ i: Int, _ j: Int, box: SIMD4<Double>, size n: Int, height h: Int, width w: Int,
                        _ body: (Int, Float) -> Void) {
        let x = box.x + (Double(j) + 0.5) * (box.z - box.x) / Double(n) - 0.5
        let y = box.y + (Double(i) + 0.5) * (box.w - box.y) / Double(n) - 0.5
        let cx = min(max(x, 0), Double(w - 1)), cy = min(max(y, 0), Double(h - 1))
        let x0 = Int(cx.rounded(.down)), y0 = Int(cy.rounded(.down))
        let x1 = min(x0 + 1, w - 1), y1 = min(y0 + 1, h - 1)
        let fx = Float(cx - Double(x0)), fy = Float(cy - Double(y0))
        body(y0 * w + x0, (1 - fx) * (1 - fy))
        body(y0 * w + x1, fx * (1 - fy))
        body(y1 * w + x0, (1 - fx) * fy)
        body(y1 * w + x1, fx * fy)
    }

    static func gaussian(_ sigma: Double) -> [Float] {
        guard sigma > 0 else { return [1] }
        let r = max(1, Int((3 * sigma).rounded(.up)))
        var k = (-r...r).map { Float(exp(-Double($0 * $0) / (2 * sigma * sigma))) }
        let sum = k.reduce(0, +)
        for i in k.indices { k[i] /= sum }
        return k
    }

    /// Separable Gaussian blur with clamped borders.
    static func blur(_ x: [Float], size n: Int, sigma: Double) -> [Float] {
        let k = gaussian(sigma), r = k.count / 2
        var rows = [Float](repeating: 0, count: n * n), out = rows
        for i in 0..<n { for j in 0..<n {
            var v: Float = 0
            for t in -r...r { v += k[t + r] * x[i * n + min(n - 1, max(0, j + t))] }
            rows[i * n + j] = v
        } }
        for i in 0..<n { for j in 0..<n {
            var v: Float = 0
            for t in -r...r { v += k[t + r] * rows[min(n - 1, max(0, i + t)) * n + j] }
            out[i * n + j] = v
        } }
        return out
    }

    /// The transpose of `blur` (clamping makes it differ from the blur at the borders).
    static func blurTransposed(_ g: [Float], size n: Int, sigma: Double) -> [Float] {
        let k = gaussian(sigma), r = k.count / 2
        var rows = [Float](repeating: 0, count: n * n), out = rows
        for i in 0..<n { for j in 0..<n {
            let v = g[i * n + j]
            if v == 0 { continue }
            for t in -r...r { rows[min(n - 1, max(0, i + t)) * n + j] += k[t + r] * v }
        } }
        for i in 0..<n { for j in 0..<n {
            let v = rows[i * n + j]
            if v == 0 { continue }
            for t in -r...r { out[i * n + min(n - 1, max(0, j + t))] += k[t + r] * v }
        } }
        return out
    }
}
