import Foundation
@testable import PGKernels

// A slow, obvious Float64 SplatKernel: every surviving Gaussian at every pixel, in (depth, index) order,
// no tiles, no SIMD. Its gradient walks stored per-pixel contribution lists forwards (no
// transmittance recovery by division) and gets the projection's Jacobian from central finite
// differences, so it shares no derivative code with the fast kernel.

struct RefCamera {
    var fx, fy, cx, cy: Double
    var width, height: Int
    var worldToCamera: [Double]   // [4, 4]
    var near: Double = 0.01

    var splat: SplatCamera {
        SplatCamera(fx: Float(fx), fy: Float(fy), cx: Float(cx), cy: Float(cy), width: width, height: height,
                    worldToCamera: worldToCamera.map(Float.init), near: Float(near))
    }
}

struct RefScene {
    var channels: Int
    var isotropic: Bool
    var means: [Double]          // [N, 3]
    var logScales: [Double]      // [N, 3] or [N, 1]
    var quats: [Double]          // [N, 4]
    var logits: [Double]         // [N]
    var features: [Double]       // [N, C]
    var camera: RefCamera
    var background: [Double]     // [C]

    var count: Int { logits.count }

    var splat: SplatGaussians {
        SplatGaussians(means: means.map(Float.init), logScales: logScales.map(Float.init),
                       quats: isotropic ? [] : quats.map(Float.init), opacityLogits: logits.map(Float.init),
                       features: features.map(Float.init), channels: channels, isotropic: isotropic)
    }

    /// The scene as the fast kernel sees it, rounded to Float32 and back, so both start equal.
    var rounded: RefScene {
        var s = self
        func r(_ a: [Double]) -> [Double] { a.map { Double(Float($0)) } }
        s.means = r(means); s.logScales = r(logScales); s.quats = r(quats); s.logits = r(logits)
        s.features = r(features); s.background = r(background)
        s.camera.fx = Double(Float(camera.fx)); s.camera.fy = Double(Float(camera.fy))
        s.camera.cx = Double(Float(camera.cx)); s.camera.cy = Double(Float(camera.cy))
        s.camera.worldToCamera = r(camera.worldToCamera)
        return s
    }

    /// Raw parameters of Gaussian i: mean(3), log-scale(3 or 1), quaternion(4, not when isotropic), logit.
    func raw(_ i: Int) -> [Double] {
        var r = Array(means[3 * i..<3 * i + 3])
        if isotropic { r.append(logScales[i]) } else {
            r += logScales[3 * i..<3 * i + 3]
            r += quats[4 * i..<4 * i + 4]
        }
        r.append(logits[i])
        return r
    }
    var rawCount: Int { isotropic ? 5 : 11 }
}

/// A projected Gaussian: 2D mean, conic, depth, opacity.
struct Ref2D {
    var mx, my, a, b, c, z, o: Double
    var vector: [Double] { [mx, my, a, b, c, z, o] }
}

typealias M3 = [[Double]]
func mul(_ a: M3, _ b: M3) -> M3 {
    (0..<3).map { i in (0..<3).map { j in (0..<3).reduce(0) { $0 + a[i][$1] * b[$1][j] } } }
}
func transpose(_ a: M3) -> M3 { (0..<3).map { i in (0..<3).map { j in a[j][i] } } }

/// Projection of one Gaussian from its raw parameters; nil when culled.
func refProject(raw: [Double], isotropic: Bool, camera cam: RefCamera) -> Ref2D? {
    let m = cam.worldToCamera
    let r: M3 = [[m[0], m[1], m[2]], [m[4], m[5], m[6]], [m[8], m[9], m[10]]]
    let p = (0..<3).map { i in r[i][0] * raw[0] + r[i][1] * raw[1] + r[i][2] * raw[2] + m[4 * i + 3] }
    let (x, y, z) = (p[0], p[1], p[2])
    if !(z > cam.near) { return nil }
    var sigmaWorld: M3
    if isotropic {
        let s2 = exp(2 * raw[3])
        sigmaWorld = [[s2, 0, 0], [0, s2, 0], [0, 0, s2]]
    } else {
        let s = (3..<6).map { exp(raw[$0]) }
        var q = Array(raw[6..<10])
        let norm = max(sqrt(q.reduce(0) { $0 + $1 * $1 }), 1e-12)
        q = q.map { $0 / norm }
        let (w, qx, qy, qz) = (q[0], q[1], q[2], q[3])
        let rq: M3 = [[1 - 2 * (qy * qy + qz * qz), 2 * (qx * qy - w * qz), 2 * (qx * qz + w * qy)],
                      [2 * (qx * qy + w * qz), 1 - 2 * (qx * qx + qz * qz), 2 * (qy * qz - w * qx)],
                      [2 * (qx * qz - w * qy), 2 * (qy * qz + w * qx), 1 - 2 * (qx * qx + qy * qy)]]
        let ss: M3 = [[s[0] * s[0], 0, 0], [0, s[1] * s[1], 0], [0, 0, s[2] * s[2]]]
        sigmaWorld = mul(mul(rq, ss), transpose(rq))
    }
    let sc = mul(mul(r, sigmaWorld), transpose(r))
    let w = Double(cam.width), h = Double(cam.height)
    let limXPos = (w - cam.cx) / cam.fx + 0.3 * 0.5 * w / cam.fx
    let limXNeg = cam.cx / cam.fx + 0.3 * 0.5 * w / cam.fx
    let limYPos = (h - cam.cy) / cam.fy + 0.3 * 0.5 * h / cam.fy
    let limYNeg = cam.cy / cam.fy + 0.3 * 0.5 * h / cam.fy
    let tx = z * min(limXPos, max(-limXNeg, x / z))
    let ty = z * min(limYPos, max(-limYNeg, y / z))
    let j: [[Double]] = [[cam.fx / z, 0, -cam.fx * tx / (z * z)], [0, cam.fy / z, -cam.fy * ty / (z * z)]]
    var cov = [[0.0, 0.0], [0.0, 0.0]]
    for a in 0..<2 { for b in 0..<2 { for k in 0..<3 { for l in 0..<3 { cov[a][b] += j[a][k] * sc[k][l] * j[b][l] } } } }
    cov[0][0] += 0.3
    cov[1][1] += 0.3
    let det = cov[0][0] * cov[1][1] - cov[0][1] * cov[1][0]
    if !(det > 0) { return nil }
    let mx = cam.fx * x / z + cam.cx, my = cam.fy * y / z + cam.cy
    let mid = 0.5 * (cov[0][0] + cov[1][1])
    let radius = (3 * sqrt(mid + sqrt(max(0.01, mid * mid - det)))).rounded(.up)
    if mx + radius <= 0 || mx - radius >= w || my + radius <= 0 || my - radius >= h { return nil }
    let o = 1 / (1 + exp(-raw[raw.count - 1]))
    return Ref2D(mx: mx, my: my, a: cov[1][1] / det, b: -cov[0][1] / det, c: cov[0][0] / det, z: z, o: o)
}

struct RefContribution {
    var k: Int
    var alpha, t, vis, dx, dy: Double
}

struct RefOutput {
    var image: [Double]          // [C, H, W]
    var alpha: [Double]          // [H, W]
    var depthAccumulated: [Double]   // [H, W]
    var depthExpected: [Double]      // [H, W]
    var lists: [[RefContribution]]   // [H·W] what each pixel blended
    var finalT: [Double]
    var projected: [Ref2D?]
    func depth(_ mode: SplatDepthMode) -> [Double] { mode == .expected ? depthExpected : depthAccumulated }
}

func refRender(_ s: RefScene) -> RefOutput {
    let n = s.count, c = s.channels, w = s.camera.width, h = s.camera.height
    let projected = (0..<n).map { refProject(raw: s.raw($0), isotropic: s.isotropic, camera: s.camera) }
    let order = (0..<n).filter { projected[$0] != nil }.sorted { (projected[$0]!.z, $0) < (projected[$1]!.z, $1) }
    var out = RefOutput(image: [Double](repeating: 0, count: c * w * h), alpha: [Double](repeating: 0, count: w * h),
                        depthAccumulated: [Double](repeating: 0, count: w * h),
                        depthExpected: [Double](repeating: 0, count: w * h),
                        lists: [[RefContribution]](repeating: [], count: w * h),
                        finalT: [Double](repeating: 1, count: w * h), projected: projected)
    for py in 0..<h {
        for px in 0..<w {
            var t = 1.0
            var acc = [Double](repeating: 0, count: c)
            var d = 0.0
            var list: [RefContribution] = []
            for k in order {
                let g = projected[k]!
                let dx = g.mx - (Double(px) + 0.5), dy = g.my - (Double(py) + 0.5)
                let sigma = 0.5 * (g.a * dx * dx + g.c * dy * dy) + g.b * dx * dy
                if sigma < 0 { continue }
                let vis = exp(-sigma)
                let alpha = min(0.99, g.o * vis)
                if alpha < 1.0 / 255 { continue }
                let next = t * (1 - alpha)
                if next <= 1e-4 { break }
                for ch in 0..<c { acc[ch] += s.features[k * c + ch] * alpha * t }
                d += g.z * alpha * t
                list.append(RefContribution(k: k, alpha: alpha, t: t, vis: vis, dx: dx, dy: dy))
                t = next
            }
            let at = py * w + px
            for ch in 0..<c { out.image[ch * w * h + at] = acc[ch] + t * s.background[ch] }
            out.alpha[at] = 1 - t
            out.depthAccumulated[at] = d
            out.depthExpected[at] = t < 1 ? d / (1 - t) : 0
            out.lists[at] = list
            out.finalT[at] = t
        }
    }
    return out
}

/// Gradient of L = Σ vImage·image + Σ vAlpha·alpha + Σ vDepth·depth with respect to every raw
/// parameter, laid out like `RefScene.raw` per Gaussian.
func refGradient(_ s: RefScene, _ out: RefOutput, vImage: [Double], vAlpha: [Double], vDepth: [Double],
                 depthMode: SplatDepthMode) -> [[Double]] {
    let n = s.count, c = s.channels, w = s.camera.width, h = s.camera.height
    var v2D = [[Double]](repeating: [Double](repeating: 0, count: 7), count: n)   // mx my a b c z o
    var vFeat = [Double](repeating: 0, count: n * c)
    for at in 0..<(w * h) {
        let list = out.lists[at]
        let tN = out.finalT[at]
        var vA = vAlpha[at], vD = vDepth[at]
        if depthMode == .expected {
            let cover = 1 - tN
            if cover > 0 {
                vA -= vD * out.depthExpected[at] / cover
                vD /= cover
            } else { vD = 0 }
        }
        for (idx, e) in list.enumerated() {
            let g = out.projected[e.k]!
            // ∂/∂α of every output, by the textbook formula with a sum over what lies behind.
            var vAlphaK = 0.0
            for ch in 0..<c {
                var behind = 0.0
                for f in list[(idx + 1)...] { behind += s.features[f.k * c + ch] * f.alpha * f.t }
                let dOut = s.features[e.k * c + ch] * e.t - behind / (1 - e.alpha) - tN * s.background[ch] / (1 - e.alpha)
                vAlphaK += vImage[ch * w * h + at] * dOut
            }
            var behindZ = 0.0
            for f in list[(idx + 1)...] { behindZ += out.projected[f.k]!.z * f.alpha * f.t }
            vAlphaK += vD * (g.z * e.t - behindZ / (1 - e.alpha))
            vAlphaK += vA * tN / (1 - e.alpha)
            for ch in 0..<c { vFeat[e.k * c + ch] += e.alpha * e.t * vImage[ch * w * h + at] }
            v2D[e.k][5] += e.alpha * e.t * vD
            if g.o * e.vis <= 0.99 {
                let vSigma = -g.o * e.vis * vAlphaK
                v2D[e.k][0] += vSigma * (g.a * e.dx + g.b * e.dy)
                v2D[e.k][1] += vSigma * (g.b * e.dx + g.c * e.dy)
                v2D[e.k][2] += vSigma * 0.5 * e.dx * e.dx
                v2D[e.k][3] += vSigma * e.dx * e.dy
                v2D[e.k][4] += vSigma * 0.5 * e.dy * e.dy
                v2D[e.k][6] += e.vis * vAlphaK
            }
        }
    }
    // Chain through the projection with a finite-difference Jacobian.
    var grads: [[Double]] = []
    for i in 0..<n {
        var g = [Double](repeating: 0, count: s.rawCount)
        if out.projected[i] != nil {
            let raw = s.raw(i)
            for p in 0..<raw.count {
                let step = 1e-6 * max(1, abs(raw[p]))
                var plus = raw, minus = raw
                plus[p] += step
                minus[p] -= step
                guard let a = refProject(raw: plus, isotropic: s.isotropic, camera: s.camera),
                      let b = refProject(raw: minus, isotropic: s.isotropic, camera: s.camera) else { continue }
                let da = a.vector, db = b.vector
                for o in 0..<7 { g[p] += v2D[i][o] * (da[o] - db[o]) / (2 * step) }
            }
        }
        g += vFeat[i * c..<(i + 1) * c]
        grads.append(g)
    }
    return grads
}

/// The same layout from the fast kernel's gradients.
func rawGradients(_ g: SplatGradients, scene s: RefScene) -> [[Double]] {
    (0..<s.count).map { i in
        var r = g.vMeans[3 * i..<3 * i + 3].map(Double.init)
        if s.isotropic { r.append(Double(g.vLogScales[i])) } else {
            r += g.vLogScales[3 * i..<3 * i + 3].map(Double.init)
            r += g.vQuats[4 * i..<4 * i + 4].map(Double.init)
        }
        r.append(Double(g.vOpacityLogits[i]))
        r += g.vFeatures[i * s.channels..<(i + 1) * s.channels].map(Double.init)
        return r
    }
}

/// Sets raw parameter p (the `raw` layout, features after it) of Gaussian i.
func perturbed(_ s: RefScene, gaussian i: Int, parameter p: Int, by delta: Double) -> RefScene {
    var s = s
    if p < 3 { s.means[3 * i + p] += delta; return s }
    if s.isotropic {
        if p == 3 { s.logScales[i] += delta } else if p == 4 { s.logits[i] += delta } else {
            s.features[i * s.channels + p - 5] += delta
        }
        return s
    }
    switch p {
    case 3..<6: s.logScales[3 * i + p - 3] += delta
    case 6..<10: s.quats[4 * i + p - 6] += delta
    case 10: s.logits[i] += delta
    default: s.features[i * s.channels + p - 11] += delta
    }
    return s
}

func refLoss(_ s: RefScene, vImage: [Double], vAlpha: [Double], vDepth: [Double], depthMode: SplatDepthMode) -> Double {
    let o = refRender(s)
    let d = o.depth(depthMode)
    var l = 0.0
    for i in 0..<o.image.count { l += o.image[i] * vImage[i] }
    for i in 0..<o.alpha.count { l += o.alpha[i] * vAlpha[i] + d[i] * vDepth[i] }
    return l
}

// MARK: - Seeded scenes

/// SplitMix64: small, seedable, the same on every platform.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func uniform(_ a: Double, _ b: Double) -> Double { Double.random(in: a..<b, using: &self) }
    mutating func normal() -> Double {
        let u = max(uniform(0, 1), 1e-12), v = uniform(0, 1)
        return sqrt(-2 * log(u)) * cos(2 * .pi * v)
    }
}

/// A small head-like scene in front of a slightly rotated camera: Gaussians near an ellipsoid's
/// surface, a few behind the camera or off screen, overlapping enough to exercise early stopping.
func randomScene(seed: UInt64, count n: Int, channels c: Int, width: Int, height: Int, isotropic: Bool = false,
                 opacityBias: Double = 1.0, scale: Double = 1.0) -> RefScene {
    var rng = SeededRandom(seed: seed)
    var means: [Double] = [], logScales: [Double] = [], quats: [Double] = [], logits: [Double] = [], feats: [Double] = []
    for i in 0..<n {
        let u = rng.uniform(-1, 1), phi = rng.uniform(0, 2 * .pi), rad = 1 + 0.1 * rng.normal()
        let sq = sqrt(1 - u * u)
        var p = [0.09 * rad * sq * cos(phi), 0.11 * rad * u, 0.09 * rad * sq * sin(phi)]
        if i % 17 == 16 { p = [rng.uniform(-0.3, 0.3), rng.uniform(-0.3, 0.3), rng.uniform(-0.6, -0.45)] }  // behind
        if i % 19 == 18 { p[0] += 0.4 }   // off screen
        means += p
        if isotropic { logScales.append(log(scale * 0.012) + 0.3 * rng.normal()) } else {
            logScales += (0..<3).map { _ in log(scale * 0.012) + 0.5 * rng.normal() }
            quats += (0..<4).map { _ in rng.normal() }
        }
        logits.append(opacityBias + 1.5 * rng.normal())
        feats += (0..<c).map { _ in rng.uniform(-1, 1) }
    }
    let ang = 0.25, cs = cos(ang), sn = sin(ang)
    let m: [Double] = [cs, 0, sn, 0.01, 0, 1, 0, -0.02, -sn, 0, cs, 0.45, 0, 0, 0, 1]
    let f = Double(width) * 1.6
    let cam = RefCamera(fx: f, fy: f * 1.05, cx: Double(width) * 0.48, cy: Double(height) * 0.52,
                        width: width, height: height, worldToCamera: m)
    let bg = (0..<c).map { _ in rng.uniform(-0.5, 0.5) }
    return RefScene(channels: c, isotropic: isotropic, means: means, logScales: logScales, quats: quats,
                    logits: logits, features: feats, camera: cam, background: bg).rounded
}
