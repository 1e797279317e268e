import Foundation

/// The parametric surface behind `HeadModel`: a closed latitude–longitude grid around the vertical
/// axis, from a pole on the crown to a pole under the chest. Each grid row is a horizontal ring
/// (a superellipse with separate front and back depth) whose size follows a smooth profile through
/// hand-placed control rings; facial features are smooth bumps added on the front; the mouth is a
/// pocket of three extra rows between the lips, so opening the jaw shows an inside instead of
/// tearing the surface. Units are metres; y is up, the face looks along +z, +x is the subject's left
/// (the SMPL-X / FLAME frame).
struct HeadGeometry {
    static let columns = 96
    /// Rows of the profile, both poles included (the mouth pocket adds four more).
    static let profileRows = 112
    /// Column warp: columns are ⅓ as far apart on the face as on the back of the head.
    static let warp = 0.5
    static let mouthY = -0.075
    /// Half-width of the mouth opening (the pocket tapers to nothing at the corners).
    static let mouthHalfWidth = 0.026
    static let pocketDepth = 0.022
    static let eyeX = 0.032, eyeY = -0.018
    static let jawOpenAngle = 0.3

    /// A control ring of the profile.
    struct Ring {
        var y: Double, rx: Double, front: Double, back: Double, zc: Double, n: Double
    }
    // Top to bottom. `front`/`back` are the depths ahead of and behind the ring centre zc;
    // n is the superellipse exponent (2: ellipse, larger: squarer shoulders).
    static let controlRings: [Ring] = [
        Ring(y: 0.118, rx: 0.000, front: 0.000, back: 0.000, zc: -0.012, n: 2),     // crown pole
        Ring(y: 0.113, rx: 0.030, front: 0.034, back: 0.040, zc: -0.012, n: 2),
        Ring(y: 0.100, rx: 0.054, front: 0.060, back: 0.068, zc: -0.012, n: 2),
        Ring(y: 0.078, rx: 0.068, front: 0.080, back: 0.088, zc: -0.012, n: 2),
        Ring(y: 0.050, rx: 0.075, front: 0.092, back: 0.097, zc: -0.012, n: 2),     // forehead
        Ring(y: 0.018, rx: 0.077, front: 0.097, back: 0.099, zc: -0.012, n: 2),     // brows
        Ring(y: -0.015, rx: 0.076, front: 0.095, back: 0.097, zc: -0.012, n: 2),    // eyes
        Ring(y: -0.045, rx: 0.071, front: 0.093, back: 0.090, zc: -0.012, n: 2),    // nose
        Ring(y: -0.075, rx: 0.063, front: 0.089, back: 0.080, zc: -0.014, n: 2),    // mouth
        Ring(y: -0.100, rx: 0.052, front: 0.082, back: 0.068, zc: -0.016, n: 2),    // chin
        Ring(y: -0.116, rx: 0.046, front: 0.068, back: 0.058, zc: -0.018, n: 2),    // jaw line
        Ring(y: -0.126, rx: 0.050, front: 0.045, back: 0.055, zc: -0.020, n: 2),    // under the chin
        Ring(y: -0.138, rx: 0.055, front: 0.050, back: 0.054, zc: -0.022, n: 2),    // neck
        Ring(y: -0.170, rx: 0.058, front: 0.052, back: 0.055, zc: -0.024, n: 2),
        Ring(y: -0.198, rx: 0.068, front: 0.057, back: 0.062, zc: -0.026, n: 2.2),  // neck base
        Ring(y: -0.218, rx: 0.125, front: 0.072, back: 0.076, zc: -0.028, n: 2.6),  // trapezius
        Ring(y: -0.238, rx: 0.180, front: 0.088, back: 0.090, zc: -0.030, n: 3.2),  // shoulders
        Ring(y: -0.275, rx: 0.204, front: 0.099, back: 0.099, zc: -0.030, n: 3.6),
        Ring(y: -0.335, rx: 0.205, front: 0.104, back: 0.101, zc: -0.030, n: 3.6),  // chest
        Ring(y: -0.365, rx: 0.190, front: 0.095, back: 0.094, zc: -0.030, n: 3.6),
        Ring(y: -0.373, rx: 0.000, front: 0.000, back: 0.000, zc: -0.030, n: 3.6),  // bottom pole
    ]
    static let browRing = 5, noseRing = 7, mouthRing = 8, underChinRing = 11, neckBaseRing = 14, chestRing = 18
    /// The eye opening spans eyeY ± eyeHalfHeight; a blink stretches the lid from eyeY + blinkTop.
    static let eyeHalfHeight = 0.0045, blinkTop = 0.016

    /// A grid row: where it sits on the profile and, for the mouth pocket, which pocket row.
    struct Row {
        var t: Double
        /// 0: an ordinary row; 1, 2, 3: upper inside, back wall, lower inside of the mouth;
        /// 4: the lower lip's edge (same rest position as the upper lip's edge row).
        var pocket: Int
    }

    let knotT: [Double]
    let profile: [MonotoneCubic]   // y, rx, front, back, zc, n over t
    let rows: [Row]
    let phis: [Double]
    /// The row of the upper lip's edge; the pocket rows follow it.
    let mouthRow: Int
    /// UV v of each row.
    var rowV: [Double] = []

    init() {
        let rings = HeadGeometry.controlRings
        // Knots at the cumulative arc length of the front profile, so rows spread evenly.
        var t = [0.0]
        for k in 1..<rings.count {
            let a = rings[k - 1], b = rings[k]
            t.append(t[k - 1] + hypot(b.y - a.y, max(b.rx, b.front) - max(a.rx, a.front)))
        }
        knotT = t
        profile = [rings.map(\.y), rings.map(\.rx), rings.map(\.front), rings.map(\.back), rings.map(\.zc), rings.map(\.n)]
            .map { MonotoneCubic(x: t, y: $0) }

        // Rows follow a density that is three times higher on the face.
        let total = t.last!
        let steps = 4000
        var cumulative = [0.0]
        for i in 1...steps {
            let tm = total * (Double(i) - 0.5) / Double(steps)
            let y = profile[0](tm)
            let face = HeadMath.smoothstep(-0.145, -0.125, y) * (1 - HeadMath.smoothstep(0.05, 0.07, y))
            // Denser still across the eyes and lips, which blinks and mouth shapes fold.
            let eyes = exp(-pow((y - HeadGeometry.eyeY) / 0.012, 2)), lips = exp(-pow((y - HeadGeometry.mouthY) / 0.015, 2))
            cumulative.append(cumulative[i - 1] + 1 + 2 * face + 2 * eyes + 1.5 * lips)
        }
        var rowT: [Double] = []
        let n = HeadGeometry.profileRows
        var s = 0
        for r in 0..<n {
            let target = cumulative[steps] * Double(r) / Double(n - 1)
            while s < steps - 1 && cumulative[s + 1] < target { s += 1 }
            let span = cumulative[s + 1] - cumulative[s]
            let frac = span > 0 ? (target - cumulative[s]) / span : 0
            rowT.append(total * (Double(s) + min(1, max(0, frac))) / Double(steps))
        }
        rowT[0] = 0
        rowT[n - 1] = total
        // One row exactly on the mouth line, where the lips meet, and rows exactly on the eye
        // opening's edges and below the brows, where a blink folds the surface.
        let tMouth = t[HeadGeometry.mouthRing]
        let nearest = (1..<(n - 1)).min { abs(rowT[$0] - tMouth) < abs(rowT[$1] - tMouth) }!
        rowT[nearest] = tMouth
        let y = profile[0]
        for target in [HeadGeometry.eyeY + HeadGeometry.blinkTop, HeadGeometry.eyeY + HeadGeometry.eyeHalfHeight,
                       HeadGeometry.eyeY - HeadGeometry.eyeHalfHeight] {
            var lo = t[HeadGeometry.browRing], hi = t[HeadGeometry.noseRing]   // y falls from lo to hi
            for _ in 0..<60 { let mid = 0.5 * (lo + hi); if y(mid) > target { lo = mid } else { hi = mid } }
            let ts = 0.5 * (lo + hi)
            let row = (1..<(n - 1)).filter { $0 != nearest }.min { abs(rowT[$0] - ts) < abs(rowT[$1] - ts) }!
            rowT[row] = ts
        }
        var rows = rowT.map { Row(t: $0, pocket: 0) }
        rows.insert(contentsOf: (1...4).map { Row(t: tMouth, pocket: $0) }, at: nearest + 1)
        self.rows = rows
        mouthRow = nearest

        let c = HeadGeometry.columns
        phis = (0..<c).map { HeadGeometry.phi(Double($0) / Double(c)) }

        // UV v of every row: 1 at the crown, 0 at the bottom pole, spaced so that texels are square
        // down the front of the body. Along u, a texel spans 2π(1 − warp)·rx/R on the front
        // meridian, so v advances by the front arc length over π·rx there. The crown, the shoulders,
        // the mouth's inside and the cap under the chest get less texture than the face.
        var arc = [0.0]
        for i in 1..<rows.count {
            let a = point(t: rows[i - 1].t, phi: 0, pocket: rows[i - 1].pocket)
            let b = point(t: rows[i].t, phi: 0, pocket: rows[i].pocket)
            let r = ring(0.5 * (rows[i - 1].t + rows[i].t), shape: .zero)
            var weight = 1 / (Double.pi * 2 * (1 - HeadGeometry.warp) * max(r.rx, 0.04))
            if (1...4).contains(rows[i].pocket) { weight *= 0.35 }   // the segments inside the mouth
            if r.y < HeadGeometry.controlRings[HeadGeometry.chestRing].y { weight *= 0.25 }
            else if r.y < HeadGeometry.controlRings[HeadGeometry.neckBaseRing].y { weight *= 0.7 }
            if r.y > 0.06 { weight *= 0.6 }   // the crown: hair, seen from above or behind
            arc.append(arc[i - 1] + ((b - a) * (b - a)).sum().squareRoot() * weight)
        }
        rowV = arc.map { 1 - $0 / arc.last! }
    }

    /// Row index (with fraction) of a UV v: the inverse of `rowV`, piecewise linear.
    func rowCoordinate(v: Double) -> Double {
        var lo = 0, hi = rowV.count - 1   // rowV falls from 1 to 0
        if v >= rowV[0] { return 0 }
        if v <= rowV[hi] { return Double(hi) }
        while hi - lo > 1 { let mid = (lo + hi) / 2; if rowV[mid] >= v { lo = mid } else { hi = mid } }
        return Double(lo) + (rowV[lo] - v) / (rowV[lo] - rowV[hi])
    }

    /// Longitude of the column parameter w ∈ [0, 1): −π at the back seam, 0 on the face.
    static func phi(_ w: Double) -> Double { -Double.pi + 2 * Double.pi * w + warp * sin(2 * Double.pi * w) }

    /// The column parameter of a longitude (inverse of `phi`, by bisection: phi is monotonic).
    static func column(ofPhi target: Double) -> Double {
        var lo = 0.0, hi = 1.0
        for _ in 0..<60 {
            let mid = 0.5 * (lo + hi)
            if phi(mid) < target { lo = mid } else { hi = mid }
        }
        return 0.5 * (lo + hi)
    }

    var ringRows: Int { rows.count - 2 }
    var vertexCount: Int { 2 + ringRows * HeadGeometry.columns }

    /// Vertex index of (row, column); the poles are single vertices.
    func vertex(row: Int, column j: Int) -> Int {
        if row == 0 { return 0 }
        if row == rows.count - 1 { return 1 + ringRows * HeadGeometry.columns }
        return 1 + (row - 1) * HeadGeometry.columns + ((j % HeadGeometry.columns) + HeadGeometry.columns) % HeadGeometry.columns
    }

    /// The profile ring at t, with the shape modes that resize rings applied.
    func ring(_ t: Double, shape: ShapeCoefficients) -> Ring {
        var r = Ring(y: profile[0](t), rx: max(0, profile[1](t)), front: max(0, profile[2](t)),
                     back: max(0, profile[3](t)), zc: profile[4](t), n: profile[5](t))
        let head = HeadGeometry.headWeight(r.y)
        let neck = HeadMath.smoothstep(-0.22, -0.19, r.y) * (1 - HeadMath.smoothstep(-0.14, -0.115, r.y))
        let shoulders = 1 - HeadMath.smoothstep(-0.238, -0.21, r.y)
        let jaw = exp(-pow((r.y + 0.1) / 0.02, 2))
        r.rx *= (1 + 0.08 * shape[1] * head) * (1 + 0.15 * shape[5] * neck) * (1 + 0.12 * shape[6] * shoulders)
            * (1 + 0.12 * shape[7] * jaw)
        r.front *= 1 + 0.15 * shape[5] * neck
        r.back *= (1 + 0.08 * shape[2] * head) * (1 + 0.15 * shape[5] * neck)
        return r
    }

    /// How much of the head (rather than the neck) a height belongs to.
    static func headWeight(_ y: Double) -> Double { HeadMath.smoothstep(-0.16, -0.11, y) }

    /// Mouth opening profile across the face: 1 inside the mouth, 0 beyond its corners.
    static func mouthOpening(_ s: Double) -> Double { 1 - HeadMath.smoothstep(0.016, mouthHalfWidth, abs(s)) }

    /// How much a longitude is part of the face.
    static func frontMask(_ phi: Double) -> Double { HeadMath.smoothstep(0.15, 0.55, cos(phi)) }

    /// The surface point of row `row`, longitude `phi`, with shape coefficients applied.
    func point(row: Int, phi: Double, shape: ShapeCoefficients = .zero) -> SIMD3<Double> {
        point(t: rows[row].t, phi: phi, pocket: rows[row].pocket, shape: shape)
    }

    func point(t: Double, phi: Double, pocket: Int = 0, shape: ShapeCoefficients = .zero) -> SIMD3<Double> {
        let r = ring(t, shape: shape)
        let sp = sin(phi), cp = cos(phi)
        let depth = cp >= 0 ? r.front : r.back
        var p = SIMD3(r.rx * HeadMath.superellipse(sp, r.n), r.y, r.zc + depth * HeadMath.superellipse(cp, r.n))
        let s = p.x, y = r.y
        let front = HeadGeometry.frontMask(phi)

        // Facial features, as depth along +z on the face.
        if front > 0 {
            var dz = 0.0
            let noseScale = 1 + 0.5 * shape[4]
            let tip = -0.040
            var h: Double
            if y > 0 { h = 0.003 * exp(-pow(y / 0.008, 2)) }
            else if y > tip { h = 0.003 + 0.017 * pow(-y / -tip, 1.3) }
            else { h = 0.020 * exp(-pow((y - tip) / 0.008, 2)) }
            let width = 0.0065 + 0.006 * min(1, max(0, -y / -tip))
            dz += noseScale * h * exp(-pow(s / width, 2))
            dz += noseScale * 0.006 * exp(-pow((abs(s) - 0.011) / 0.0055, 2) - pow((y + 0.045) / 0.006, 2))
            let ex = abs(s) - HeadGeometry.eyeX, ey = y - HeadGeometry.eyeY
            dz -= 0.007 * exp(-pow(ex / 0.015, 2) - pow(ey / 0.011, 2))           // eye socket
            dz += 0.0045 * exp(-pow(ex / 0.0095, 2) - pow(ey / 0.0065, 2))        // eyeball
            dz += (1 + shape[8]) * 0.0035 * exp(-pow((abs(s) - 0.03) / 0.02, 2) - pow((y - 0.008) / 0.008, 2))
            dz += (1 + shape[9]) * 0.005 * exp(-pow((abs(s) - 0.042) / 0.016, 2) - pow((y + 0.048) / 0.016, 2))
            let lips = HeadGeometry.mouthOpening(s * 0.85)
            let my = HeadGeometry.mouthY
            dz += 0.0045 * lips * exp(-pow((y - (my + 0.0055)) / 0.0045, 2))     // upper lip
            dz += 0.0050 * lips * exp(-pow((y - (my - 0.008)) / 0.0055, 2))      // lower lip
            dz += 0.006 * exp(-pow(s / 0.02, 2) - pow((y + 0.100) / 0.011, 2))    // chin
            p.z += front * dz
        }
        // Ears: flaps on the sides, a little behind the middle.
        let ear = 0.010 * exp(-pow((abs(phi) - 1.62) / 0.13, 2) - pow((y + 0.022) / 0.024, 2))
        if ear > 1e-9 { p += ear * SIMD3(sp, 0, cp) }

        // The mouth pocket: the inside of the lips, teeth and the back wall, behind the lips.
        if (1...3).contains(pocket) {
            let open = HeadGeometry.mouthOpening(s) * front
            let inward = -SIMD3(sp, 0, cp)
            let d = HeadGeometry.pocketDepth * open
            switch pocket {
            case 1: p += 0.5 * d * inward + SIMD3(0, 0.005 * open, 0)
            case 2: p += d * inward
            default: p += 0.5 * d * inward - SIMD3(0, 0.005 * open, 0)
            }
        }

        // Shape modes that move whole regions.
        let head = HeadGeometry.headWeight(y)
        if shape[0] != 0 {
            let centre = SIMD3(0, 0.0, -0.012)
            p = centre + (p - centre) * (1 + 0.06 * shape[0] * head)
        }
        if shape[3] != 0 {
            p.y -= 0.010 * shape[3] * HeadMath.smoothstep(-0.02, -0.10, y) * head
        }
        return p
    }

    /// Outward surface normal of the neutral surface, by central differences in (t, phi).
    func normal(t: Double, phi: Double) -> SIMD3<Double> {
        let dt = 1e-4, dp = 1e-4
        let a = point(t: min(t + dt, knotT.last!), phi: phi) - point(t: max(t - dt, 0), phi: phi)
        let b = point(t: t, phi: phi + dp) - point(t: t, phi: phi - dp)
        // ∂p/∂t points down the profile and ∂p/∂φ towards +x on the face: ∂t × ∂φ points outward.
        let n = SIMD3(a.y * b.z - a.z * b.y, a.z * b.x - a.x * b.z, a.x * b.y - a.y * b.x)
        let len = (n * n).sum().squareRoot()
        return len > 0 ? n / len : SIMD3(0, 0, 1)
    }
}

/// Coefficients of the ten shape modes of `HeadModel.shapeNames` (zero: the neutral head).
struct ShapeCoefficients {
    var values = [Double](repeating: 0, count: 10)
    static let zero = ShapeCoefficients()
    static func unit(_ k: Int) -> ShapeCoefficients { var s = ShapeCoefficients(); s.values[k] = 1; return s }
    subscript(_ k: Int) -> Double { values[k] }
}

/// Scalar helpers of the head generator.
enum HeadMath {
    @inline(__always) static func smoothstep(_ e0: Double, _ e1: Double, _ x: Double) -> Double {
        let t = min(1, max(0, (x - e0) / (e1 - e0)))
        return t * t * (3 - 2 * t)
    }

    @inline(__always) static func superellipse(_ c: Double, _ n: Double) -> Double {
        c == 0 ? 0 : (c > 0 ? 1 : -1) * pow(abs(c), 2 / n)
    }
}

/// Monotone piecewise-cubic Hermite interpolation (Fritsch–Carlson), so the profile never
/// overshoots between control rings.
struct MonotoneCubic {
    let x: [Double], y: [Double], m: [Double]

    init(x: [Double], y: [Double]) {
        precondition(x.count == y.count && x.count >= 2)
        self.x = x
        self.y = y
        let n = x.count
        var d = [Double](repeating: 0, count: n - 1)
        for i in 0..<(n - 1) { d[i] = (y[i + 1] - y[i]) / (x[i + 1] - x[i]) }
        var m = [Double](repeating: 0, count: n)
        m[0] = d[0]
        m[n - 1] = d[n - 2]
        for i in 1..<(n - 1) {
            if d[i - 1] * d[i] <= 0 { m[i] = 0; continue }
            let w1 = 2 * (x[i + 1] - x[i]) + (x[i] - x[i - 1]), w2 = (x[i + 1] - x[i]) + 2 * (x[i] - x[i - 1])
            m[i] = (w1 + w2) / (w1 / d[i - 1] + w2 / d[i])
        }
        self.m = m
    }

    func callAsFunction(_ t: Double) -> Double {
        let n = x.count
        if t <= x[0] { return y[0] }
        if t >= x[n - 1] { return y[n - 1] }
        var lo = 0, hi = n - 1
        while hi - lo > 1 { let mid = (lo + hi) / 2; if x[mid] <= t { lo = mid } else { hi = mid } }
        let h = x[hi] - x[lo], s = (t - x[lo]) / h
        let h00 = (1 + 2 * s) * (1 - s) * (1 - s), h10 = s * (1 - s) * (1 - s)
        let h01 = s * s * (3 - 2 * s), h11 = s * s * (s - 1)
        return h00 * y[lo] + h10 * h * m[lo] + h01 * y[hi] + h11 * h * m[hi]
    }
}
