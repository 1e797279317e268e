import Dispatch
import PGTensor

/// The visible Gaussians and their depth-ordered tile lists.
struct SplatBinning {
    var visibleIndex: [Int32]   // [M] original index, ascending
    var visible2D: [Float]      // [M, 8] see SplatKernel.Packed
    var tileStart: [Int32]      // [tiles + 1]
    var tileList: [Int32]       // [intersections] visible ids
    var tilesX: Int
    var tilesY: Int
    var longestList: Int
}

extension SplatKernel {
    /// Projects in parallel, compacts the survivors, sorts them by depth and deals them into tiles.
    static func bin(_ gaussians: SplatGaussians, camera: SplatCamera, threads: Int,
                    workspace ws: SplatWorkspace) -> SplatBinning {
        let n = gaussians.count
        let frame = SplatFrame(camera)
        let ts = tileSize
        let tilesX = (camera.width + ts - 1) / ts, tilesY = (camera.height + ts - 1) / ts
        let tiles = tilesX * tilesY

        // 1. Project every Gaussian (parallel over contiguous chunks).
        let packedAll = ws.packedAll.reserve(max(n, 1) * Packed.stride)
        let rectAll = ws.rectAll.reserve(max(n, 1) * 4)
        gaussians.withPointers { g in
            parallelChunks(n, threads: threads, minimumChunk: 1024) { range in
                for i in range {
                    guard let p = projectOne(i, g, frame) else { rectAll[4 * i] = -1; continue }
                    let o = packedAll + Packed.stride * i
                    o[Packed.meanX] = p.meanX; o[Packed.meanY] = p.meanY
                    o[Packed.conicA] = p.conicA; o[Packed.conicB] = p.conicB; o[Packed.conicC] = p.conicC
                    o[Packed.opacity] = p.opacity; o[Packed.sigmaMax] = p.sigmaMax; o[Packed.depth] = p.depth
                    rectAll[4 * i] = p.x0 / Int32(ts); rectAll[4 * i + 1] = p.y0 / Int32(ts)
                    rectAll[4 * i + 2] = p.x1 / Int32(ts); rectAll[4 * i + 3] = p.y1 / Int32(ts)
                }
            }
        }

        // 2. Compact the visible ones, keeping index order.
        var visibleCount = 0
        for i in 0..<n where rectAll[4 * i] >= 0 { visibleCount += 1 }
        let m = visibleCount
        let rect = ws.rect.reserve(max(m, 1) * 4)
        let keys = ws.keys.reserve(max(m, 1))
        var visibleIndex = [Int32](repeating: 0, count: m)
        var visible2D = [Float](repeating: 0, count: m * Packed.stride)
        visibleIndex.withUnsafeMutableBufferPointer { vi in
            visible2D.withUnsafeMutableBufferPointer { v2 in
                var k = 0
                for i in 0..<n where rectAll[4 * i] >= 0 {
                    vi[k] = Int32(i)
                    for j in 0..<Packed.stride { v2[Packed.stride * k + j] = packedAll[Packed.stride * i + j] }
                    for j in 0..<4 { rect[4 * k + j] = rectAll[4 * i + j] }
                    keys[k] = sortableBits(packedAll[Packed.stride * i + Packed.depth])
                    k += 1
                }
            }
        }

        // 3. Stable sort by depth: ties keep index order.
        let order = radixSort(keys: keys, count: m, workspace: ws)

        // 4. Count per tile, per worker over contiguous slices of the depth order, then scatter
        //    with per-worker cursors so every tile's list stays in depth order.
        let workers = max(1, min(threads, m / 2048))
        let counts = ws.tileCounts.reserve(max(workers * tiles, 1))
        counts.initialize(repeating: 0, count: workers * tiles)
        let tx = tilesX
        func slice(_ w: Int) -> Range<Int> { (m * w / workers)..<(m * (w + 1) / workers) }
        concurrentWorkers(workers) { w in
            let c = counts + w * tiles
            for s in slice(w) {
                let r = rect + 4 * Int(order[s])
                for y in Int(r[1])...Int(r[3]) {
                    for x in Int(r[0])...Int(r[2]) { c[y * tx + x] += 1 }
                }
            }
        }
        var tileStart = [Int32](repeating: 0, count: tiles + 1)
        var total = 0
        var longest = 0
        for t in 0..<tiles {
            tileStart[t] = Int32(total)
            let before = total
            for w in 0..<workers {
                let c = counts[w * tiles + t]
                counts[w * tiles + t] = Int32(total)   // becomes worker w's cursor
                total += Int(c)
            }
            longest = max(longest, total - before)
        }
        tileStart[tiles] = Int32(total)
        precondition(total < Int(Int32.max), "Splat: \(total) Gaussian–tile pairs is more than the rasterizer indexes")
        var tileList = [Int32](repeating: 0, count: total)
        tileList.withUnsafeMutableBufferPointer { list in
            let list = list.baseAddress ?? UnsafeMutablePointer(bitPattern: 8)!
            concurrentWorkers(workers) { w in
                let cursor = counts + w * tiles
                for s in slice(w) {
                    let id = order[s]
                    let r = rect + 4 * Int(id)
                    for y in Int(r[1])...Int(r[3]) {
                        for x in Int(r[0])...Int(r[2]) {
                            let t = y * tx + x
                            list[Int(cursor[t])] = id
                            cursor[t] += 1
                        }
                    }
                }
            }
        }
        return SplatBinning(visibleIndex: visibleIndex, visible2D: visible2D, tileStart: tileStart,
                            tileList: tileList, tilesX: tilesX, tilesY: tilesY, longestList: longest)
    }

    /// An order-preserving map from Float to UInt32 (negative values flip entirely).
    @inline(__always) static func sortableBits(_ x: Float) -> UInt32 {
        let b = x.bitPattern
        return b & 0x8000_0000 != 0 ? ~b : b | 0x8000_0000
    }

    /// Stable LSD radix sort of 0..<count by keys (8 bits per pass, passes where every key shares
    /// the digit are skipped). Returns a pointer into workspace memory.
    static func radixSort(keys: UnsafeMutablePointer<UInt32>, count: Int,
                          workspace ws: SplatWorkspace) -> UnsafeMutablePointer<Int32> {
        var srcKeys = keys, dstKeys = ws.keysAlt.reserve(max(count, 1))
        var src = ws.order.reserve(max(count, 1)), dst = ws.orderAlt.reserve(max(count, 1))
        for i in 0..<count { src[i] = Int32(i) }
        var histogram = [Int](repeating: 0, count: 4 * 256)
        histogram.withUnsafeMutableBufferPointer { h in
            for i in 0..<count {
                let k = srcKeys[i]
                h[Int(k & 0xFF)] += 1
                h[256 + Int((k >> 8) & 0xFF)] += 1
                h[512 + Int((k >> 16) & 0xFF)] += 1
                h[768 + Int(k >> 24)] += 1
            }
            for pass in 0..<4 {
                let hp = h.baseAddress! + 256 * pass
                let shift = UInt32(8 * pass)
                if count == 0 || hp[Int((srcKeys[0] >> shift) & 0xFF)] == count { continue }
                var sum = 0
                for d in 0..<256 { let c = hp[d]; hp[d] = sum; sum += c }
                for i in 0..<count {
                    let k = srcKeys[i]
                    let d = Int((k >> shift) & 0xFF)
                    let at = hp[d]
                    hp[d] = at + 1
                    dstKeys[at] = k
                    dst[at] = src[i]
                }
                swap(&srcKeys, &dstKeys)
                swap(&src, &dst)
            }
        }
        return src
    }
}

