/// The per-tile forward kernel. A tile is 16 rows of two 8-pixel groups; each group runs the
/// front-to-back scan with one SIMD lane per pixel (phase 1: which Gaussians blend, with what weight
/// α·T), then sums the features of its hits with SIMD over pixels, 8 channels per pass (phase 2).
/// Channels-first output makes a group's 8 pixels of one channel a contiguous store.

typealias Lanes = SIMD8<Float>
typealias LaneMask = SIMDMask<SIMD8<Int32>>

/// Pixel-centre offsets of the 8 lanes.
let laneCentres = Lanes(0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5)
let laneNumbers = SIMD8<Int32>(0, 1, 2, 3, 4, 5, 6, 7)

/// e^(−s) for s ≥ 0 with relative error below 1e-7: 2^x split into integer and fraction in
/// [−½, ½], a degree-5 polynomial (weighted least squares) and the exponent bits.
@inline(__always)
func expNeg(_ s: Lanes) -> Lanes {
    var x = s * -1.442695040888963
    x.replace(with: -126, where: x .< -126)
    let whole = x.rounded(.toNearestOrEven)
    let f = x - whole
    var p = Lanes(repeating: 1.3266979930944296e-3)
    p = p * f + 9.675469400251213e-3
    p = p * f + 5.550742675435101e-2
    p = p * f + 2.4022121576138517e-1
    p = p * f + 6.931469490691712e-1
    p = p * f + 1.0000000710651842
    // whole + 1.5·2²³ keeps the integer in the low mantissa bits; move it into the exponent.
    let bits = (unsafeBitCast(whole + 12582912.0, to: SIMD8<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23
    return p * unsafeBitCast(bits, to: Lanes.self)
}

/// The blending weight of one Gaussian for one group: σ, e^(−σ), α and which lanes pass the
/// σ ≥ 0 and α ≥ 1/255 tests. Forward and backward call exactly this, so they agree on every lane.
@inline(__always)
func splatAlpha(dx: Lanes, dy: Float, halfA: Float, b: Float, halfC: Float, opacity: Float, sigmaMax: Float,
                active: LaneMask) -> (sigma: Lanes, vis: Lanes, alpha: Lanes, mask: LaneMask)? {
    let sigma = (halfA * dx + b * dy) * dx + halfC * dy * dy
    var m = active .& (sigma .<= sigmaMax) .& (sigma .>= 0)
    if !any(m) { return nil }
    let vis = expNeg(sigma)
    let alpha = pointwiseMin(opacity * vis, Lanes(repeating: Splat.alphaMax))
    m = m .& (alpha .>= Splat.alphaMin)
    if !any(m) { return nil }
    return (sigma, vis, alpha, m)
}

@inline(__always)
func loadLanes(_ p: UnsafePointer<Float>, _ lanes: Int) -> Lanes {
    if lanes == 8 { return UnsafeRawPointer(p).loadUnaligned(as: Lanes.self) }
    var v = Lanes(repeating: 0)
    for l in 0..<lanes { v[l] = p[l] }
    return v
}

@inline(__always)
func storeLanes(_ v: Lanes, _ p: UnsafeMutablePointer<Float>, _ lanes: Int) {
    if lanes == 8 { UnsafeMutableRawPointer(p).storeBytes(of: v, as: Lanes.self); return }
    for l in 0..<lanes { p[l] = v[l] }
}

/// Read-only inputs of the tile kernels, as raw pointers.
struct TileInputs {
    var width: Int, height: Int, channels: Int, tilesX: Int
    var visible2D: UnsafePointer<Float>     // [M, 8]
    var visibleIndex: UnsafePointer<Int32>  // [M]
    var tileStart: UnsafePointer<Int32>     // [tiles + 1]
    var tileList: UnsafePointer<Int32>      // [intersections]
    var features: UnsafePointer<Float>      // [N, C]
    var background: UnsafePointer<Float>    // [C]
}

extension SplatWorkerScratch {
    /// Copies tile t's candidates into the SoA scratch; returns their count.
    @inline(__always)
    func gather(tile t: Int, _ inp: TileInputs) -> (start: Int, count: Int) {
        let start = Int(inp.tileStart[t]), n = Int(inp.tileStart[t + 1]) - start
        let mx = meanX.pointer, my = meanY.pointer, ha = halfA.pointer, bb = conicB.pointer, hc = halfC.pointer
        let rq = rowQ.pointer, op = opacity.pointer, sm = sigmaMax.pointer, z = depth.pointer
        let fo = featureOffset.pointer
        for p in 0..<n {
            let id = Int(inp.tileList[start + p])
            let g = inp.visible2D + Splat.Packed.stride * id
            let a = g[Splat.Packed.conicA], b = g[Splat.Packed.conicB], c = g[Splat.Packed.conicC]
            mx[p] = g[Splat.Packed.meanX]; my[p] = g[Splat.Packed.meanY]
            ha[p] = 0.5 * a; bb[p] = b; hc[p] = 0.5 * c
            rq[p] = 0.5 * (c - b * b / a) * (1 - 1e-5)   // a hair low: the row test must never reject a hit
            op[p] = g[Splat.Packed.opacity]; sm[p] = g[Splat.Packed.sigmaMax]; z[p] = g[Splat.Packed.depth]
            fo[p] = Int(inp.visibleIndex[id]) * inp.channels
        }
        return (start, n)
    }
}

/// Output planes of the forward kernel.
struct TileOutputs {
    var features: UnsafeMutablePointer<Float>    // [C, H, W]
    var alpha: UnsafeMutablePointer<Float>       // [H, W]
    var depth: UnsafeMutablePointer<Float>       // [H, W]
    var finalT: UnsafeMutablePointer<Float>      // [H, W]
    var last: UnsafeMutablePointer<Int32>        // [H, W]
}

extension Splat {
    static func rasterizeTiles(_ gaussians: SplatGaussians, camera: SplatCamera, options: SplatOptions,
                               binning: SplatBinning, workspace ws: SplatWorkspace) -> (image: SplatImage, tape: SplatTape) {
        let w = camera.width, h = camera.height, c = gaussians.channels
        let pixels = w * h
        let tiles = binning.tilesX * binning.tilesY
        let workers = max(1, min(options.threads, tiles))
        ws.prepareWorkers(workers, candidates: binning.longestList, channels: c, backward: false)
        let background = options.background.isEmpty ? [Float](repeating: 0, count: c) : options.background
        let expected = options.depthMode == .expected

        var features = [Float](repeating: 0, count: c * pixels)
        var alpha = [Float](repeating: 0, count: pixels)
        var depth = [Float](repeating: 0, count: pixels)
        var finalT = [Float](repeating: 0, count: pixels)
        var last = [Int32](repeating: 0, count: pixels)
        features.withUnsafeMutableBufferPointer { fo in
        alpha.withUnsafeMutableBufferPointer { al in
        depth.withUnsafeMutableBufferPointer { de in
        finalT.withUnsafeMutableBufferPointer { ft in
        last.withUnsafeMutableBufferPointer { la in
        binning.visible2D.withUnsafeBufferPointer { v2 in
        binning.visibleIndex.withUnsafeBufferPointer { vi in
        binning.tileStart.withUnsafeBufferPointer { tst in
        binning.tileList.withUnsafeBufferPointer { tl in
        gaussians.features.withUnsafeBufferPointer { gf in
        background.withUnsafeBufferPointer { bg in
            let none = UnsafePointer<Float>(bitPattern: 8)!
            let inp = TileInputs(width: w, height: h, channels: c, tilesX: binning.tilesX,
                                 visible2D: v2.baseAddress ?? none,
                                 visibleIndex: vi.baseAddress ?? UnsafePointer(bitPattern: 8)!,
                                 tileStart: tst.baseAddress!,
                                 tileList: tl.baseAddress ?? UnsafePointer(bitPattern: 8)!,
                                 features: gf.baseAddress ?? none, background: bg.baseAddress!)
            let out = TileOutputs(features: fo.baseAddress!, alpha: al.baseAddress!, depth: de.baseAddress!,
                                  finalT: ft.baseAddress!, last: la.baseAddress!)
            concurrentWorkers(workers) { wk in
                let scratch = ws.workers[wk]
                // Round-robin tiles: neighbouring tiles cost alike, so this balances without a shared
                // counter, and the assignment (hence the backward's summation order) is fixed.
                for t in stride(from: wk, to: tiles, by: workers) {
                    forwardTile(t, inp, out, scratch, expectedDepth: expected)
                }
            }
        }}}}}}}}}}}

        let image = SplatImage(width: w, height: h, channels: c, features: features, alpha: alpha, depth: depth)
        let tape = SplatTape(gaussians: gaussians, camera: camera, options: options, depth: depth,
                             finalT: finalT, lastContributor: last,
                             visibleIndex: binning.visibleIndex, visible2D: binning.visible2D,
                             tileStart: binning.tileStart, tileList: binning.tileList)
        return (image, tape)
    }

    static func forwardTile(_ t: Int, _ inp: TileInputs, _ out: TileOutputs, _ s: SplatWorkerScratch,
                            expectedDepth: Bool) {
        let (_, n) = s.gather(tile: t, inp)
        let mx = s.meanX.pointer, my = s.meanY.pointer, ha = s.halfA.pointer, bb = s.conicB.pointer
        let hc = s.halfC.pointer, rq = s.rowQ.pointer, op = s.opacity.pointer, sm = s.sigmaMax.pointer
        let zs = s.depth.pointer, fo = s.featureOffset.pointer
        let hitIndex = s.hitIndex.pointer, hitWeight = s.hitWeight.pointer
        let w = inp.width, h = inp.height, c = inp.channels, plane = w * h
        let tileX = t % inp.tilesX, tileY = t / inp.tilesX

        for row in 0..<tileSize {
            let py = tileY * tileSize + row
            if py >= h { break }
            let pyc = Float(py) + 0.5
            for half in 0..<2 {
                let px0 = tileX * tileSize + half * 8
                if px0 >= w { break }
                let lanes = min(8, w - px0)
                let pxc = laneCentres + Float(px0)
                var done = laneNumbers .>= Int32(lanes)
                var tr = Lanes(repeating: 1)
                var lastHit = SIMD8<Int32>(repeating: 0)
                var hits = 0

                // Phase 1: front to back, which candidates blend into which lanes.
                for p in 0..<n {
                    let dy = my[p] - pyc
                    if rq[p] * dy * dy > sm[p] { continue }
                    let dx = mx[p] - pxc
                    guard let e = splatAlpha(dx: dx, dy: dy, halfA: ha[p], b: bb[p], halfC: hc[p],
                                             opacity: op[p], sigmaMax: sm[p], active: .!done) else { continue }
                    var m = e.mask
                    let nextT = tr * (1 - e.alpha)
                    let stop = m .& (nextT .<= transmittanceMin)
                    if any(stop) {
                        done = done .| stop
                        m = m .& .!stop
                    }
                    if any(m) {
                        hitIndex[hits] = Int32(p)
                        hitWeight[hits] = (e.alpha * tr).replacing(with: 0, where: .!m)
                        hits += 1
                        tr.replace(with: nextT, where: m)
                        lastHit.replace(with: Int32(p + 1), where: m)
                    }
                    if any(stop) && all(done) { break }
                }

                // Phase 2: features, 8 channels per pass over the hits.
                let at = py * w + px0
                var ch = 0
                while ch + 8 <= c {
                    var a0 = Lanes(), a1 = Lanes(), a2 = Lanes(), a3 = Lanes()
                    var a4 = Lanes(), a5 = Lanes(), a6 = Lanes(), a7 = Lanes()
                    for k in 0..<hits {
                        let wt = hitWeight[k]
                        let f = inp.features + (fo[Int(hitIndex[k])] + ch)
                        a0 += wt * f[0]; a1 += wt * f[1]; a2 += wt * f[2]; a3 += wt * f[3]
                        a4 += wt * f[4]; a5 += wt * f[5]; a6 += wt * f[6]; a7 += wt * f[7]
                    }
                    let o = out.features + (ch * plane + at), bg = inp.background + ch
                    storeLanes(a0 + tr * bg[0], o, lanes)
                    storeLanes(a1 + tr * bg[1], o + plane, lanes)
                    storeLanes(a2 + tr * bg[2], o + 2 * plane, lanes)
                    storeLanes(a3 + tr * bg[3], o + 3 * plane, lanes)
                    storeLanes(a4 + tr * bg[4], o + 4 * plane, lanes)
                    storeLanes(a5 + tr * bg[5], o + 5 * plane, lanes)
                    storeLanes(a6 + tr * bg[6], o + 6 * plane, lanes)
                    storeLanes(a7 + tr * bg[7], o + 7 * plane, lanes)
                    ch += 8
                }
                while ch < c {
                    var a0 = Lanes()
                    for k in 0..<hits { a0 += hitWeight[k] * inp.features[fo[Int(hitIndex[k])] + ch] }
                    storeLanes(a0 + tr * inp.background[ch], out.features + (ch * plane + at), lanes)
                    ch += 1
                }
                var d = Lanes()
                for k in 0..<hits { d += hitWeight[k] * zs[Int(hitIndex[k])] }
                let coverage = 1 - tr
                if expectedDepth {
                    d = (d / coverage).replacing(with: 0, where: coverage .<= 0)
                }
                storeLanes(coverage, out.alpha + at, lanes)
                storeLanes(d, out.depth + at, lanes)
                storeLanes(tr, out.finalT + at, lanes)
                for l in 0..<lanes { out.last[at + l] = lastHit[l] }
            }
        }
    }
}
