import Foundation
import Testing
@testable import PGKernels

/// Scenes for the comparisons: (seed, Gaussians, channels, width, height, isotropic, opacity bias).
/// Odd sizes exercise partial tiles and partial 8-pixel groups; the high-opacity scene makes
/// pixels stop early (T·(1 − α) ≤ 1e-4); C = 64 is the largest channel count the node allows.
let comparisonScenes: [(seed: UInt64, n: Int, c: Int, w: Int, h: Int, iso: Bool, bias: Double)] = [
    (1, 70, 3, 41, 37, false, 1.0),
    (2, 60, 5, 35, 29, true, 1.0),
    (3, 80, 9, 48, 40, false, 4.0),
    (4, 40, 64, 24, 21, false, 2.0),
    (5, 50, 1, 33, 33, true, 3.0),
]

func fastRender(_ s: RefScene, depth: SplatDepthMode = .expected, threads: Int = 2,
                workspace: SplatWorkspace = SplatWorkspace()) -> (SplatImage, SplatTape) {
    SplatKernel.rasterize(s.splat, camera: s.camera.splat,
                    options: SplatOptions(background: s.background.map(Float.init), depthMode: depth, threads: threads),
                    workspace: workspace)
}

func randomCotangents(_ s: RefScene, seed: UInt64) -> (image: [Double], alpha: [Double], depth: [Double]) {
    var rng = SeededRandom(seed: seed)
    let hw = s.camera.width * s.camera.height
    // Float32-representable, so both sides see the same numbers.
    func r(_ n: Int, _ scale: Double) -> [Double] { (0..<n).map { _ in Double(Float(scale * rng.uniform(-1, 1))) } }
    return (r(s.channels * hw, 1), r(hw, 1), r(hw, 3))
}

@Suite("Splat kernel")
struct SplatTests {
    @Test func expNegIsAccurate() {
        // σ ≤ ln 255 ≈ 5.5 wherever α can reach 1/255. The polynomial is good to 1e-7; the Float32
        // product s·log₂e adds up to half an ulp of s·log₂e, i.e. ~1e-6 relative at s = 12.
        let xs = (0..<1200).map { Float($0) * 0.01 }
        var worst = 0.0, worstSmall = 0.0
        for base in stride(from: 0, to: xs.count, by: 8) {
            let v = Lanes(xs[base..<base + 8])
            let e = expNeg(v)
            for l in 0..<8 {
                let err = abs(Double(e[l]) / exp(-Double(v[l])) - 1)
                worst = max(worst, err)
                if v[l] <= 1 { worstSmall = max(worstSmall, err) }
            }
        }
        #expect(worstSmall < 3e-7, "relative error \(worstSmall) for s ≤ 1")
        #expect(worst < 1.5e-6, "relative error \(worst) for s ≤ 12")
    }

    @Test func projectionMatchesReference() {
        for (seed, iso) in [(UInt64(11), false), (12, true)] {
            let s = randomScene(seed: seed, count: 120, channels: 2, width: 64, height: 48, isotropic: iso)
            let p = SplatKernel.project(s.splat, camera: s.camera.splat)
            var culled = 0
            for i in 0..<s.count {
                let ref = refProject(raw: s.raw(i), isotropic: iso, camera: s.camera)
                #expect((p.radii[i] > 0) == (ref != nil), "seed \(seed): Gaussian \(i) culled by one side only")
                guard let ref, p.radii[i] > 0 else { culled += 1; continue }
                let got = [p.means2D[2 * i], p.means2D[2 * i + 1], p.conics[3 * i], p.conics[3 * i + 1],
                           p.conics[3 * i + 2], p.depths[i], p.opacities[i]].map(Double.init)
                for (k, (a, b)) in zip(got, ref.vector).enumerated() {
                    #expect(abs(a - b) <= 2e-5 * max(1, abs(b)), "seed \(seed): Gaussian \(i) output \(k): \(a) vs \(b)")
                }
            }
            #expect(culled > 0 && culled < s.count, "seed \(seed): the scene should cull some Gaussians, culled \(culled)")
        }
    }

    @Test func projectVJPMatchesFiniteDifferences() {
        for (seed, iso) in [(UInt64(21), false), (22, true)] {
            let s = randomScene(seed: seed, count: 60, channels: 1, width: 64, height: 64, isotropic: iso)
            var rng = SeededRandom(seed: seed &+ 100)
            let n = s.count
            let v2 = (0..<2 * n).map { _ in Double(Float(rng.uniform(-1, 1))) }
            let vc = (0..<3 * n).map { _ in Double(Float(rng.uniform(-1, 1))) }
            let vz = (0..<n).map { _ in Double(Float(rng.uniform(-1, 1))) }
            let vo = (0..<n).map { _ in Double(Float(rng.uniform(-1, 1))) }
            let g = SplatKernel.projectVJP(s.splat, camera: s.camera.splat, vMeans2D: v2.map(Float.init),
                                     vConics: vc.map(Float.init), vDepths: vz.map(Float.init),
                                     vOpacities: vo.map(Float.init))
            let fast = rawGradients(g, scene: s)
            for i in 0..<n {
                let raw = s.raw(i)
                guard refProject(raw: raw, isotropic: iso, camera: s.camera) != nil else {
                    #expect(fast[i].allSatisfy { $0 == 0 }, "seed \(seed): culled Gaussian \(i) has a gradient")
                    continue
                }
                let weights = [v2[2 * i], v2[2 * i + 1], vc[3 * i], vc[3 * i + 1], vc[3 * i + 2], vz[i], vo[i]]
                for p in 0..<raw.count {
                    let h = 1e-6 * max(1, abs(raw[p]))
                    var plus = raw, minus = raw
                    plus[p] += h
                    minus[p] -= h
                    guard let a = refProject(raw: plus, isotropic: iso, camera: s.camera),
                          let b = refProject(raw: minus, isotropic: iso, camera: s.camera) else { continue }
                    var fd = 0.0
                    for k in 0..<7 { fd += weights[k] * (a.vector[k] - b.vector[k]) / (2 * h) }
                    #expect(abs(fast[i][p] - fd) <= 2e-3 * max(abs(fd), 1) + 1e-4 * abs(fd),
                            "seed \(seed): Gaussian \(i) parameter \(p): \(fast[i][p]) vs finite difference \(fd)")
                }
            }
        }
    }

    @Test(arguments: comparisonScenes)
    func forwardMatchesReference(_ sc: (seed: UInt64, n: Int, c: Int, w: Int, h: Int, iso: Bool, bias: Double)) {
        let s = randomScene(seed: sc.seed, count: sc.n, channels: sc.c, width: sc.w, height: sc.h,
                            isotropic: sc.iso, opacityBias: sc.bias)
        let ref = refRender(s)
        for mode in [SplatDepthMode.expected, .accumulated] {
            let (img, _) = fastRender(s, depth: mode)
            expectClose(img.features.map(Double.init), ref.image, "image", seed: sc.seed)
            expectClose(img.alpha.map(Double.init), ref.alpha, "alpha", seed: sc.seed)
            expectClose(img.depth.map(Double.init), ref.depth(mode), "depth (\(mode))", seed: sc.seed)
        }
        let covered = ref.alpha.filter { $0 > 0.5 }.count
        #expect(covered > ref.alpha.count / 10, "seed \(sc.seed): the scene should cover the image, \(covered) pixels")
        if sc.bias > 3 {
            let stopped = ref.finalT.filter { $0 < 1e-3 }.count
            #expect(stopped > 0, "seed \(sc.seed): the opaque scene should stop some pixels early")
        }
    }

    @Test(arguments: comparisonScenes)
    func vjpMatchesReference(_ sc: (seed: UInt64, n: Int, c: Int, w: Int, h: Int, iso: Bool, bias: Double)) {
        let s = randomScene(seed: sc.seed, count: sc.n, channels: sc.c, width: sc.w, height: sc.h,
                            isotropic: sc.iso, opacityBias: sc.bias)
        let ref = refRender(s)
        let v = randomCotangents(s, seed: sc.seed &+ 7)
        for mode in [SplatDepthMode.expected, .accumulated] {
            let (_, tape) = fastRender(s, depth: mode)
            let g = SplatKernel.rasterizeVJP(tape, vFeatures: v.image.map(Float.init), vAlpha: v.alpha.map(Float.init),
                                       vDepth: v.depth.map(Float.init), workspace: SplatWorkspace())
            let want = refGradient(s, ref, vImage: v.image, vAlpha: v.alpha, vDepth: v.depth, depthMode: mode)
            let got = rawGradients(g, scene: s)
            // Compare each parameter kind on its own scale (means and features differ by orders).
            let kinds: [(String, Range<Int>)] = sc.iso
                ? [("means", 0..<3), ("log-scale", 3..<4), ("logit", 4..<5), ("features", 5..<(5 + sc.c))]
                : [("means", 0..<3), ("log-scales", 3..<6), ("quats", 6..<10), ("logit", 10..<11),
                   ("features", 11..<(11 + sc.c))]
            for (name, r) in kinds {
                expectClose(got.flatMap { $0[r] }, want.flatMap { $0[r] }, "d/d\(name) (\(mode) depth)", rel: 2e-4,
                            ofMax: 2e-5, seed: sc.seed)
            }
        }
    }

    /// Central differences of the Float64 reference's loss against both analytic gradients.
    @Test func gradientsMatchFiniteDifferences() {
        for (seed, iso) in [(UInt64(31), false), (32, true)] {
            let s = randomScene(seed: seed, count: 24, channels: 2, width: 24, height: 24, isotropic: iso, opacityBias: 1.5)
            let v = randomCotangents(s, seed: seed)
            let ref = refRender(s)
            let want = refGradient(s, ref, vImage: v.image, vAlpha: v.alpha, vDepth: v.depth, depthMode: .expected)
            let (_, tape) = fastRender(s)
            let fast = rawGradients(SplatKernel.rasterizeVJP(tape, vFeatures: v.image.map(Float.init),
                                                       vAlpha: v.alpha.map(Float.init), vDepth: v.depth.map(Float.init),
                                                       workspace: SplatWorkspace()), scene: s)
            var rng = SeededRandom(seed: seed &+ 1)
            func central(_ i: Int, _ p: Int, _ h: Double) -> Double {
                (refLoss(perturbed(s, gaussian: i, parameter: p, by: h), vImage: v.image, vAlpha: v.alpha,
                         vDepth: v.depth, depthMode: .expected)
                 - refLoss(perturbed(s, gaussian: i, parameter: p, by: -h), vImage: v.image, vAlpha: v.alpha,
                           vDepth: v.depth, depthMode: .expected)) / (2 * h)
            }
            var checked = 0
            for _ in 0..<40 {
                let i = Int.random(in: 0..<s.count, using: &rng)
                guard ref.projected[i] != nil else { continue }
                let p = Int.random(in: 0..<(s.rawCount + s.channels), using: &rng)
                // The loss has jumps (a pixel crossing α = 1/255 or the T stop); a difference that
                // straddles one changes with the step, so only steps that agree are trusted.
                let fd = central(i, p, 1e-6), fdSmall = central(i, p, 1e-7)
                guard abs(fd - fdSmall) <= 1e-3 * max(abs(fd), 1e-2) else { continue }
                let scale = max(abs(fd), 1e-3)
                #expect(abs(want[i][p] - fd) <= 1e-4 * scale + 1e-6,
                        "seed \(seed): reference d/dparam[\(i)][\(p)] \(want[i][p]) vs finite difference \(fd)")
                #expect(abs(fast[i][p] - fd) <= 2e-3 * scale + 1e-5,
                        "seed \(seed): fast d/dparam[\(i)][\(p)] \(fast[i][p]) vs finite difference \(fd)")
                checked += 1
            }
            #expect(checked >= 20, "seed \(seed): only \(checked) parameters checked")
        }
    }

    @Test func threadCountDoesNotChangeResults() {
        let s = randomScene(seed: 41, count: 90, channels: 4, width: 64, height: 40)
        let v = randomCotangents(s, seed: 42)
        let (one, tapeOne) = fastRender(s, threads: 1)
        let (two, tapeTwo) = fastRender(s, threads: 2)
        #expect(one.features == two.features && one.alpha == two.alpha && one.depth == two.depth,
                "the forward pass must not depend on the thread count")
        let ws = SplatWorkspace()
        let g1 = SplatKernel.rasterizeVJP(tapeOne, vFeatures: v.image.map(Float.init), vAlpha: nil, vDepth: nil, workspace: ws)
        let g2 = SplatKernel.rasterizeVJP(tapeTwo, vFeatures: v.image.map(Float.init), vAlpha: nil, vDepth: nil, workspace: ws)
        expectClose(rawGradients(g2, scene: s).flatMap { $0 }, rawGradients(g1, scene: s).flatMap { $0 },
                    "gradients with 2 threads vs 1", rel: 1e-5, ofMax: 1e-6)
        let g2again = SplatKernel.rasterizeVJP(tapeTwo, vFeatures: v.image.map(Float.init), vAlpha: nil, vDepth: nil, workspace: ws)
        #expect(g2again.vMeans == g2.vMeans && g2again.vFeatures == g2.vFeatures,
                "the same thread count must give the same bits")
    }

    @Test func workspaceIsReusable() {
        let a = randomScene(seed: 51, count: 60, channels: 6, width: 40, height: 40)
        let b = randomScene(seed: 52, count: 150, channels: 2, width: 70, height: 50)
        let ws = SplatWorkspace()
        let first = fastRender(a, workspace: ws).0
        _ = fastRender(b, workspace: ws)
        let again = fastRender(a, workspace: ws).0
        #expect(first.features == again.features && first.alpha == again.alpha)
    }

    @Test func emptyAndCulledScenesShowTheBackground() {
        var s = randomScene(seed: 61, count: 30, channels: 3, width: 20, height: 18)
        for i in 0..<s.count { s.means[3 * i + 2] = -1 }   // everything behind the camera
        for scene in [s, RefScene(channels: 3, isotropic: false, means: [], logScales: [], quats: [], logits: [],
                                  features: [], camera: s.camera, background: s.background)] {
            let (img, tape) = fastRender(scene)
            #expect(tape.visibleCount == 0)
            #expect(img.alpha.allSatisfy { $0 == 0 } && img.depth.allSatisfy { $0 == 0 })
            for ch in 0..<3 {
                #expect(img.features[(ch * 360)..<((ch + 1) * 360)].allSatisfy { $0 == Float(scene.background[ch]) })
            }
            let g = SplatKernel.rasterizeVJP(tape, vFeatures: [Float](repeating: 1, count: 3 * 360), vAlpha: nil, vDepth: nil,
                                       workspace: SplatWorkspace())
            #expect(g.vMeans.allSatisfy { $0 == 0 } && g.vFeatures.allSatisfy { $0 == 0 })
        }
    }
}
