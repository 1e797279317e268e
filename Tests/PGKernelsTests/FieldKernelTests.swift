import Foundation
import PGTensor
import PGKernels
import Testing

/// Seeded numbers for the field tests (SplitMix64); the seed goes into every failure message.
struct FieldRandom {
    var bits: SplitMix64
    init(_ seed: UInt64) { bits = SplitMix64(seed: seed) }
    mutating func next() -> UInt64 { bits.next() }
    mutating func uniform(_ lo: Double = 0, _ hi: Double = 1) -> Double {
        lo + (hi - lo) * Double(next() >> 11) / Double(1 << 53)
    }
    mutating func floats(_ n: Int, _ lo: Double = -1, _ hi: Double = 1) -> [Float] { (0..<n).map { _ in Float(uniform(lo, hi)) } }
    mutating func int(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

/// Double-precision helpers the references use.
enum Ref {
    typealias M3 = [[Double]]
    static func mul(_ a: M3, _ b: M3) -> M3 {
        (0..<3).map { i in (0..<3).map { j in (0..<3).reduce(0) { $0 + a[i][$1] * b[$1][j] } } }
    }
    static func transpose(_ a: M3) -> M3 { (0..<3).map { i in (0..<3).map { j in a[j][i] } } }
    static func rodrigues(_ w: [Double]) -> M3 {
        let t = (w[0] * w[0] + w[1] * w[1] + w[2] * w[2]).squareRoot()
        if t < 1e-12 { return [[1, 0, 0], [0, 1, 0], [0, 0, 1]] }
        let k = w.map { $0 / t }
        let kx: M3 = [[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]]
        let kk = mul(kx, kx)
        return (0..<3).map { i in (0..<3).map { j in (i == j ? 1 : 0) + sin(t) * kx[i][j] + (1 - cos(t)) * kk[i][j] } }
    }
    /// Eigen-decomposition of a symmetric 3×3 matrix by cyclic Jacobi rotations.
    static func symmetricEigen(_ a0: M3) -> (values: [Double], vectors: M3) {
        var a = a0
        var v: M3 = [[1, 0, 0], [0, 1, 0], [0, 0, 1]]
        for _ in 0..<60 {
            for (p, q) in [(0, 1), (0, 2), (1, 2)] where abs(a[p][q]) > 1e-300 {
                let theta = 0.5 * atan2(2 * a[p][q], a[q][q] - a[p][p])
                let c = cos(theta), s = sin(theta)
                for k in 0..<3 {
                    let akp = a[k][p], akq = a[k][q]
                    a[k][p] = c * akp - s * akq; a[k][q] = s * akp + c * akq
                }
                for k in 0..<3 {
                    let apk = a[p][k], aqk = a[q][k]
                    a[p][k] = c * apk - s * aqk; a[q][k] = s * apk + c * aqk
                }
                for k in 0..<3 {
                    let vkp = v[k][p], vkq = v[k][q]
                    v[k][p] = c * vkp - s * vkq; v[k][q] = s * vkp + c * vkq
                }
            }
        }
        return ([a[0][0], a[1][1], a[2][2]], v)
    }
    /// The orthogonal polar factor M·(MᵀM)^(−½), by eigen-decomposition: a different route from
    /// the kernel's Newton iteration.
    static func polar(_ m: M3) -> M3 {
        let (vals, vecs) = symmetricEigen(mul(transpose(m), m))
        let inv: M3 = (0..<3).map { i in (0..<3).map { j in (0..<3).reduce(0) { $0 + vecs[i][$1] / vals[$1].squareRoot() * vecs[j][$1] } } }
        return mul(m, inv)
    }
    static func rotation(quaternion q0: [Double]) -> M3 {
        let n = (q0.reduce(0) { $0 + $1 * $1 }).squareRoot()
        let (w, x, y, z) = (q0[0] / n, q0[1] / n, q0[2] / n, q0[3] / n)
        return [[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]]
    }
}

/// A random skinned mesh and embedding: near-rotational per-vertex transforms (blends of two
/// rotations, like LBS produces) on random faces.
struct RandomSurface {
    var mesh: SkinnedMesh
    var faces: [Int32]
    var embedding: UVEmbedding
    var offsets: [Float]
    var baseQuats: [Float]

    init(seed: UInt64, vertices v: Int = 12, faceCount f: Int = 10, gaussians n: Int = 40) {
        var rng = FieldRandom(seed)
        let rotations = (0..<3).map { _ in Ref.rodrigues((0..<3).map { _ in rng.uniform(-1.2, 1.2) }) }
        var transforms: [Float] = []
        for _ in 0..<v {
            let a = rng.int(3), b = rng.int(3), w = rng.uniform(0.2, 0.8)
            for r in 0..<3 {
                for c in 0..<3 { transforms.append(Float(w * rotations[a][r][c] + (1 - w) * rotations[b][r][c])) }
                transforms.append(Float(rng.uniform(-0.5, 0.5)))
            }
        }
        mesh = SkinnedMesh(restVertices: rng.floats(3 * v), vertexTransforms: transforms)
        faces = []
        for _ in 0..<f {
            var corners: [Int32] = []
            while corners.count < 3 { let c = Int32(rng.int(v)); if !corners.contains(c) { corners.append(c) } }
            faces += corners
        }
        var gf: [Int32] = [], bary: [Float] = []
        for _ in 0..<n {
            gf.append(Int32(rng.int(f)))
            let w = (0..<3).map { _ in rng.uniform(0.05, 1) }
            bary += w.map { Float($0 / w.reduce(0, +)) }
        }
        embedding = UVEmbedding(resolution: 8, faces: gf, barycentrics: bary, texels: (0..<n).map(Int32.init), edges: [])
        offsets = rng.floats(3 * n, -0.1, 0.1)
        baseQuats = rng.floats(4 * n)
    }
}

@Suite struct FieldKernelTests {
    @Test(arguments: [UInt64(1), 2, 3])
    func surfaceGaussiansMatchASlowReference(seed: UInt64) {
        let s = RandomSurface(seed: seed)
        let (means, quats, _) = SurfaceGaussians.deform(embedding: s.embedding, faces: s.faces, mesh: s.mesh,
                                                        offsets: s.offsets, baseQuats: s.baseQuats, threads: 2)
        for g in 0..<s.embedding.count {
            let f = Int(s.embedding.faces[g])
            var l: Ref.M3 = [[0, 0, 0], [0, 0, 0], [0, 0, 0]], t = [0.0, 0, 0], p = [0.0, 0, 0]
            for k in 0..<3 {
                let vi = Int(s.faces[3 * f + k]), w = Double(s.embedding.barycentrics[3 * g + k])
                for r in 0..<3 {
                    for c in 0..<3 { l[r][c] += w * Double(s.mesh.vertexTransforms[12 * vi + 4 * r + c]) }
                    t[r] += w * Double(s.mesh.vertexTransforms[12 * vi + 4 * r + 3])
                    p[r] += w * Double(s.mesh.restVertices[3 * vi + r])
                }
            }
            for r in 0..<3 { p[r] += Double(s.offsets[3 * g + r]) }
            for r in 0..<3 {
                let expected = (0..<3).reduce(t[r]) { $0 + l[r][$1] * p[$1] }
                #expect(abs(Double(means[3 * g + r]) - expected) < 1e-5, "seed \(seed) Gaussian \(g) mean[\(r)]")
            }
            // The rotation the output quaternion encodes is polar(L)·R(base).
            let expectedR = Ref.mul(Ref.polar(l), Ref.rotation(quaternion: (0..<4).map { Double(s.baseQuats[4 * g + $0]) }))
            let gotR = Ref.rotation(quaternion: (0..<4).map { Double(quats[4 * g + $0]) })
            let err = (0..<3).flatMap { r in (0..<3).map { c in abs(gotR[r][c] - expectedR[r][c]) } }.max()!
            #expect(err < 1e-5, "seed \(seed) Gaussian \(g): rotation off by \(err)")
            // … and the base's norm is kept (the rasterizer normalises on use).
            let qn = (0..<4).reduce(0.0) { $0 + Double(quats[4 * g + $1] * quats[4 * g + $1]) }
            let bn = (0..<4).reduce(0.0) { $0 + Double(s.baseQuats[4 * g + $1] * s.baseQuats[4 * g + $1]) }
            #expect(abs(qn - bn) < 1e-5 * max(1, bn), "seed \(seed) Gaussian \(g): |q|² \(qn) vs |base|² \(bn)")
        }
    }

    @Test(arguments: [UInt64(11), 12])
    func surfaceGaussiansVJPMatchesFiniteDifferences(seed: UInt64) {
        let s = RandomSurface(seed: seed)
        var rng = FieldRandom(seed &+ 1000)
        let n = s.embedding.count, v = s.mesh.restVertices.count / 3
        let wMeans = rng.floats(3 * n), wQuats = rng.floats(4 * n)
        func loss(_ s: RandomSurface) -> Double {
            let (m, q, _) = SurfaceGaussians.deform(embedding: s.embedding, faces: s.faces, mesh: s.mesh,
                                                    offsets: s.offsets, baseQuats: s.baseQuats, threads: 1)
            return zip(m, wMeans).reduce(0.0) { $0 + Double($1.0) * Double($1.1) } + zip(q, wQuats).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        let (_, _, tape) = SurfaceGaussians.deform(embedding: s.embedding, faces: s.faces, mesh: s.mesh,
                                                   offsets: s.offsets, baseQuats: s.baseQuats, threads: 2)
        let g = SurfaceGaussians.deformVJP(tape, embedding: s.embedding, faces: s.faces, vertexCount: v,
                                           vMeans: wMeans, vQuats: wQuats, threads: 2)
        // The loss is linear in every one of these inputs, so a large step is exact up to rounding.
        let h: Float = 0.05
        for i in 0..<(3 * n) {
            var plus = s, minus = s
            plus.offsets[i] += h; minus.offsets[i] -= h
            let fd = (loss(plus) - loss(minus)) / Double(2 * h)
            #expect(abs(Double(g.vOffsets[i]) - fd) < 1e-3 * max(1, abs(fd)), "seed \(seed) offset \(i): \(g.vOffsets[i]) vs \(fd)")
        }
        for i in 0..<(4 * n) {
            var plus = s, minus = s
            plus.baseQuats[i] += h; minus.baseQuats[i] -= h
            let fd = (loss(plus) - loss(minus)) / Double(2 * h)
            #expect(abs(Double(g.vBaseQuats[i]) - fd) < 1e-3 * max(1, abs(fd)), "seed \(seed) base quat \(i): \(g.vBaseQuats[i]) vs \(fd)")
        }
        for i in 0..<(3 * v) {
            var plus = s, minus = s
            plus.mesh.restVertices[i] += h; minus.mesh.restVertices[i] -= h
            let fd = (loss(plus) - loss(minus)) / Double(2 * h)
            #expect(abs(Double(g.vDisplacement[i]) - fd) < 1e-3 * max(1, abs(fd)), "seed \(seed) rest vertex \(i): \(g.vDisplacement[i]) vs \(fd)")
        }
    }

    @Test(arguments: [UInt64(21), 22])
    func regularisersMatchReferencesAndFiniteDifferences(seed: UInt64) {
        var rng = FieldRandom(seed)
        let n = 30, c = 4
        let values = rng.floats(n * c)
        var edges: [Int32] = []
        for _ in 0..<45 { edges += [Int32(rng.int(n)), Int32(rng.int(n))] }
        // Laplacian against its definition.
        var expected = 0.0
        for e in 0..<45 {
            for k in 0..<c {
                let d = Double(values[Int(edges[2 * e]) * c + k]) - Double(values[Int(edges[2 * e + 1]) * c + k])
                expected += d * d
            }
        }
        expected /= Double(45 * c)
        #expect(abs(FieldRegularisers.laplacian(values, channels: c, edges: edges) - expected) < 1e-9, "seed \(seed)")
        #expect(FieldRegularisers.laplacian(values, channels: c, edges: []) == 0)

        let offsets = rng.floats(3 * n)
        // Log-scales spread around log(0.5) and kept clear of the bound by more than the step.
        var logScales = rng.floats(3 * n, -2, 0.5)
        for i in 0..<logScales.count where abs(exp(logScales[i]) - 0.5) < 0.02 { logScales[i] += 0.1 }
        let logits = rng.floats(n, -6, 6)
        let checks: [(String, [Float], ([Float]) -> Double, ([Float]) -> [Float])] = [
            ("laplacian", values, { FieldRegularisers.laplacian($0, channels: c, edges: edges) },
             { FieldRegularisers.laplacianVJP($0, channels: c, edges: edges, vLoss: 0.7) }),
            ("offset", offsets, { FieldRegularisers.offsetNorm($0) }, { FieldRegularisers.offsetNormVJP($0, vLoss: 0.7) }),
            ("scale", logScales, { FieldRegularisers.scaleHinge($0, bound: 0.5) },
             { FieldRegularisers.scaleHingeVJP($0, bound: 0.5, vLoss: 0.7) }),
            ("sparsity", logits, { FieldRegularisers.opacitySparsity($0) }, { FieldRegularisers.opacitySparsityVJP($0, vLoss: 0.7) }),
        ]
        let h: Float = 1e-3
        for (name, x, f, vjp) in checks {
            let g = vjp(x)
            for i in 0..<x.count {
                var plus = x, minus = x
                plus[i] += h; minus[i] -= h
                let fd = 0.7 * (f(plus) - f(minus)) / Double(plus[i] - minus[i])
                #expect(abs(Double(g[i]) - fd) < 2e-3 * max(1e-2, abs(fd)) + 1e-6, "seed \(seed) \(name)[\(i)]: \(g[i]) vs \(fd)")
            }
        }
        // Reference values.
        #expect(abs(FieldRegularisers.offsetNorm(offsets) - offsets.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(n)) < 1e-9)
        let above = logScales.map { Double(exp($0)) }.filter { $0 > 0.5 }
        #expect(abs(FieldRegularisers.scaleHinge(logScales, bound: 0.5) - above.reduce(0) { $0 + $1 - 0.5 } / Double(above.count)) < 1e-9)
        let o = logits.map { 1 / (1 + exp(-Double($0))) }
        #expect(abs(FieldRegularisers.opacitySparsity(logits) - o.reduce(0) { $0 + log($1) + log(1 - $1) } / Double(n)) < 1e-9)
    }

    @Test func scaleHingeIsZeroWithoutGradientWhenNothingExceedsTheBound() {
        let small = [Float](repeating: log(0.01), count: 12)
        #expect(FieldRegularisers.scaleHinge(small, bound: 0.02) == 0)
        #expect(FieldRegularisers.scaleHingeVJP(small, bound: 0.02, vLoss: 1).allSatisfy { $0 == 0 })
        #expect(FieldRegularisers.opacitySparsity([80, -80]).isFinite)
    }

    @Test(arguments: [UInt64(31), 32])
    func nearestNeighbourDistancesMatchBruteForce(seed: UInt64) {
        var rng = FieldRandom(seed)
        // Points on a squashed sphere (a surface, like the field's) plus a few exact duplicates.
        var points: [Float] = []
        for _ in 0..<600 {
            let z = rng.uniform(-1, 1), a = rng.uniform(0, 2 * Double.pi), r = (1 - z * z).squareRoot()
            points += [Float(0.2 * r * cos(a)), Float(0.3 * r * sin(a)), Float(0.1 * z)]
        }
        for i in 0..<5 { points += Array(points[(3 * i)..<(3 * i + 3)]) }
        let got = NearestNeighbours.meanSquaredDistance(points, k: 3, threads: 2)
        let n = points.count / 3
        for i in 0..<n {
            var d: [Double] = []
            for j in 0..<n where j != i {
                d.append((0..<3).reduce(0.0) { let x = Double(points[3 * i + $1] - points[3 * j + $1]); return $0 + x * x })
            }
            d.sort()
            let expected = (d[0] + d[1] + d[2]) / 3
            #expect(abs(Double(got[i]) - expected) <= 1e-5 * expected + 1e-12, "seed \(seed) point \(i): \(got[i]) vs \(expected)")
        }
    }
}
