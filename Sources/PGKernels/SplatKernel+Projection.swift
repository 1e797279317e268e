import Dispatch
import Foundation
import PGTensor

/// The 2D Gaussians one camera sees, per input Gaussian (culled ones have radius 0 and zeros).
public struct SplatProjection: Sendable {
    public var means2D: [Float]     // [N, 2] pixel coordinates
    public var conics: [Float]      // [N, 3] (a, b, c) of the inverse dilated 2D covariance
    public var depths: [Float]      // [N] camera z
    public var opacities: [Float]   // [N] sigmoid(logit)
    public var radii: [Int32]       // [N] ⌈3σ⌉ of the largest axis in px; 0 when culled
}

/// A 3×3 matrix as rows (small, so it lives in registers).
struct Mat3 {
    var r0: SIMD3<Float>, r1: SIMD3<Float>, r2: SIMD3<Float>

    @inline(__always) init(_ r0: SIMD3<Float>, _ r1: SIMD3<Float>, _ r2: SIMD3<Float>) {
        self.r0 = r0; self.r1 = r1; self.r2 = r2
    }
    @inline(__always) var transposed: Mat3 {
        Mat3(SIMD3(r0.x, r1.x, r2.x), SIMD3(r0.y, r1.y, r2.y), SIMD3(r0.z, r1.z, r2.z))
    }
    @inline(__always) static func * (a: Mat3, b: Mat3) -> Mat3 {
        Mat3(a.r0.x * b.r0 + a.r0.y * b.r1 + a.r0.z * b.r2,
             a.r1.x * b.r0 + a.r1.y * b.r1 + a.r1.z * b.r2,
             a.r2.x * b.r0 + a.r2.y * b.r1 + a.r2.z * b.r2)
    }
    @inline(__always) static func * (a: Mat3, v: SIMD3<Float>) -> SIMD3<Float> {
        SIMD3((a.r0 * v).sum(), (a.r1 * v).sum(), (a.r2 * v).sum())
    }
    @inline(__always) static func + (a: Mat3, b: Mat3) -> Mat3 { Mat3(a.r0 + b.r0, a.r1 + b.r1, a.r2 + b.r2) }
    @inline(__always) static func * (s: Float, a: Mat3) -> Mat3 { Mat3(s * a.r0, s * a.r1, s * a.r2) }
    /// Σᵢⱼ aᵢⱼ·bᵢⱼ.
    @inline(__always) func dot(_ b: Mat3) -> Float { (r0 * b.r0 + r1 * b.r1 + r2 * b.r2).sum() }
}

/// Rotation from a unit quaternion (w, x, y, z).
@inline(__always) func rotation(_ w: Float, _ x: Float, _ y: Float, _ z: Float) -> Mat3 {
    Mat3(SIMD3(1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)),
         SIMD3(2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)),
         SIMD3(2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)))
}

/// The camera, unpacked once per call.
struct SplatFrame {
    var rot: Mat3
    var trans: SIMD3<Float>
    /// R·Rᵀ (the identity for a rigid camera); isotropic covariances are s²·R·Rᵀ.
    var rotRotT: Mat3
    var fx: Float, fy: Float, cx: Float, cy: Float
    var width: Int, height: Int
    var near: Float
    /// x/z ∈ [−limXNeg, limXPos] and y/z ∈ [−limYNeg, limYPos] inside J (frustum + 15 % of the image).
    var limXNeg: Float, limXPos: Float, limYNeg: Float, limYPos: Float

    init(_ c: SplatCamera) {
        let m = c.worldToCamera
        rot = Mat3(SIMD3(m[0], m[1], m[2]), SIMD3(m[4], m[5], m[6]), SIMD3(m[8], m[9], m[10]))
        trans = SIMD3(m[3], m[7], m[11])
        rotRotT = rot * rot.transposed
        fx = c.fx; fy = c.fy; cx = c.cx; cy = c.cy
        width = c.width; height = c.height
        near = c.near
        let marginX = 0.3 * (0.5 * Float(c.width) / c.fx)
        let marginY = 0.3 * (0.5 * Float(c.height) / c.fy)
        limXPos = (Float(c.width) - c.cx) / c.fx + marginX
        limXNeg = c.cx / c.fx + marginX
        limYPos = (Float(c.height) - c.cy) / c.fy + marginY
        limYNeg = c.cy / c.fy + marginY
    }
}

/// Base pointers of a SplatGaussians' arrays, valid inside a `withUnsafe…` scope.
struct GaussianPointers {
    var means: UnsafePointer<Float>
    var logScales: UnsafePointer<Float>
    var quats: UnsafePointer<Float>
    var logits: UnsafePointer<Float>
    var isotropic: Bool
}

extension SplatGaussians {
    func withPointers<R>(_ body: (GaussianPointers) -> R) -> R {
        means.withUnsafeBufferPointer { m in
            logScales.withUnsafeBufferPointer { s in
                quats.withUnsafeBufferPointer { q in
                    opacityLogits.withUnsafeBufferPointer { o in
                        body(GaussianPointers(means: m.baseAddress ?? UnsafePointer(bitPattern: 8)!,
                                              logScales: s.baseAddress ?? UnsafePointer(bitPattern: 8)!,
                                              quats: q.baseAddress ?? UnsafePointer(bitPattern: 8)!,
                                              logits: o.baseAddress ?? UnsafePointer(bitPattern: 8)!,
                                              isotropic: isotropic))
                    }
                }
            }
        }
    }
}

/// One projected Gaussian with what binning needs.
struct Projected {
    var meanX: Float, meanY: Float
    var conicA: Float, conicB: Float, conicC: Float
    var opacity: Float
    /// σ above which α < 1/255 for sure (ln(255·o) plus a little slack for rounding).
    var sigmaMax: Float
    var depth: Float
    var radius: Int32
    /// Pixel rectangle whose centres the α ≥ 1/255 ellipse may reach, inclusive.
    var x0: Int32, y0: Int32, x1: Int32, y1: Int32
}

/// Everything the forward computes on the way to a 2D Gaussian, recomputed by the VJP.
struct ProjectionTrace {
    var pCam: SIMD3<Float>
    var quatNorm: Float
    var quatUnit: SIMD4<Float>       // (w, x, y, z)
    var rq: Mat3                     // rotation of the Gaussian
    var scale: SIMD3<Float>          // exp(log-scales) (all three equal when isotropic)
    var camCov: Mat3                 // Σ in camera axes
    var clampX: Bool, clampY: Bool
    var tx: Float, ty: Float         // clamped x, y used inside J
    var j00: Float, j02: Float, j11: Float, j12: Float
    var covA: Float, covB: Float, covC: Float   // dilated 2D covariance
    var det: Float
}

extension SplatKernel {
    /// The forward trace of Gaussian i, or nil when z ≤ near or the 2D covariance is degenerate.
    @inline(__always)
    static func trace(_ i: Int, _ g: GaussianPointers, _ f: SplatFrame) -> ProjectionTrace? {
        let mean = SIMD3(g.means[3 * i], g.means[3 * i + 1], g.means[3 * i + 2])
        let p = f.rot * mean + f.trans
        guard p.z > f.near else { return nil }   // also rejects NaN
        var quatNorm: Float = 1
        var qu = SIMD4<Float>(1, 0, 0, 0)
        var rq = Mat3(SIMD3(1, 0, 0), SIMD3(0, 1, 0), SIMD3(0, 0, 1))
        let camCov: Mat3
        let scale: SIMD3<Float>
        if g.isotropic {
            let s = expf(g.logScales[i])
            scale = SIMD3(repeating: s)
            camCov = (s * s) * f.rotRotT
        } else {
            let q = SIMD4(g.quats[4 * i], g.quats[4 * i + 1], g.quats[4 * i + 2], g.quats[4 * i + 3])
            quatNorm = max((q * q).sum().squareRoot(), 1e-12)
            qu = q / quatNorm
            rq = rotation(qu.x, qu.y, qu.z, qu.w)
            scale = SIMD3(expf(g.logScales[3 * i]), expf(g.logScales[3 * i + 1]), expf(g.logScales[3 * i + 2]))
            // N = R·Rq·S, Σ_cam = N·Nᵀ
            let rrq = f.rot * rq
            let n = Mat3(rrq.r0 * scale, rrq.r1 * scale, rrq.r2 * scale)
            camCov = n * n.transposed
        }
        let rz = 1 / p.z
        let u = p.x * rz, v = p.y * rz
        let clampX = u < -f.limXNeg || u > f.limXPos
        let clampY = v < -f.limYNeg || v > f.limYPos
        let tx = p.z * min(f.limXPos, max(-f.limXNeg, u))
        let ty = p.z * min(f.limYPos, max(-f.limYNeg, v))
        let j00 = f.fx * rz, j02 = -f.fx * tx * rz * rz
        let j11 = f.fy * rz, j12 = -f.fy * ty * rz * rz
        // cov2d = J·Σ·Jᵀ with J = [[j00, 0, j02], [0, j11, j12]]
        let s = camCov
        let a = j00 * j00 * s.r0.x + 2 * j00 * j02 * s.r0.z + j02 * j02 * s.r2.z + dilation
        let b = j00 * j11 * s.r0.y + j00 * j12 * s.r0.z + j02 * j11 * s.r1.z + j02 * j12 * s.r2.z
        let c = j11 * j11 * s.r1.y + 2 * j11 * j12 * s.r1.z + j12 * j12 * s.r2.z + dilation
        let det = a * c - b * b
        guard det > 0, det.isFinite else { return nil }
        return ProjectionTrace(pCam: p, quatNorm: quatNorm, quatUnit: qu, rq: rq, scale: scale, camCov: camCov,
                               clampX: clampX, clampY: clampY, tx: tx, ty: ty,
                               j00: j00, j02: j02, j11: j11, j12: j12, covA: a, covB: b, covC: c, det: det)
    }

    /// Projects Gaussian i; nil when culled.
    @inline(__always)
    static func projectOne(_ i: Int, _ g: GaussianPointers, _ f: SplatFrame) -> Projected? {
        guard let t = trace(i, g, f) else { return nil }
        let rz = 1 / t.pCam.z
        let mx = f.fx * t.pCam.x * rz + f.cx
        let my = f.fy * t.pCam.y * rz + f.cy
        guard mx.isFinite, my.isFinite else { return nil }
        // 3σ of the largest axis decides culling (gsplat's classic radius).
        let mid = 0.5 * (t.covA + t.covC)
        let lambda = mid + max(0.01, mid * mid - t.det).squareRoot()
        let radius = (3 * lambda.squareRoot()).rounded(.up)
        let w = Float(f.width), h = Float(f.height)
        if mx + radius <= 0 || mx - radius >= w || my + radius <= 0 || my - radius >= h { return nil }
        let logit = g.logits[i]
        let opacity = 1 / (1 + expf(-logit))
        guard opacity >= alphaMin else { return nil }   // α ≤ o < 1/255 everywhere
        let sigmaMax = logf(255 * opacity) * (1 + 1e-4) + 1e-4
        // Bounding box of {d : ½·dᵀ·Σ⁻¹·d ≤ sigmaMax}.
        let ex = (2 * sigmaMax * t.covA).squareRoot(), ey = (2 * sigmaMax * t.covC).squareRoot()
        let x0 = max(0, (mx - ex - 0.5).rounded(.up)), x1 = min(w - 1, (mx + ex - 0.5).rounded(.down))
        let y0 = max(0, (my - ey - 0.5).rounded(.up)), y1 = min(h - 1, (my + ey - 0.5).rounded(.down))
        guard x0 <= x1, y0 <= y1 else { return nil }
        return Projected(meanX: mx, meanY: my,
                         conicA: t.covC / t.det, conicB: -t.covB / t.det, conicC: t.covA / t.det,
                         opacity: opacity, sigmaMax: sigmaMax, depth: t.pCam.z, radius: Int32(radius),
                         x0: Int32(x0), y0: Int32(y0), x1: Int32(x1), y1: Int32(y1))
    }

    /// Chain rule from the 2D Gaussian back to Gaussian i's raw parameters; writes (does not add)
    /// its rows of the gradient arrays.
    @inline(__always)
    static func projectOneVJP(_ i: Int, _ g: GaussianPointers, _ f: SplatFrame,
                              vMean2D: SIMD2<Float>, vConic: SIMD3<Float>, vDepth: Float, vOpacity: Float,
                              vMeans: UnsafeMutablePointer<Float>,        // [N, 3]
                              vLogScales: UnsafeMutablePointer<Float>,    // [N, 3] or [N, 1]
                              vQuats: UnsafeMutablePointer<Float>,        // [N, 4]
                              vLogits: UnsafeMutablePointer<Float>) {     // [N]
        guard let t = trace(i, g, f) else { return }
        let o = 1 / (1 + expf(-g.logits[i]))
        vLogits[i] = vOpacity * o * (1 - o)

        // Conic Q = Σ₂⁻¹: dL/dΣ₂ = −Q·G·Q with G the symmetric gradient of Q
        // (the off-diagonal b appears twice in σ, so each entry of G gets half of vConic.y).
        let q00 = t.covC / t.det, q01 = -t.covB / t.det, q11 = t.covA / t.det
        let g00 = vConic.x, g01 = 0.5 * vConic.y, g11 = vConic.z
        let m00 = q00 * g00 + q01 * g01, m01 = q00 * g01 + q01 * g11
        let m10 = q01 * g00 + q11 * g01, m11 = q01 * g01 + q11 * g11
        let va = -(m00 * q00 + m01 * q01)
        let vb = -(m00 * q01 + m01 * q11)      // = −(m10·q00 + m11·q01) by symmetry
        let vc = -(m10 * q01 + m11 * q11)
        // Σ₂ = J·Σ·Jᵀ: dL/dΣ = Jᵀ·V·J, dL/dJ = 2·V·J·Σ (V = [[va, vb], [vb, vc]]).
        let j0 = SIMD3(t.j00, 0, t.j02), j1 = SIMD3(0, t.j11, t.j12)
        let vj0 = va * j0 + vb * j1, vj1 = vb * j0 + vc * j1          // rows of V·J
        let vCamCov = Mat3(j0.x * vj0 + j1.x * vj1, j0.y * vj0 + j1.y * vj1, j0.z * vj0 + j1.z * vj1)
        let s = t.camCov
        let dJ0 = 2 * (s * vj0), dJ1 = 2 * (s * vj1)                  // rows of 2·V·J·Σ (Σ symmetric)

        // J entries depend on the camera-space mean.
        let p = t.pCam
        let rz = 1 / p.z, rz2 = rz * rz, rz3 = rz2 * rz
        var vp = SIMD3<Float>(0, 0, 0)
        vp.z += -f.fx * rz2 * dJ0.x - f.fy * rz2 * dJ1.y
        if t.clampX { vp.z += f.fx * t.tx * rz3 * dJ0.z } else {
            vp.x += -f.fx * rz2 * dJ0.z
            vp.z += 2 * f.fx * t.tx * rz3 * dJ0.z
        }
        if t.clampY { vp.z += f.fy * t.ty * rz3 * dJ1.z } else {
            vp.y += -f.fy * rz2 * dJ1.z
            vp.z += 2 * f.fy * t.ty * rz3 * dJ1.z
        }
        // mean2D = (fx·x/z + cx, fy·y/z + cy); the depth output is z itself.
        vp.x += f.fx * rz * vMean2D.x
        vp.y += f.fy * rz * vMean2D.y
        vp.z += -(f.fx * p.x * vMean2D.x + f.fy * p.y * vMean2D.y) * rz2 + vDepth
        // p = R·μ + t
        let vMean = f.rot.transposed * vp
        vMeans[3 * i] = vMean.x; vMeans[3 * i + 1] = vMean.y; vMeans[3 * i + 2] = vMean.z

        if g.isotropic {
            // Σ = s²·R·Rᵀ
            let sc = t.scale.x
            vLogScales[i] = 2 * sc * sc * vCamCov.dot(f.rotRotT)
            return
        }
        // Σ = N·Nᵀ with N = R·Rq·S: dL/dN = 2·dL/dΣ·N, dL/d(Rq·S) = Rᵀ·dL/dN.
        let rrq = f.rot * t.rq
        let n = Mat3(rrq.r0 * t.scale, rrq.r1 * t.scale, rrq.r2 * t.scale)
        let vN = 2 * (vCamCov * n)
        let vM = f.rot.transposed * vN
        // M = Rq·diag(s): dL/dRq = vM·diag(s), dL/ds_j = Σᵢ vMᵢⱼ·Rqᵢⱼ
        let vScale = vM.r0 * t.rq.r0 + vM.r1 * t.rq.r1 + vM.r2 * t.rq.r2
        let vLog = vScale * t.scale
        vLogScales[3 * i] = vLog.x; vLogScales[3 * i + 1] = vLog.y; vLogScales[3 * i + 2] = vLog.z
        let gr = Mat3(vM.r0 * t.scale, vM.r1 * t.scale, vM.r2 * t.scale)
        let (w, x, y, z) = (t.quatUnit.x, t.quatUnit.y, t.quatUnit.z, t.quatUnit.w)
        let dw = 2 * (-z * gr.r0.y + y * gr.r0.z + z * gr.r1.x - x * gr.r1.z - y * gr.r2.x + x * gr.r2.y)
        let dx = 2 * (y * gr.r0.y + z * gr.r0.z + y * gr.r1.x - 2 * x * gr.r1.y - w * gr.r1.z
                      + z * gr.r2.x + w * gr.r2.y - 2 * x * gr.r2.z)
        let dy = 2 * (-2 * y * gr.r0.x + x * gr.r0.y + w * gr.r0.z + x * gr.r1.x + z * gr.r1.z
                      - w * gr.r2.x + z * gr.r2.y - 2 * y * gr.r2.z)
        let dz = 2 * (-2 * z * gr.r0.x - w * gr.r0.y + x * gr.r0.z + w * gr.r1.x - 2 * z * gr.r1.y
                      + y * gr.r1.z + x * gr.r2.x + y * gr.r2.y)
        // q̂ = q / |q|: dL/dq = (dL/dq̂ − q̂·(q̂ · dL/dq̂)) / |q|  (just / 1e-12 below the clamp)
        let vUnit = SIMD4(dw, dx, dy, dz)
        let vq: SIMD4<Float>
        if t.quatNorm > 1e-12 {
            vq = (vUnit - t.quatUnit * (t.quatUnit * vUnit).sum()) / t.quatNorm
        } else {
            vq = vUnit / t.quatNorm
        }
        vQuats[4 * i] = vq.x; vQuats[4 * i + 1] = vq.y; vQuats[4 * i + 2] = vq.z; vQuats[4 * i + 3] = vq.w
    }

    /// Projects every Gaussian (culled ones get radius 0).
    public static func project(_ gaussians: SplatGaussians, camera: SplatCamera, threads: Int = 2) -> SplatProjection {
        let n = gaussians.count
        let frame = SplatFrame(camera)
        var means2D = [Float](repeating: 0, count: 2 * n)
        var conics = [Float](repeating: 0, count: 3 * n)
        var depths = [Float](repeating: 0, count: n)
        var opacities = [Float](repeating: 0, count: n)
        var radii = [Int32](repeating: 0, count: n)
        gaussians.withPointers { g in
            means2D.withUnsafeMutableBufferPointer { m2 in
            conics.withUnsafeMutableBufferPointer { co in
            depths.withUnsafeMutableBufferPointer { de in
            opacities.withUnsafeMutableBufferPointer { op in
            radii.withUnsafeMutableBufferPointer { ra in
                let (m2, co, de, op, ra) = (m2.baseAddress!, co.baseAddress!, de.baseAddress!, op.baseAddress!,
                                            ra.baseAddress!)
                parallelChunks(n, threads: threads) { range in
                    for i in range {
                        guard let p = projectOne(i, g, frame) else { continue }
                        m2[2 * i] = p.meanX; m2[2 * i + 1] = p.meanY
                        co[3 * i] = p.conicA; co[3 * i + 1] = p.conicB; co[3 * i + 2] = p.conicC
                        de[i] = p.depth; op[i] = p.opacity; ra[i] = p.radius
                    }
                }
            }}}}}
        }
        return SplatProjection(means2D: means2D, conics: conics, depths: depths, opacities: opacities, radii: radii)
    }

    /// Gradients of the raw parameters from cotangents on `project`'s outputs (culled Gaussians
    /// get zeros; the radius is not differentiable).
    public static func projectVJP(_ gaussians: SplatGaussians, camera: SplatCamera,
                                  vMeans2D: [Float],     // [N, 2]
                                  vConics: [Float],      // [N, 3]
                                  vDepths: [Float],      // [N]
                                  vOpacities: [Float],   // [N]
                                  threads: Int = 2) -> SplatGradients {
        let n = gaussians.count
        precondition(vMeans2D.count == 2 * n && vConics.count == 3 * n && vDepths.count == n && vOpacities.count == n,
                     "projectVJP cotangents should be [N, 2], [N, 3], [N], [N] for N = \(n)")
        let frame = SplatFrame(camera)
        var grads = SplatGradients.zeros(for: gaussians)
        gaussians.withPointers { g in
            grads.withMutablePointers { vm, vs, vq, vo, _ in
                parallelChunks(n, threads: threads) { range in
                    for i in range where projectOne(i, g, frame) != nil {
                        projectOneVJP(i, g, frame,
                                      vMean2D: SIMD2(vMeans2D[2 * i], vMeans2D[2 * i + 1]),
                                      vConic: SIMD3(vConics[3 * i], vConics[3 * i + 1], vConics[3 * i + 2]),
                                      vDepth: vDepths[i], vOpacity: vOpacities[i],
                                      vMeans: vm, vLogScales: vs, vQuats: vq, vLogits: vo)
                    }
                }
            }
        }
        return grads
    }
}

extension SplatGradients {
    static func zeros(for g: SplatGaussians) -> SplatGradients {
        SplatGradients(vMeans: [Float](repeating: 0, count: 3 * g.count),
                       vLogScales: [Float](repeating: 0, count: g.logScales.count),
                       vQuats: [Float](repeating: 0, count: 4 * g.count),
                       vOpacityLogits: [Float](repeating: 0, count: g.count),
                       vFeatures: [Float](repeating: 0, count: g.count * g.channels))
    }

    mutating func withMutablePointers<R>(
        _ body: (UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>,
                 UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> R
    ) -> R {
        // Empty arrays have no base address; a dangling but never-dereferenced pointer stands in.
        let none = UnsafeMutablePointer<Float>(bitPattern: 8)!
        return vMeans.withUnsafeMutableBufferPointer { m in
            vLogScales.withUnsafeMutableBufferPointer { s in
                vQuats.withUnsafeMutableBufferPointer { q in
                    vOpacityLogits.withUnsafeMutableBufferPointer { o in
                        vFeatures.withUnsafeMutableBufferPointer { f in
                            body(m.baseAddress ?? none, s.baseAddress ?? none, q.baseAddress ?? none,
                                 o.baseAddress ?? none, f.baseAddress ?? none)
                        }
                    }
                }
            }
        }
    }
}

