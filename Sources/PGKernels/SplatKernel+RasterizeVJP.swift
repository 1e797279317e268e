import PGTensor

/// The per-tile backward kernel (gsplat's reverse traversal). For each 8-pixel group it walks the
/// tile list from the last contributor back to the front, recovering Tₖ = Tₖ₊₁/(1 − αₖ) from the
/// saved T_final, and accumulates, per candidate, lane sums of ∂L/∂(mean₂, conic, opacity, z) and
/// the feature gradient. At the end of a tile the sums go into the worker's gradient buffer; the
/// buffers are added in a fixed order and pushed through the projection's VJP.
///
/// With Pₖ = Σ_c fₖ[c]·v[c] + zₖ·v_D (the pixel's cotangent seen through Gaussian k) and
/// Sₖ = Σ_{j>k} αⱼ·Tⱼ·Pⱼ (what lies behind k), the blending gives
///   ∂L/∂αₖ = Tₖ·Pₖ − (Sₖ − T_final·(v_A − Σ_c bg[c]·v[c])) / (1 − αₖ),
///   ∂L/∂fₖ[c] = αₖ·Tₖ·v[c],  ∂L/∂zₖ = αₖ·Tₖ·v_D,
/// and αₖ = o·e^(−σ) gives ∂σ = −α·∂α, ∂o = e^(−σ)·∂α where it is not clamped at 0.99.

/// Per-candidate lane accumulators (8 SIMD vectors per candidate, 7 used, in GradRow's order so
/// their lane sums are the first 8 floats of a gradient row).
enum LaneGrad {
    static let meanX = 0, meanY = 1, conicA = 2, conicB = 3, conicC = 4, opacity = 5, depth = 6
    static let stride = 8
}

/// Layout of one visible Gaussian's row in a worker's gradient buffer.
enum GradRow {
    static let meanX = 0, meanY = 1, conicA = 2, conicB = 3, conicC = 4, opacity = 5, depth = 6
    static let features = 8
}

/// Cotangents of the outputs, as raw pointers.
struct TileCotangents {
    var vFeatures: UnsafePointer<Float>     // [C, H, W]
    var vAlpha: UnsafePointer<Float>?       // [H, W]
    var vDepth: UnsafePointer<Float>?       // [H, W]
    var depth: UnsafePointer<Float>         // [H, W] forward depth (for .expected)
    var finalT: UnsafePointer<Float>        // [H, W]
    var last: UnsafePointer<Int32>          // [H, W]
    var expectedDepth: Bool
}

extension SplatKernel {
    static func backwardTiles(_ tape: SplatTape, vFeatures: [Float], vAlpha: [Float]?, vDepth: [Float]?,
                              workspace ws: SplatWorkspace) -> SplatGradients {
        let g = tape.gaussians
        let cam = tape.camera
        let c = g.channels, m = tape.visibleCount
        let tilesX = (cam.width + tileSize - 1) / tileSize, tilesY = (cam.height + tileSize - 1) / tileSize
        let tiles = tilesX * tilesY
        let threads = tape.options.threads
        let workers = tileRowsPerWorker(threads: threads, tilesY: tilesY)
        var longest = 0
        tape.tileStart.withUnsafeBufferPointer { ts in
            for t in 0..<tiles { longest = max(longest, Int(ts[t + 1] - ts[t])) }
        }
        ws.prepareWorkers(workers, candidates: longest, channels: c, backward: true)
        let rowStride = c + GradRow.features
        for wk in 0..<workers { ws.workers[wk].gradients.reserve(max(m * rowStride, 1)) }
        let background = tape.options.background.isEmpty ? [Float](repeating: 0, count: c) : tape.options.background

        tape.visible2D.withUnsafeBufferPointer { v2 in
        tape.visibleIndex.withUnsafeBufferPointer { vi in
        tape.tileStart.withUnsafeBufferPointer { tst in
        tape.tileList.withUnsafeBufferPointer { tl in
        g.features.withUnsafeBufferPointer { gf in
        background.withUnsafeBufferPointer { bg in
        vFeatures.withUnsafeBufferPointer { vf in
        tape.depth.withUnsafeBufferPointer { de in
        tape.finalT.withUnsafeBufferPointer { ft in
        tape.lastContributor.withUnsafeBufferPointer { la in
        withOptionalPointer(vAlpha) { va in
        withOptionalPointer(vDepth) { vd in
            let none = UnsafePointer<Float>(bitPattern: 8)!
            let inp = TileInputs(width: cam.width, height: cam.height, channels: c, tilesX: tilesX,
                                 visible2D: v2.baseAddress ?? none,
                                 visibleIndex: vi.baseAddress ?? UnsafePointer(bitPattern: 8)!,
                                 tileStart: tst.baseAddress!,
                                 tileList: tl.baseAddress ?? UnsafePointer(bitPattern: 8)!,
                                 features: gf.baseAddress ?? none, background: bg.baseAddress!)
            let cot = TileCotangents(vFeatures: vf.baseAddress!, vAlpha: va, vDepth: vd, depth: de.baseAddress!,
                                     finalT: ft.baseAddress!, last: la.baseAddress!,
                                     expectedDepth: tape.options.depthMode == .expected)
            concurrentWorkers(workers) { wk in
                let scratch = ws.workers[wk]
                scratch.gradients.pointer.initialize(repeating: 0, count: m * rowStride)
                // Every workers-th row of tiles (see `tileRowsPerWorker`).
                for ty in stride(from: wk, to: tilesY, by: workers) {
                    for t in (ty * tilesX)..<((ty + 1) * tilesX) {
                        backwardTile(t, inp, cot, scratch, next: nextTile(after: t, tilesX: tilesX, tilesY: tilesY, workers: workers))
                    }
                }
            }
        }}}}}}}}}}}}

        // Through the projection, back to the raw parameters, in parallel over all N Gaussians: each
        // writes every one of its rows (zeros when culled), so the arrays start uninitialised, and
        // the workers' buffers are added (in worker order) row by row on the way, not in a pass
        // of their own.
        let n = g.count
        var grads = SplatGradients(vMeans: uninitializedFloats(3 * n), vLogScales: uninitializedFloats(g.logScales.count),
                                   vQuats: uninitializedFloats(4 * n), vOpacityLogits: uninitializedFloats(n),
                                   vFeatures: uninitializedFloats(n * c))
        let frame = SplatFrame(cam)
        let buffers = (0..<workers).map { UnsafePointer(ws.workers[$0].gradients.pointer) }
        let scaleWidth = g.isotropic ? 1 : 3
        g.withPointers { gp in
            tape.visibleIndex.withUnsafeBufferPointer { vi in
                grads.withMutablePointers { vm, vs, vq, vo, vfeat in
                    buffers.withUnsafeBufferPointer { buffers in
                        parallelChunks(n, threads: threads, minimumChunk: 512) { range in
                            // The first visible Gaussian at or after the chunk (visibleIndex ascends).
                            var lo = 0, hi = m
                            while lo < hi {
                                let mid = (lo + hi) / 2
                                if Int(vi[mid]) < range.lowerBound { lo = mid + 1 } else { hi = mid }
                            }
                            var k = lo
                            for i in range {
                                (vm + 3 * i).initialize(repeating: 0, count: 3)
                                (vs + scaleWidth * i).initialize(repeating: 0, count: scaleWidth)
                                (vq + 4 * i).initialize(repeating: 0, count: 4)
                                vo[i] = 0
                                let vf = vfeat + i * c
                                guard k < m, Int(vi[k]) == i else {
                                    vf.initialize(repeating: 0, count: c)
                                    continue
                                }
                                let row = k * rowStride
                                var head = UnsafeRawPointer(buffers[0] + row).loadUnaligned(as: Lanes.self)
                                vf.update(from: buffers[0] + (row + GradRow.features), count: c)
                                for w in 1..<buffers.count {
                                    head += UnsafeRawPointer(buffers[w] + row).loadUnaligned(as: Lanes.self)
                                    let o = buffers[w] + (row + GradRow.features)
                                    for ch in 0..<c { vf[ch] += o[ch] }
                                }
                                projectOneVJP(i, gp, frame,
                                              vMean2D: SIMD2(head[GradRow.meanX], head[GradRow.meanY]),
                                              vConic: SIMD3(head[GradRow.conicA], head[GradRow.conicB], head[GradRow.conicC]),
                                              vDepth: head[GradRow.depth], vOpacity: head[GradRow.opacity],
                                              vMeans: vm, vLogScales: vs, vQuats: vq, vLogits: vo)
                                k += 1
                            }
                        }
                    }
                }
            }
        }
        return grads
    }

    /// `next`: the tile this worker takes after t (-1: none), whose cotangent lines are fetched
    /// into cache while t runs.
    static func backwardTile(_ t: Int, _ inp: TileInputs, _ cot: TileCotangents, _ s: SplatWorkerScratch, next: Int) {
        let (start, n) = s.gather(tile: t, inp)
        if n == 0 {
            for row in 0..<tileSize { prefetchTileRow(cot.vFeatures, tile: next, row: row, inp) }
            return
        }
        let record = s.candidate.pointer, fo = s.featureOffset.pointer
        let hitIndex = s.hitIndex.pointer, hitWeight = s.hitWeight.pointer
        let lg = s.laneGrad.pointer, fg = s.featureGrad.pointer
        let vOut = s.vOut.pointer, vOutT = s.vOutT.pointer
        let touched = s.touched.pointer, touchedList = s.touchedList.pointer
        let w = inp.width, h = inp.height, c = inp.channels, plane = w * h
        let tileX = t % inp.tilesX, tileY = t / inp.tilesX
        // Accumulators are zeroed on a candidate's first hit: many candidates of a tile never blend.
        touched.initialize(repeating: 0, count: n)
        var touchedCount = 0
        // The tile's cotangent planes, gathered one plane at a time (see forwardTile's staging).
        let staged = s.tileFeatures.pointer
        do {
            let x0 = tileX * tileSize, y0 = tileY * tileSize
            let tw = min(tileSize, w - x0), th = min(tileSize, h - y0)
            for ch in 0..<c {
                for r in 0..<th {
                    copyTileRow(from: cot.vFeatures + (ch * plane + (y0 + r) * w + x0), to: staged + (ch * tilePixels + r * tileSize), tw)
                }
            }
        }

        for row in 0..<tileSize {
            prefetchTileRow(cot.vFeatures, tile: next, row: row, inp)
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
                let at = py * w + px0
                var lastHit = SIMD8<Int32>(repeating: 0)
                var end: Int32 = 0
                if lanes == 8 {
                    lastHit = UnsafeRawPointer(cot.last + at).loadUnaligned(as: SIMD8<Int32>.self)
                    for l in 0..<8 { end = max(end, cot.last[at + l]) }
                } else {
                    for l in 0..<lanes {
                        lastHit[l] = cot.last[at + l]
                        end = max(end, cot.last[at + l])
                    }
                }
                if end == 0 { continue }
                let pxc = laneCentres + Float(px0)
                let finalT = loadLanes(cot.finalT + at, lanes)

                // The group's cotangents, channel-major and (8×8 transposes) pixel-major.
                var bgDot = Lanes()
                for ch in 0..<c {
                    let v = loadLanes(staged + (ch * tilePixels + row * tileSize + half * 8), lanes)
                    vOut[ch] = v
                    bgDot = bgDot.addingProduct(v, Lanes(repeating: inp.background[ch]))
                }
                var cb = 0
                while cb + 8 <= c {
                    transpose8(vOut + cb, into: vOutT + cb, stride: c)
                    cb += 8
                }
                for ch in cb..<c { for l in 0..<8 { vOutT[l * c + ch] = vOut[ch][l] } }
                var vA = cot.vAlpha.map { loadLanes($0 + at, lanes) } ?? Lanes()
                var vD = cot.vDepth.map { loadLanes($0 + at, lanes) } ?? Lanes()
                if cot.expectedDepth {
                    // d = D / A: ∂L/∂D = v_d / A, and A gains −v_d·d / A.
                    let coverage = 1 - finalT
                    let d = loadLanes(cot.depth + at, lanes)
                    let covered = coverage .> 0
                    vA += (-(vD * d) / coverage).replacing(with: 0, where: .!covered)
                    vD = (vD / coverage).replacing(with: 0, where: .!covered)
                }
                let behindBackground = finalT * (vA - bgDot)

                var tr = finalT
                var behind = Lanes()
                var hits = 0
                var j = listCount
                while j > 0 {
                    j &-= 1
                    let p = Int(list[j])
                    if p >= Int(end) { continue }
                    let g = record[p]
                    let e = splatAlpha(g, pxc: pxc, pyc: pyc)
                    let m = e.mask .& (SIMD8<Int32>(repeating: Int32(truncatingIfNeeded: p)) .< lastHit)
                    if !anyLane(m) { continue }
                    let ra = 1 / (1 - e.alpha)
                    tr.replace(with: tr * ra, where: m)
                    let fac = (e.alpha * tr).replacing(with: 0, where: .!m)

                    // Pₖ: the pixels' cotangent seen through this Gaussian (four independent sums,
                    // so the FMAs do not wait on each other).
                    let f = UnsafePointer(s.localFeatures.pointer) + fo[p]
                    var p0 = Lanes(repeating: g[Candidate.depth]) * vD, p1 = Lanes(), p2 = Lanes(), p3 = Lanes()
                    var ch = 0
                    while ch &+ 4 <= c {
                        let fc = f + ch, vc = UnsafePointer(vOut + ch)
                        p0 = p0.addingProduct(Lanes(repeating: fc[0]), vc[0])
                        p1 = p1.addingProduct(Lanes(repeating: fc[1]), vc[1])
                        p2 = p2.addingProduct(Lanes(repeating: fc[2]), vc[2])
                        p3 = p3.addingProduct(Lanes(repeating: fc[3]), vc[3])
                        ch &+= 4
                    }
                    while ch < c { p0 = p0.addingProduct(Lanes(repeating: f[ch]), vOut[ch]); ch &+= 1 }
                    let pk = (p0 + p1) + (p2 + p3)

                    let vAlphaK = tr * pk - ra * (behind - behindBackground)
                    behind = behind.addingProduct(fac, pk)
                    let ov = g[Candidate.opacity] * e.vis
                    let free = m .& (ov .<= alphaMax)
                    let vSigma = (-ov * vAlphaK).replacing(with: 0, where: .!free)
                    let vOpacity = (e.vis * vAlphaK).replacing(with: 0, where: .!free)
                    let dx = e.dx, dy = e.dy
                    let a = 2 * g[Candidate.halfA], b = g[Candidate.conicB], cc = 2 * g[Candidate.halfC]
                    let acc = lg + LaneGrad.stride * p
                    if touched[p] == 0 {
                        touched[p] = 1
                        touchedList[touchedCount] = Int32(truncatingIfNeeded: p)
                        touchedCount &+= 1
                        acc.initialize(repeating: Lanes(), count: LaneGrad.stride)
                        (fg + p * c).initialize(repeating: 0, count: c)
                    }
                    let sdx = vSigma * dx
                    acc[LaneGrad.conicA] = acc[LaneGrad.conicA].addingProduct(0.5 * sdx, dx)
                    acc[LaneGrad.conicB] = acc[LaneGrad.conicB].addingProduct(sdx, Lanes(repeating: dy))
                    acc[LaneGrad.conicC] = acc[LaneGrad.conicC].addingProduct(Lanes(repeating: 0.5 * dy * dy), vSigma)
                    acc[LaneGrad.meanX] += Lanes(repeating: a) * sdx + Lanes(repeating: b * dy) * vSigma
                    acc[LaneGrad.meanY] += Lanes(repeating: b) * sdx + Lanes(repeating: cc * dy) * vSigma
                    acc[LaneGrad.opacity] += vOpacity
                    acc[LaneGrad.depth] = acc[LaneGrad.depth].addingProduct(fac, vD)
                    hitIndex[hits] = Int32(truncatingIfNeeded: p)
                    hitWeight[hits] = fac
                    hits &+= 1
                }

                // ∂L/∂fₖ[c] += Σ_lanes facₖ·v[c]: the 8 lanes' cotangent rows stay in registers.
                var ch = 0
                while ch + 8 <= c {
                    let r0 = UnsafeRawPointer(vOutT + ch).loadUnaligned(as: Lanes.self)
                    let r1 = UnsafeRawPointer(vOutT + (c + ch)).loadUnaligned(as: Lanes.self)
                    let r2 = UnsafeRawPointer(vOutT + (2 * c + ch)).loadUnaligned(as: Lanes.self)
                    let r3 = UnsafeRawPointer(vOutT + (3 * c + ch)).loadUnaligned(as: Lanes.self)
                    let r4 = UnsafeRawPointer(vOutT + (4 * c + ch)).loadUnaligned(as: Lanes.self)
                    let r5 = UnsafeRawPointer(vOutT + (5 * c + ch)).loadUnaligned(as: Lanes.self)
                    let r6 = UnsafeRawPointer(vOutT + (6 * c + ch)).loadUnaligned(as: Lanes.self)
                    let r7 = UnsafeRawPointer(vOutT + (7 * c + ch)).loadUnaligned(as: Lanes.self)
                    for k in 0..<hits {
                        // The weights' lanes broadcast straight from memory (a load each), not
                        // shuffled out of a register (which queues them all on one shuffle port).
                        let fw = UnsafeRawPointer(hitWeight + k).assumingMemoryBound(to: Float.self)
                        let dst = UnsafeMutableRawPointer(fg + (Int(hitIndex[k]) &* c &+ ch))
                        // Two chains of four FMAs, not one of eight: the next hit need not wait.
                        var a = (Lanes(repeating: fw[0]) * r0).addingProduct(Lanes(repeating: fw[1]), r1)
                        var b = (Lanes(repeating: fw[4]) * r4).addingProduct(Lanes(repeating: fw[5]), r5)
                        a = a.addingProduct(Lanes(repeating: fw[2]), r2).addingProduct(Lanes(repeating: fw[3]), r3)
                        b = b.addingProduct(Lanes(repeating: fw[6]), r6).addingProduct(Lanes(repeating: fw[7]), r7)
                        dst.storeBytes(of: dst.loadUnaligned(as: Lanes.self) + (a + b), as: Lanes.self)
                    }
                    ch += 8
                }
                while ch < c {
                    let v = vOut[ch]
                    for k in 0..<hits { fg[Int(hitIndex[k]) * c + ch] += (hitWeight[k] * v).sum() }
                    ch += 1
                }
            }
        }

        // Flush the tile's sums into this worker's buffer.
        let rowStride = c + GradRow.features
        let grad = s.gradients.pointer
        for k in 0..<touchedCount {
            let p = Int(touchedList[k])
            let r = UnsafeMutableRawPointer(grad + Int(inp.tileList[start + p]) * rowStride)
            let acc = lg + LaneGrad.stride * p
            let sums = laneSums(acc[0], acc[1], acc[2], acc[3], acc[4], acc[5], acc[6], acc[7])
            r.storeBytes(of: r.loadUnaligned(as: Lanes.self) + sums, as: Lanes.self)
            let f = fg + p * c, dst = grad + (Int(inp.tileList[start + p]) * rowStride + GradRow.features)
            for ch in 0..<c { dst[ch] += f[ch] }
        }
    }
}

/// A Float array of `count` elements whose every element the caller writes before reading.
func uninitializedFloats(_ count: Int) -> [Float] {
    [Float](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
}

func withOptionalPointer<R>(_ a: [Float]?, _ body: (UnsafePointer<Float>?) -> R) -> R {
    guard let a else { return body(nil) }
    return a.withUnsafeBufferPointer { body($0.baseAddress) }
}
