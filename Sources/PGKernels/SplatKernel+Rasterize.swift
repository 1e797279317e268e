internal import CPrefetch
import PGTensor

/// The per-tile forward kernel. A tile is 16 rows of two 8-pixel groups; each group runs the
/// front-to-back scan with one SIMD lane per pixel (phase 1: which Gaussians blend, with what weight
/// α·T), then sums the features of its hits with SIMD over pixels, 8 channels per pass (phase 2).
/// Channels-first output makes a group's 8 pixels of one channel a contiguous store.

/// One candidate as the per-pixel loops read it: a single 32-byte record.
enum Candidate {
    static let meanX = 0, meanY = 1, halfA = 2, conicB = 3, halfC = 4, opacity = 5, depth = 6
}

/// How one Gaussian (`g`, a Candidate record) meets one group of 8 pixel centres:
/// d = mean − centre, σ = ½a·dx² + b·dx·dy + ½c·dy², e^(−σ), α = min(0.99, o·e^(−σ)), and the
/// lanes that pass σ ≥ 0 and α ≥ 1/255. Forward and backward both call exactly this, so they agree
/// on every lane.
@inline(__always)
func splatAlpha(_ g: Lanes, pxc: Lanes, pyc: Float)
    -> (dx: Lanes, dy: Float, vis: Lanes, alpha: Lanes, mask: LaneMask) {
    let dy = g[Candidate.meanY] - pyc
    let dx = g[Candidate.meanX] - pxc
    let t = Lanes(repeating: g[Candidate.conicB] * dy).addingProduct(Lanes(repeating: g[Candidate.halfA]), dx)
    let sigma = Lanes(repeating: g[Candidate.halfC] * dy * dy).addingProduct(t, dx)
    let vis = expNeg(sigma)
    let ov = g[Candidate.opacity] * vis
    let alpha = ov.replacing(with: SplatKernel.alphaMax, where: ov .> SplatKernel.alphaMax)
    return (dx, dy, vis, alpha, (sigma .>= 0) .& (alpha .>= SplatKernel.alphaMin))
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
    /// Copies tile t's candidates into the SoA scratch and their feature rows into `localFeatures`
    /// (row p at p·C: the per-pixel loops then read a few kilobytes that stay in L1, not rows
    /// scattered over the whole [N, C] array), padded to a multiple of 8 with entries
    /// that never touch a pixel; returns where the tile's list starts and its length.
    @inline(__always)
    func gather(tile t: Int, _ inp: TileInputs) -> (start: Int, count: Int) {
        let start = Int(inp.tileStart[t]), n = Int(inp.tileStart[t + 1]) - start
        let mx = meanX.pointer, my = meanY.pointer, ha = halfA.pointer, bb = conicB.pointer, hc = halfC.pointer
        let op = opacity.pointer, sm = sigmaMax.pointer, z = depth.pointer, ia = inverseA.pointer
        let fo = featureOffset.pointer, record = candidate.pointer, lf = localFeatures.pointer
        for p in 0..<n {
            let id = Int(inp.tileList[start + p])
            let g = inp.visible2D + SplatKernel.Packed.stride * id
            let a = g[SplatKernel.Packed.conicA]
            mx[p] = g[SplatKernel.Packed.meanX]; my[p] = g[SplatKernel.Packed.meanY]
            ha[p] = 0.5 * a; bb[p] = g[SplatKernel.Packed.conicB]; hc[p] = 0.5 * g[SplatKernel.Packed.conicC]
            ia[p] = 1 / a
            op[p] = g[SplatKernel.Packed.opacity]; sm[p] = g[SplatKernel.Packed.sigmaMax]; z[p] = g[SplatKernel.Packed.depth]
            fo[p] = p * inp.channels
            copyFeatures(from: inp.features + Int(inp.visibleIndex[id]) * inp.channels, to: lf + p * inp.channels, inp.channels)
            record[p] = Lanes(mx[p], my[p], ha[p], bb[p], hc[p], op[p], z[p], 0)
        }
        for p in n..<((n + 7) & ~7) {
            mx[p] = 0; my[p] = 0; ha[p] = 1; bb[p] = 0; hc[p] = 1; ia[p] = 1; op[p] = 0; sm[p] = -1; z[p] = 0
            fo[p] = 0
        }
        return (start, n)
    }

    /// Lists, in depth order, the candidates whose {σ ≤ sigmaMax} ellipse reaches the pixel row
    /// centred at `pyc` between the left (`x0 + ½ … x0 + 7½`) or right 8 pixel centres, eight
    /// candidates at a time. Along the row σ is the convex quadratic ½a·dx² + b·dy·dx + ½c·dy² in
    /// dx = mean − x, so its minimum over the segment sits at the vertex −b·dy/a clamped into the
    /// segment. A little slack keeps rounding from dropping a candidate the per-pixel test would take.
    @inline(__always)
    func rowLists(pyc: Float, x0: Float, count n: Int) -> (left: Int, right: Int) {
        let mx = UnsafeRawPointer(meanX.pointer), my = UnsafeRawPointer(meanY.pointer)
        let ha = UnsafeRawPointer(halfA.pointer), bb = UnsafeRawPointer(conicB.pointer)
        let hc = UnsafeRawPointer(halfC.pointer), sm = UnsafeRawPointer(sigmaMax.pointer)
        let ia = UnsafeRawPointer(inverseA.pointer)
        let left = UnsafeMutableRawPointer(leftList.pointer), right = UnsafeMutableRawPointer(rightList.pointer)
        let packed = laneCompaction.pointer
        var nl = 0, nr = 0
        var base = 0
        while base < n {
            let o = base * MemoryLayout<Float>.stride
            let dy = my.loadUnaligned(fromByteOffset: o, as: Lanes.self) - pyc
            let m = mx.loadUnaligned(fromByteOffset: o, as: Lanes.self) - x0
            let halfA = ha.loadUnaligned(fromByteOffset: o, as: Lanes.self)
            let bdy = bb.loadUnaligned(fromByteOffset: o, as: Lanes.self) * dy
            let k = hc.loadUnaligned(fromByteOffset: o, as: Lanes.self) * dy * dy
            let limit = sm.loadUnaligned(fromByteOffset: o, as: Lanes.self) * (1 + 1e-5) + 1e-5
            let vertex = -bdy * ia.loadUnaligned(fromByteOffset: o, as: Lanes.self)
            // Left pixels have dx in [m − 7.5, m − 0.5], right ones in [m − 15.5, m − 8.5].
            var dl = vertex.replacing(with: m - 7.5, where: vertex .< m - 7.5)
            dl.replace(with: m - 0.5, where: dl .> m - 0.5)
            var dr = vertex.replacing(with: m - 15.5, where: vertex .< m - 15.5)
            dr.replace(with: m - 8.5, where: dr .> m - 8.5)
            let inLeft = (halfA * dl + bdy) * dl + k .<= limit
            let inRight = (halfA * dr + bdy) * dr + k .<= limit
            // Branch-free stream compaction: store all 8 packed lane numbers, keep the set ones.
            let first = SIMD8<Int32>(repeating: Int32(truncatingIfNeeded: base))
            let lb = laneBits(inLeft), rb = laneBits(inRight)
            left.storeBytes(of: packed[Int(lb)] &+ first, toByteOffset: 4 * nl, as: SIMD8<Int32>.self)
            right.storeBytes(of: packed[Int(rb)] &+ first, toByteOffset: 4 * nr, as: SIMD8<Int32>.self)
            nl &+= lb.nonzeroBitCount
            nr &+= rb.nonzeroBitCount
            base += 8
        }
        return (nl, nr)
    }
}

/// Worker k of n renders every n-th row of tiles, starting at row k. Neighbouring rows cost alike,
/// so this balances without a shared counter; the assignment (hence the backward's summation
/// order) is fixed; and two workers never write to the same cache line, as they would with
/// neighbouring tiles of one row (a pixel row of one tile and of the next share a line).
func tileRowsPerWorker(threads: Int, tilesY: Int) -> Int { max(1, min(threads, tilesY)) }

/// Copies one pixel row of a tile (at most 16 floats): two 8-wide moves in the common case, not a
/// call to memmove for 64 bytes.
@inline(__always)
func copyFeatures(from src: UnsafePointer<Float>, to dst: UnsafeMutablePointer<Float>, _ count: Int) {
    var i = 0
    while i + 8 <= count {
        UnsafeMutableRawPointer(dst + i).storeBytes(of: UnsafeRawPointer(src + i).loadUnaligned(as: Lanes.self), as: Lanes.self)
        i += 8
    }
    while i < count { dst[i] = src[i]; i += 1 }
}

@inline(__always)
func copyTileRow(from src: UnsafePointer<Float>, to dst: UnsafeMutablePointer<Float>, _ count: Int) {
    if count == 16 {
        let a = UnsafeRawPointer(src).loadUnaligned(as: Lanes.self)
        let b = UnsafeRawPointer(src + 8).loadUnaligned(as: Lanes.self)
        UnsafeMutableRawPointer(dst).storeBytes(of: a, as: Lanes.self)
        UnsafeMutableRawPointer(dst + 8).storeBytes(of: b, as: Lanes.self)
    } else {
        for i in 0..<count { dst[i] = src[i] }
    }
}

/// The tile a worker takes after t in `tileRowsPerWorker`'s deal, or -1.
@inline(__always)
func nextTile(after t: Int, tilesX: Int, tilesY: Int, workers: Int) -> Int {
    if (t + 1) % tilesX != 0 { return t + 1 }
    let ty = t / tilesX + workers
    return ty < tilesY ? ty * tilesX : -1
}

/// Prefetches pixel row `row` of tile `tile` (-1: nothing) in every one of the C planes at `base`
/// ([C, H, W]). A tile's rows of a plane lie a whole image row apart, which the hardware
/// prefetchers do not follow, so without this every tile waits on memory for C·16 scattered lines
/// (the [C, H, W] images are megabytes); fetched one row ahead of need, the loads overlap the
/// rendering of the tile before.
@inline(__always)
func prefetchTileRow(_ base: UnsafePointer<Float>, tile: Int, row: Int, _ inp: TileInputs) {
    if tile < 0 { return }
    let x0 = (tile % inp.tilesX) * SplatKernel.tileSize, y = (tile / inp.tilesX) * SplatKernel.tileSize + row
    if y >= inp.height { return }
    let last = min(SplatKernel.tileSize, inp.width - x0) - 1
    var p = base + (y * inp.width + x0)
    let plane = inp.width * inp.height
    for _ in 0..<inp.channels {
        pg_prefetch_read(p)
        pg_prefetch_read(p + last)
        p += plane
    }
}

/// Pixels in a tile.
let tilePixels = SplatKernel.tileSize * SplatKernel.tileSize

/// Output planes of the forward kernel.
struct TileOutputs {
    var features: UnsafeMutablePointer<Float>    // [C, H, W]
    var alpha: UnsafeMutablePointer<Float>       // [H, W]
    var depth: UnsafeMutablePointer<Float>       // [H, W]
    var finalT: UnsafeMutablePointer<Float>      // [H, W]
    var last: UnsafeMutablePointer<Int32>        // [H, W]
}

extension SplatKernel {
    static func rasterizeTiles(_ gaussians: SplatGaussians, camera: SplatCamera, options: SplatOptions,
                               binning: SplatBinning, workspace ws: SplatWorkspace) -> (image: SplatImage, tape: SplatTape) {
        let w = camera.width, h = camera.height, c = gaussians.channels
        let pixels = w * h
        let workers = tileRowsPerWorker(threads: options.threads, tilesY: binning.tilesY)
        ws.prepareWorkers(workers, candidates: binning.longestList, channels: c, backward: false)
        let background = options.background.isEmpty ? [Float](repeating: 0, count: c) : options.background
        let expected = options.depthMode == .expected

        // Every pixel belongs to exactly one 8-pixel group, which writes all five planes, so the
        // arrays start uninitialised and their pages are first touched by the workers in parallel.
        var alpha: [Float] = [], depth: [Float] = [], finalT: [Float] = [], last: [Int32] = []
        let features = [Float](unsafeUninitializedCapacity: c * pixels) { fo, fc in
        alpha = [Float](unsafeUninitializedCapacity: pixels) { al, ac in
        depth = [Float](unsafeUninitializedCapacity: pixels) { de, dc in
        finalT = [Float](unsafeUninitializedCapacity: pixels) { ft, tc in
        last = [Int32](unsafeUninitializedCapacity: pixels) { la, lc in
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
                // Every workers-th row of tiles (see `tileRowsPerWorker`).
                for ty in stride(from: wk, to: binning.tilesY, by: workers) {
                    for t in (ty * binning.tilesX)..<((ty + 1) * binning.tilesX) {
                        let next = nextTile(after: t, tilesX: binning.tilesX, tilesY: binning.tilesY, workers: workers)
                        forwardTile(t, inp, out, scratch, expectedDepth: expected, next: next)
                    }
                }
            }
        }}}}}}
            lc = pixels
        }
            tc = pixels
        }
            dc = pixels
        }
            ac = pixels
        }
            fc = c * pixels
        }

        let image = SplatImage(width: w, height: h, channels: c, features: features, alpha: alpha, depth: depth)
        let tape = SplatTape(gaussians: gaussians, camera: camera, options: options, depth: depth,
                             finalT: finalT, lastContributor: last,
                             visibleIndex: binning.visibleIndex, visible2D: binning.visible2D,
                             tileStart: binning.tileStart, tileList: binning.tileList)
        return (image, tape)
    }

    /// `next`: the tile this worker renders after t (-1: none), whose output lines are fetched
    /// into cache while t renders.
    static func forwardTile(_ t: Int, _ inp: TileInputs, _ out: TileOutputs, _ s: SplatWorkerScratch,
                            expectedDepth: Bool, next: Int) {
        let (_, n) = s.gather(tile: t, inp)
        let record = s.candidate.pointer, zs = s.depth.pointer, fo = s.featureOffset.pointer
        let features = UnsafePointer(s.localFeatures.pointer)
        let hitIndex = s.hitIndex.pointer, hitWeight = s.hitWeight.pointer
        let w = inp.width, h = inp.height, c = inp.channels, plane = w * h
        let tileX = t % inp.tilesX, tileY = t / inp.tilesX
        // Features go to a tile-sized buffer first and out to the C planes at the end, one plane at
        // a time: storing 8 pixels into each of C planes per group would touch C cache lines
        // spread over the whole image for every 8 pixels.
        let staged = s.tileFeatures.pointer

        for row in 0..<tileSize {
            prefetchTileRow(UnsafePointer(out.features), tile: next, row: row, inp)
            let py = tileY * tileSize + row
            if py >= h { break }
            let pyc = Float(py) + 0.5
            let (nl, nr) = s.rowLists(pyc: pyc, x0: Float(tileX * tileSize), count: n)
            for half in 0..<2 {
                let px0 = tileX * tileSize + half * 8
                if px0 >= w { break }
                let list = half == 0 ? s.leftList.pointer : s.rightList.pointer
                let listCount = half == 0 ? nl : nr
                let lanes = min(8, w - px0)
                let slot = row * tileSize + half * 8
                let pxc = laneCentres + Float(px0)
                // Lanes still blending have live = 1 (a float, so every mask below comes straight
                // from a comparison, which keeps `any` a single vtestps).
                var live = Lanes(repeating: 1).replacing(with: 0, where: laneCentres .> Float(lanes))
                var tr = Lanes(repeating: 1)
                var lastHit = SIMD8<Int32>(repeating: 0)
                var hits = 0

                // Phase 1: front to back, which candidates blend into which lanes. Nearly every
                // listed candidate blends somewhere, so there is one branch per candidate.
                for j in 0..<listCount {
                    let p = Int(list[j])
                    let e = splatAlpha(record[p], pxc: pxc, pyc: pyc)
                    let m = e.mask .& (live .> 0)
                    if !anyLane(m) { continue }
                    let nextT = tr * (1 - e.alpha)
                    let blend = m .& (nextT .> transmittanceMin)
                    hitIndex[hits] = Int32(truncatingIfNeeded: p)
                    hitWeight[hits] = (e.alpha * tr).replacing(with: 0, where: .!blend)
                    hits &+= 1
                    tr.replace(with: nextT, where: blend)
                    lastHit.replace(with: Int32(truncatingIfNeeded: p &+ 1), where: blend)
                    let stop = m .& (nextT .<= transmittanceMin)
                    if anyLane(stop) {
                        live.replace(with: 0, where: stop)
                        if !anyLane(live .> 0) { break }
                    }
                }

                // Phase 2: features, 8 channels per pass over the hits.
                let at = py * w + px0
                var ch = 0
                while ch + 8 <= c {
                    var a0 = Lanes(), a1 = Lanes(), a2 = Lanes(), a3 = Lanes()
                    var a4 = Lanes(), a5 = Lanes(), a6 = Lanes(), a7 = Lanes()
                    for k in 0..<hits {
                        let wt = hitWeight[k]
                        let f = features + (fo[Int(hitIndex[k])] &+ ch)
                        a0 = a0.addingProduct(wt, Lanes(repeating: f[0]))
                        a1 = a1.addingProduct(wt, Lanes(repeating: f[1]))
                        a2 = a2.addingProduct(wt, Lanes(repeating: f[2]))
                        a3 = a3.addingProduct(wt, Lanes(repeating: f[3]))
                        a4 = a4.addingProduct(wt, Lanes(repeating: f[4]))
                        a5 = a5.addingProduct(wt, Lanes(repeating: f[5]))
                        a6 = a6.addingProduct(wt, Lanes(repeating: f[6]))
                        a7 = a7.addingProduct(wt, Lanes(repeating: f[7]))
                    }
                    let o = staged + (ch * tilePixels + slot), bg = inp.background + ch
                    storeLanes(a0 + tr * bg[0], o, 8)
                    storeLanes(a1 + tr * bg[1], o + tilePixels, 8)
                    storeLanes(a2 + tr * bg[2], o + 2 * tilePixels, 8)
                    storeLanes(a3 + tr * bg[3], o + 3 * tilePixels, 8)
                    storeLanes(a4 + tr * bg[4], o + 4 * tilePixels, 8)
                    storeLanes(a5 + tr * bg[5], o + 5 * tilePixels, 8)
                    storeLanes(a6 + tr * bg[6], o + 6 * tilePixels, 8)
                    storeLanes(a7 + tr * bg[7], o + 7 * tilePixels, 8)
                    ch += 8
                }
                // The last C mod 8 channels and the depth, up to four independent sums per pass
                // (one accumulator per pass would wait on the FMA latency at every hit).
                var d = Lanes()
                var depthDone = false
                while ch < c || !depthDone {
                    let k = min(4, c - ch)
                    var a0 = Lanes(), a1 = Lanes(), a2 = Lanes(), a3 = Lanes()
                    switch k {
                    case 4:
                        for h in 0..<hits {
                            let wt = hitWeight[h], f = features + (fo[Int(hitIndex[h])] &+ ch)
                            a0 = a0.addingProduct(wt, Lanes(repeating: f[0]))
                            a1 = a1.addingProduct(wt, Lanes(repeating: f[1]))
                            a2 = a2.addingProduct(wt, Lanes(repeating: f[2]))
                            a3 = a3.addingProduct(wt, Lanes(repeating: f[3]))
                        }
                    case 3:
                        for h in 0..<hits {
                            let wt = hitWeight[h], p = Int(hitIndex[h]), f = features + (fo[p] &+ ch)
                            a0 = a0.addingProduct(wt, Lanes(repeating: f[0]))
                            a1 = a1.addingProduct(wt, Lanes(repeating: f[1]))
                            a2 = a2.addingProduct(wt, Lanes(repeating: f[2]))
                            a3 = a3.addingProduct(wt, Lanes(repeating: zs[p]))
                        }
                        d = a3
                        depthDone = true
                    case 2:
                        for h in 0..<hits {
                            let wt = hitWeight[h], p = Int(hitIndex[h]), f = features + (fo[p] &+ ch)
                            a0 = a0.addingProduct(wt, Lanes(repeating: f[0]))
                            a1 = a1.addingProduct(wt, Lanes(repeating: f[1]))
                            a2 = a2.addingProduct(wt, Lanes(repeating: zs[p]))
                        }
                        d = a2
                        depthDone = true
                    case 1:
                        for h in 0..<hits {
                            let wt = hitWeight[h], p = Int(hitIndex[h])
                            a0 = a0.addingProduct(wt, Lanes(repeating: features[fo[p] &+ ch]))
                            a1 = a1.addingProduct(wt, Lanes(repeating: zs[p]))
                        }
                        d = a1
                        depthDone = true
                    default:
                        for h in 0..<hits { d = d.addingProduct(hitWeight[h], Lanes(repeating: zs[Int(hitIndex[h])])) }
                        depthDone = true
                    }
                    let o = staged + (ch * tilePixels + slot), bg = inp.background + ch
                    if k > 0 { storeLanes(a0.addingProduct(tr, Lanes(repeating: bg[0])), o, 8) }
                    if k > 1 { storeLanes(a1.addingProduct(tr, Lanes(repeating: bg[1])), o + tilePixels, 8) }
                    if k > 2 { storeLanes(a2.addingProduct(tr, Lanes(repeating: bg[2])), o + 2 * tilePixels, 8) }
                    if k > 3 { storeLanes(a3.addingProduct(tr, Lanes(repeating: bg[3])), o + 3 * tilePixels, 8) }
                    ch += max(k, 0)
                }
                let coverage = 1 - tr
                if expectedDepth {
                    d = (d / coverage).replacing(with: 0, where: coverage .<= 0)
                }
                storeLanes(coverage, out.alpha + at, lanes)
                storeLanes(d, out.depth + at, lanes)
                storeLanes(tr, out.finalT + at, lanes)
                if lanes == 8 {
                    UnsafeMutableRawPointer(out.last + at).storeBytes(of: lastHit, as: SIMD8<Int32>.self)
                } else {
                    for l in 0..<lanes { out.last[at + l] = lastHit[l] }
                }
            }
        }
        let x0 = tileX * tileSize, y0 = tileY * tileSize
        let tw = min(tileSize, w - x0), th = min(tileSize, h - y0)
        for ch in 0..<c {
            for r in 0..<th {
                copyTileRow(from: staged + (ch * tilePixels + r * tileSize), to: out.features + (ch * plane + (y0 + r) * w + x0), tw)
            }
        }
    }
}
