/// Scratch memory for `SplatKernel.rasterize` / `rasterizeVJP`, kept between calls so the steady state
/// allocates nothing but the returned images and tapes. Buffers only grow.
///
/// Not thread-safe: use one workspace per concurrent caller (the SplatKernel node keeps a small pool).
public final class SplatWorkspace: @unchecked Sendable {
    public init() {}

    // Projection and binning.
    let packedAll = ScratchBuffer<Float>()      // [N, 8] projected Gaussians before compaction
    let rectAll = ScratchBuffer<Int32>()        // [N, 4] tile rectangle, x0 = -1 when culled
    let rect = ScratchBuffer<Int32>()           // [M, 4] tile rectangle of visible Gaussians
    let keys = ScratchBuffer<UInt32>()          // [M] depth sort keys
    let keysAlt = ScratchBuffer<UInt32>()       // [M]
    let order = ScratchBuffer<Int32>()          // [M] visible ids by depth
    let orderAlt = ScratchBuffer<Int32>()       // [M]
    let tileCounts = ScratchBuffer<Int32>()     // [workers, tiles]

    // Per worker thread.
    private(set) var workers: [SplatWorkerScratch] = []

    /// Makes sure `count` workers have room for a tile list of `candidates` and `channels` channels.
    func prepareWorkers(_ count: Int, candidates: Int, channels: Int, backward: Bool) {
        while workers.count < count { workers.append(SplatWorkerScratch()) }
        for w in workers.prefix(count) { w.reserve(candidates: candidates, channels: channels, backward: backward) }
    }
}

/// One worker's scratch: the current tile's candidates as structure-of-arrays, its hit list, and
/// (backward) the tile-local gradient accumulators and the per-thread gradient buffer.
final class SplatWorkerScratch {
    // Candidates of the current tile (SoA, contiguous for the per-pixel scan).
    let meanX = ScratchBuffer<Float>()          // [n]
    let meanY = ScratchBuffer<Float>()          // [n]
    let halfA = ScratchBuffer<Float>()          // [n] ½·conic a
    let conicB = ScratchBuffer<Float>()         // [n]
    let halfC = ScratchBuffer<Float>()          // [n] ½·conic c
    let opacity = ScratchBuffer<Float>()        // [n]
    let sigmaMax = ScratchBuffer<Float>()       // [n]
    let depth = ScratchBuffer<Float>()          // [n]
    let inverseA = ScratchBuffer<Float>()       // [n] 1 / conic a
    let featureOffset = ScratchBuffer<Int>()    // [n] row offset into features
    let candidate = ScratchBuffer<SIMD8<Float>>()   // [n] the same as records (see `Candidate`)
    let localFeatures = ScratchBuffer<Float>()  // [n, C] the candidates' feature rows
    // Candidates whose α ≥ 1/255 ellipse crosses the current row's left / right 8 pixels.
    let leftList = ScratchBuffer<Int32>()       // [n]
    let rightList = ScratchBuffer<Int32>()      // [n]
    // The tile's C feature planes, 16 × 16 each: forward output, backward cotangent.
    let tileFeatures = ScratchBuffer<Float>()   // [C, 16, 16]
    // Hits of the current 8-pixel group: candidate and per-lane weight α·T.
    let hitIndex = ScratchBuffer<Int32>()       // [n]
    let hitWeight = ScratchBuffer<SIMD8<Float>>()   // [n]
    // Backward only.
    let laneGrad = ScratchBuffer<SIMD8<Float>>()    // [n, 8] per-lane sums of the 2D gradients
    let featureGrad = ScratchBuffer<Float>()        // [n, C]
    let vOut = ScratchBuffer<SIMD8<Float>>()        // [C] cotangent of the group's pixels per channel
    let vOutT = ScratchBuffer<Float>()              // [8, C] the same, pixel-major
    let touched = ScratchBuffer<UInt8>()            // [n] whether a candidate has blended in this tile
    let touchedList = ScratchBuffer<Int32>()        // [n] the candidates that have
    let gradients = ScratchBuffer<Float>()          // [M, C + 8] this thread's gradient sums

    func reserve(candidates n: Int, channels c: Int, backward: Bool) {
        let n = (max(n, 1) + 7) & ~7    // SoA arrays are read 8 candidates at a time
        for b in [meanX, meanY, halfA, conicB, halfC, opacity, sigmaMax, depth, inverseA] { _ = b.reserve(n) }
        _ = featureOffset.reserve(n)
        _ = candidate.reserve(n)
        _ = localFeatures.reserve(n * c)
        _ = leftList.reserve(n + 8)    // compaction stores 8 at a time
        _ = rightList.reserve(n + 8)
        _ = hitIndex.reserve(n)
        _ = hitWeight.reserve(n)
        _ = tileFeatures.reserve(c * SplatKernel.tileSize * SplatKernel.tileSize)
        if backward {
            _ = laneGrad.reserve(n * 8)
            _ = featureGrad.reserve(n * c)
            _ = vOut.reserve(c)
            _ = vOutT.reserve(8 * c)
            _ = touched.reserve(n)
            _ = touchedList.reserve(n)
        }
    }
}

/// A growable raw buffer; contents are undefined after growing.
final class ScratchBuffer<Element> {
    private(set) var pointer: UnsafeMutablePointer<Element>
    private(set) var capacity: Int

    init() {
        capacity = 16
        pointer = UnsafeMutablePointer<Element>.allocate(capacity: 16)
    }

    /// At least `count` elements.
    @discardableResult
    func reserve(_ count: Int) -> UnsafeMutablePointer<Element> {
        if count > capacity {
            pointer.deallocate()
            capacity = max(count, capacity + capacity / 2)
            pointer = UnsafeMutablePointer<Element>.allocate(capacity: capacity)
        }
        return pointer
    }

    deinit { pointer.deallocate() }
}
