import PGKernels
import PGTensor
import Testing

/// ColorLUT.apply against an obvious trilinear lookup in Double.
struct ColorLUTTests {
    static func reference(_ lut: ColorLUT, _ rgb: [Double]) -> [Double] {
        let n = lut.size
        func entry(_ r: Int, _ g: Int, _ b: Int, _ c: Int) -> Double { Double(lut.table[((b * n + g) * n + r) * 3 + c]) }
        let lo = [Double(lut.domainMin.x), Double(lut.domainMin.y), Double(lut.domainMin.z)]
        let hi = [Double(lut.domainMax.x), Double(lut.domainMax.y), Double(lut.domainMax.z)]
        let top = Double(n - 1)
        var p = [Double](repeating: 0, count: 3)
        for c in 0..<3 {
            let scaled: Double = (rgb[c] - lo[c]) / (hi[c] - lo[c]) * top
            p[c] = min(max(scaled, 0), top)
        }
        let i0: [Int] = p.map { min(Int($0), n - 1) }
        let i1: [Int] = i0.map { min($0 + 1, n - 1) }
        let f = (0..<3).map { p[$0] - Double(i0[$0]) }
        return (0..<3).map { c in
            var v = 0.0
            for (dr, wr) in [(i0[0], 1 - f[0]), (i1[0], f[0])] {
                for (dg, wg) in [(i0[1], 1 - f[1]), (i1[1], f[1])] {
                    for (db, wb) in [(i0[2], 1 - f[2]), (i1[2], f[2])] { v += wr * wg * wb * entry(dr, dg, db, c) }
                }
            }
            return v
        }
    }

    @Test func matchesTheTrilinearReferenceInsideAndOutsideTheDomain() {
        var rng = SplitMix64(seed: 11)
        let n = 7
        let table = (0..<(n * n * n * 3)).map { _ in Float.random(in: 0...1, using: &rng) }
        let lut = ColorLUT(size: n, table: table, domainMin: SIMD3(-0.1, 0, 0.05), domainMax: SIMD3(1, 1.2, 0.9))
        let (h, w) = (5, 9)
        let image = Tensor(shape: [3, h, w], scalars: (0..<(3 * h * w)).map { _ in Float.random(in: -0.2...1.2, using: &rng) })
        let out = lut.apply(image, strength: 0.75)
        for y in 0..<h { for x in 0..<w {
            let rgb = (0..<3).map { Double(image[$0, y, x]) }
            let graded = Self.reference(lut, rgb)
            for c in 0..<3 {
                let want = rgb[c] + 0.75 * (graded[c] - rgb[c])
                #expect(abs(Double(out[c, y, x]) - want) < 1e-5, "seed 11, pixel \(x),\(y) channel \(c)")
            }
        } }
    }

    @Test func anIdentityLUTReturnsTheImage() {
        let n = 5
        var table: [Float] = []
        for b in 0..<n { for g in 0..<n { for r in 0..<n { table += [r, g, b].map { Float($0) / Float(n - 1) } } } }
        var rng = SplitMix64(seed: 4)
        let image = Tensor(shape: [3, 4, 4], scalars: (0..<48).map { _ in Float.random(in: 0...1, using: &rng) })
        let out = ColorLUT(size: n, table: table).apply(image)
        #expect(zip(out.scalars, image.scalars).allSatisfy { abs($0 - $1) < 1e-6 })
    }
}
