import Foundation
@testable import PGKernels
import PGTensor
import Testing

/// The built-in expression encoder: its VJP against central differences (Double), its forward
/// against a slow reference written from the doc comment, and the invariances it promises.
@Suite struct ExpressionEncoderTests {
    static var small: ExpressionEncoder.Settings {
        var s = ExpressionEncoder.Settings()
        s.size = 16; s.cells = 4; s.blur = 1.0
        return s
    }

    /// A face-like test image: a bright disc with two dark eyes and a mouth bar of height `mouth`.
    static func face(_ n: Int, mouth: Double, tint: SIMD3<Float> = SIMD3(1, 0.8, 0.7), seed: UInt64 = 1) -> Tensor {
        var rng = FieldRandom(seed)
        var t = Tensor(zeros: [3, n, n])
        for y in 0..<n { for x in 0..<n {
            let u = (Double(x) + 0.5) / Double(n) - 0.5, v = (Double(y) + 0.5) / Double(n) - 0.5
            var l = u * u + v * v < 0.16 ? 0.8 : 0.2
            for ex in [-0.15, 0.15] where (u - ex) * (u - ex) + (v + 0.1) * (v + 0.1) < 0.004 { l = 0.1 }
            if abs(u) < 0.15 && abs(v - 0.18) < mouth { l = 0.05 }
            l += 0.02 * rng.uniform(-1, 1)
            for c in 0..<3 { t.scalars[c * n * n + y * n + x] = Float(l) * tint[c] }
        } }
        return t
    }

    @Test func theVJPMatchesCentralDifferences() {
        let s = Self.small
        let image = Self.face(24, mouth: 0.05)
        let box = SIMD4<Double>(2.3, 1.7, 21.9, 21.1)
        var rng = FieldRandom(4)
        let cot = rng.floats(ExpressionEncoder.count(s))
        let saved = ExpressionEncoder.encode(image, box: box, settings: s)
        let grad = ExpressionEncoder.encodeVJP(saved, cotangent: cot, settings: s)
        func f(_ img: Tensor) -> Double {
            zip(ExpressionEncoder.encode(img, box: box, settings: s).features, cot).map { Double($0) * Double($1) }.reduce(0, +)
        }
        var checked = 0
        for _ in 0..<40 {
            let i = rng.int(image.count)
            var a = image, b = image
            let h: Float = 1e-2
            a.scalars[i] += h; b.scalars[i] -= h
            let numeric = (f(a) - f(b)) / Double(2 * h)
            let analytic = Double(grad.scalars[i])
            #expect(abs(numeric - analytic) <= 2e-2 * max(abs(numeric), 0.05), "pixel \(i): VJP \(analytic), differences \(numeric)")
            if abs(numeric) > 1e-3 { checked += 1 }
        }
        #expect(checked > 5, "the probed pixels should matter")
    }

    /// The forward written out the slow way: Double everywhere, no shared helpers.
    static func reference(_ img: Tensor, box: SIMD4<Double>, _ s: ExpressionEncoder.Settings) -> [Double] {
        let h = img.shape[1], w = img.shape[2], n = s.size
        func luma(_ y: Int, _ x: Int) -> Double {
            let l: [Double] = [0.299, 0.587, 0.114]
            return (0..<3).map { l[$0] * Double(img.scalars[$0 * h * w + y * w + x]) }.reduce(0, +)
        }
        var crop = [[Double]](repeating: [Double](repeating: 0, count: n), count: n)
        for i in 0..<n { for j in 0..<n {
            let x = min(max(box.x + (Double(j) + 0.5) * (box.z - box.x) / Double(n) - 0.5, 0), Double(w - 1))
            let y = min(max(box.y + (Double(i) + 0.5) * (box.w - box.y) / Double(n) - 0.5, 0), Double(h - 1))
            let x0 = Int(x), y0 = Int(y), x1 = min(x0 + 1, w - 1), y1 = min(y0 + 1, h - 1)
            let fx = x - Double(x0), fy = y - Double(y0)
            crop[i][j] = (1 - fx) * (1 - fy) * luma(y0, x0) + fx * (1 - fy) * luma(y0, x1) + (1 - fx) * fy * luma(y1, x0) + fx * fy * luma(y1, x1)
        } }
        let r = Int((3 * s.blur).rounded(.up))
        let k = (-r...r).map { exp(-Double($0 * $0) / (2 * s.blur * s.blur)) }
        let ks = k.reduce(0, +)
        func clampI(_ v: Int) -> Int { min(n - 1, max(0, v)) }
        var blurred = crop
        for i in 0..<n { for j in 0..<n {
            var v = 0.0
            for a in -r...r { for b in -r...r { v += k[a + r] * k[b + r] / (ks * ks) * crop[clampI(i + a)][clampI(j + b)] } }
            blurred[i][j] = v
        } }
        let cs = n / s.cells
        var A = [Double](repeating: 0, count: s.cells * s.cells), B = A, C = A
        for i in 0..<n { for j in 0..<n {
            let gx = 0.5 * (blurred[i][clampI(j + 1)] - blurred[i][clampI(j - 1)])
            let gy = 0.5 * (blurred[clampI(i + 1)][j] - blurred[clampI(i - 1)][j])
            let q = (i / cs) * s.cells + j / cs
            A[q] += gx * gx / Double(cs * cs); B[q] += gx * gy / Double(cs * cs); C[q] += gy * gy / Double(cs * cs)
        } }
        let m = zip(A, C).map(+).reduce(0, +) / Double(A.count) + 1e-12
        var out: [Double] = []
        for q in A.indices {
            let d: Double = A[q] + C[q] + 0.05 * m
            out.append((A[q] - C[q]) / d)
            out.append(2 * B[q] / d)
        }
        return out
    }

    @Test func theForwardMatchesTheSlowReference() {
        let s = Self.small
        let image = Self.face(24, mouth: 0.04)
        let box = SIMD4<Double>(-3, 1.5, 26, 23)   // partly outside: clamped
        let got = ExpressionEncoder.encode(image, box: box, settings: s).features
        let want = Self.reference(image, box: box, s)
        let err = zip(got, want).map { abs(Double($0) - $1) }.max()!
        #expect(err < 1e-4, "largest feature difference \(err)")
    }

    @Test func colourDropsOutAndTheMouthDoesNot() {
        let s = ExpressionEncoder.Settings()
        let box = SIMD4<Double>(0, 0, 160, 160)
        func distance(_ a: Tensor, _ b: Tensor) -> Double {
            let fa = ExpressionEncoder.encode(a, box: box, settings: s).features, fb = ExpressionEncoder.encode(b, box: box, settings: s).features
            return zip(fa, fb).map { Double($0 - $1) * Double($0 - $1) }.reduce(0, +) / Double(fa.count)
        }
        let closed = Self.face(160, mouth: 0.015), open = Self.face(160, mouth: 0.06)
        let recoloured = Self.face(160, mouth: 0.015, tint: SIMD3(0.3, 0.5, 0.9))
        var brighter = closed
        for i in brighter.scalars.indices { brighter.scalars[i] = 0.5 * brighter.scalars[i] + 0.3 }
        let mouth = distance(closed, open)
        #expect(distance(closed, recoloured) < 0.05 * mouth, "recolouring \(distance(closed, recoloured)) vs mouth \(mouth)")
        #expect(distance(closed, brighter) < 0.05 * mouth, "contrast and brightness \(distance(closed, brighter)) vs mouth \(mouth)")
    }
}
