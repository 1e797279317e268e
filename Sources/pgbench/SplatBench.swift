import Dispatch
import Foundation
import PGTensor
import PGKernels

/// `pgbench splat`: forward and forward+backward times of the Splat rasterizer (`SplatKernel`) on a head-sized,
/// surface-ish cloud (Gaussians in a thin shell around an ellipsoid of 16 × 22 × 19 cm seen from
/// 50 cm, the head filling the frame height as in a portrait video). Scales follow the density,
/// so every size shows a similar number of layers per pixel. Cotangents are given on all three
/// outputs, so the backward runs its full path.
enum SplatBench {
    struct Config {
        var count: Int
        var size: Int
        var channels: Int
        var threads: Int
    }

    static func run(_ args: [String]) {
        var runs = 7
        var quick = false
        var only: (counts: [Int]?, sizes: [Int]?, channels: [Int]?, threads: [Int]?) = (nil, nil, nil, nil)
        func ints(_ s: String) -> [Int] { s.split(separator: ",").compactMap { Int($0) } }
        var i = 0
        while i < args.count {
            switch args[i] {
            case "--runs" where i + 1 < args.count: runs = max(5, Int(args[i + 1]) ?? runs); i += 1
            case "--count" where i + 1 < args.count: only.counts = ints(args[i + 1]); i += 1
            case "--size" where i + 1 < args.count: only.sizes = ints(args[i + 1]); i += 1
            case "--channels" where i + 1 < args.count: only.channels = ints(args[i + 1]); i += 1
            case "--threads" where i + 1 < args.count: only.threads = ints(args[i + 1]); i += 1
            case "--quick": quick = true
            default:
                print("pgbench splat: unknown option \(args[i]) (--quick, --runs N, --count/--size/--channels/--threads a,b)")
                exit(1)
            }
            i += 1
        }
        let counts = only.counts ?? (quick ? [10_000, 50_000] : [10_000, 25_000, 50_000, 100_000])
        let sizes = only.sizes ?? (quick ? [256] : [256, 512])
        print("Splat benchmark: median / min / max over \(runs) runs, milliseconds (release build)")
        print("cloud: head-sized ellipsoid shell, logit opacity ~ N(1.5, 1), features ~ N(0, 1); cover: pixels with alpha > 0.5")
        print("pairs: Gaussian-tile pairs rasterized; fwd+bwd has cotangents on features, alpha and depth")
        print("")
        let header = ["gaussians", "image", "C", "thr", "visible", "pairs", "cover", "forward med/min/max", "fwd+bwd med/min/max"]
        let widths = [9, 7, 3, 3, 8, 9, 5, 22, 22]
        printRow(header, widths)
        printRow(widths.map { String(repeating: "-", count: $0) }, widths)
        for n in counts {
            for size in sizes {
                for c in only.channels ?? [3, 32] {
                    let scene = headCloud(count: n, channels: c, seed: 7)
                    let camera = headCamera(size: size)
                    for threads in only.threads ?? [1, 2] {
                        let cfg = Config(count: n, size: size, channels: c, threads: threads)
                        let r = measure(cfg, scene: scene, camera: camera, runs: runs)
                        printRow(["\(n / 1000)k", "\(size)²", "\(c)", "\(threads)", "\(r.visible)", "\(r.pairs)",
                                  String(format: "%.0f%%", 100 * r.coverage), format(r.forward), format(r.both)], widths)
                    }
                }
            }
        }
    }

    struct Result {
        var forward: [Double]
        var both: [Double]
        var visible: Int
        var pairs: Int
        /// Fraction of pixels with alpha above ½.
        var coverage: Double
    }

    static func measure(_ cfg: Config, scene: SplatGaussians, camera: SplatCamera, runs: Int) -> Result {
        let ws = SplatWorkspace()
        let options = SplatOptions(background: [Float](repeating: 0.1, count: cfg.channels), threads: cfg.threads)
        let pixels = camera.width * camera.height
        var rng = BenchRandom(seed: 11)
        let vFeatures = (0..<(cfg.channels * pixels)).map { _ in Float(rng.uniform(-1, 1)) }
        let vAlpha = (0..<pixels).map { _ in Float(rng.uniform(-1, 1)) }
        let vDepth = (0..<pixels).map { _ in Float(rng.uniform(-1, 1)) }
        // Warm up: grows the workspace, faults in pages, fills caches.
        var (first, tape) = SplatKernel.rasterize(scene, camera: camera, options: options, workspace: ws)
        let coverage = Double(first.alpha.filter { $0 > 0.5 }.count) / Double(pixels)
        first.features = []   // free it before timing
        _ = SplatKernel.rasterizeVJP(tape, vFeatures: vFeatures, vAlpha: vAlpha, vDepth: vDepth, workspace: ws)
        var forward: [Double] = [], both: [Double] = []
        for _ in 0..<runs {
            let t0 = DispatchTime.now().uptimeNanoseconds
            let (image, t) = SplatKernel.rasterize(scene, camera: camera, options: options, workspace: ws)
            let t1 = DispatchTime.now().uptimeNanoseconds
            forward.append(Double(t1 - t0) / 1e6)
            withExtendedLifetime(image) {}
            tape = t
        }
        for _ in 0..<runs {
            let t0 = DispatchTime.now().uptimeNanoseconds
            let (image, t) = SplatKernel.rasterize(scene, camera: camera, options: options, workspace: ws)
            let g = SplatKernel.rasterizeVJP(t, vFeatures: vFeatures, vAlpha: vAlpha, vDepth: vDepth, workspace: ws)
            let t1 = DispatchTime.now().uptimeNanoseconds
            both.append(Double(t1 - t0) / 1e6)
            withExtendedLifetime((image, g)) {}
        }
        return Result(forward: forward, both: both, visible: tape.visibleCount, pairs: tape.intersectionCount,
                      coverage: coverage)
    }

    /// Gaussians in a thin shell around the head ellipsoid, sized to the surface area per Gaussian.
    static func headCloud(count n: Int, channels c: Int, seed: UInt64) -> SplatGaussians {
        var rng = BenchRandom(seed: seed)
        let axes: (Double, Double, Double) = (0.08, 0.11, 0.095)
        let area = 0.118   // m², the ellipsoid's surface
        let spacing = (area / Double(n)).squareRoot()
        var means = [Float](), logScales = [Float](), quats = [Float](), logits = [Float](), features = [Float]()
        means.reserveCapacity(3 * n); logScales.reserveCapacity(3 * n); quats.reserveCapacity(4 * n)
        for _ in 0..<n {
            let u = rng.uniform(-1, 1), phi = rng.uniform(0, 2 * Double.pi)
            let s = (1 - u * u).squareRoot()
            let shell = 1 + 0.015 * rng.normal()
            means += [Float(axes.0 * s * cos(phi) * shell), Float(-axes.1 * u * shell), Float(axes.2 * s * sin(phi) * shell)]
            let base = log(0.7 * spacing)
            logScales += [Float(base + 0.25 * rng.normal()), Float(base + 0.25 * rng.normal()),
                          Float(base - 1.2 + 0.25 * rng.normal())]
            quats += (0..<4).map { _ in Float(rng.normal()) }
            logits.append(Float(1.5 + rng.normal()))
            for _ in 0..<c { features.append(Float(rng.normal())) }
        }
        return SplatGaussians(means: means, logScales: logScales, quats: quats, opacityLogits: logits,
                              features: features, channels: c)
    }

    /// 50 cm in front of the head, turned 20° to one side, framed like a portrait (the head fills
    /// the frame height).
    static func headCamera(size: Int) -> SplatCamera {
        let a = 20 * Double.pi / 180
        let (cs, sn) = (Float(cos(a)), Float(sin(a)))
        let f = Float(size) * 2.0
        return SplatCamera(fx: f, fy: f, cx: Float(size) / 2, cy: Float(size) / 2, width: size, height: size,
                           worldToCamera: [cs, 0, sn, 0, 0, 1, 0, 0, -sn, 0, cs, 0.5, 0, 0, 0, 1])
    }

    static func format(_ xs: [Double]) -> String {
        let s = xs.sorted()
        let med = s.count % 2 == 1 ? s[s.count / 2] : 0.5 * (s[s.count / 2 - 1] + s[s.count / 2])
        return String(format: "%.1f / %.1f / %.1f", med, s.first!, s.last!)
    }

    static func printRow(_ cells: [String], _ widths: [Int]) {
        var line = ""
        for (cell, w) in zip(cells, widths) {
            line += String(repeating: " ", count: max(0, w - cell.count)) + cell + "  "
        }
        print(line)
    }
}

/// SplitMix64, so the cloud is the same on every run and machine.
typealias BenchRandom = SplitMix64

extension SplitMix64 {
    mutating func uniform(_ a: Double, _ b: Double) -> Double { a + (b - a) * Double(next() >> 11) / Double(1 << 53) }
    mutating func normal() -> Double { boxMuller().0 }
}
