import Dispatch
import Foundation
import Synchronization
import PGTensor

/// Scratch memory and threading for the convolution kernels and `NeuralRendererNet`, kept between
/// calls so that the steady state allocates nothing but the returned tensors.
///
/// It holds one weight-gradient accumulator per worker, the weights rearranged for the GEMMs, and
/// a pool of zero-padded activation planes that forward passes borrow and
/// `NeuralRendererNet.Saved` gives back when it is released.
///
/// Threading: the kernels split the image into column bands and hand them to `threads` workers
/// (`DispatchQueue.concurrentPerform`); every band runs its k² *single-threaded* `cblas_sgemm`
/// calls. OpenBLAS is therefore opened with one thread of its own (Sources/CBLAS/loader.c): two
/// workers each calling a 2-thread OpenBLAS would oversubscribe the two cores, and a band whose
/// input and output stay in one core's L2 through its GEMMs and the fused epilogue beats
/// whole-image GEMMs that stream through memory (`pgbench conv`).
///
/// Safe to share: every kernel call holds the workspace's lock for its duration, so concurrent
/// callers take turns (each call already uses all `threads` cores).
public final class ConvWorkspace: @unchecked Sendable {
    /// Worker threads per kernel call.
    public let threads: Int
    /// Bytes of input plus output planes in one band of GEMM columns (it should stay in L2).
    public let bandBytes: Int
    /// Pooled activation planes beyond this many bytes are freed instead of kept.
    public let maximumPooledBytes: Int

    // Held for the whole of a kernel call; guards everything below except `pool`.
    let callLock = Mutex<Void>(())
    var weightPartials: [ConvScratch] = []   // per worker: [k², Cout, Cin] vWeight then [Cout] vBias
    let packedWeights = ConvScratch()        // tap-major weights (and the network's biases)
    let transposedWeights = ConvScratch()    // [k², Cin, Cout] of the layer in an input-gradient pass

    // Guarded separately: `NeuralRendererNet.Saved` returns its planes from whatever thread
    // releases it, possibly while another call holds `callLock`.
    private let pool = Mutex<PlanePool>(PlanePool())

    /// - Parameters:
    ///   - threads: worker threads per call (default: all active cores).
    ///   - bandBytes: bytes of input plus output planes in one band of columns; tests make it
    ///     small so that images of a few pixels still split into several bands.
    public init(threads: Int = ProcessInfo.processInfo.activeProcessorCount,
                bandBytes: Int = 512 << 10, maximumPooledBytes: Int = 1 << 30) {
        precondition(threads >= 1, "ConvWorkspace needs at least one thread, got \(threads)")
        precondition(bandBytes >= 64, "bandBytes \(bandBytes) is too small")
        self.threads = threads
        self.bandBytes = bandBytes
        self.maximumPooledBytes = maximumPooledBytes
        weightPartials = (0..<threads).map { _ in ConvScratch() }
    }

    /// Runs a kernel with the workspace to itself.
    func exclusive<R>(_ body: () -> R) -> R {
        callLock.withLock { _ in body() }
    }

    /// A zero-padded set of planes from the pool (pads zero, interior unspecified) or a new one.
    func borrowPlanes(_ geometry: PlaneGeometry, channels: Int) -> ConvPlanes {
        let key = PlanePool.Key(geometry: geometry, channels: channels)
        if let buffer = pool.withLock({ $0.take(key) }) {
            return ConvPlanes(buffer: buffer, geometry: geometry, channels: channels, workspace: self)
        }
        return ConvPlanes(buffer: ConvBuffer(count: geometry.bufferCount(channels: channels)),
                          geometry: geometry, channels: channels, workspace: self)
    }

    /// Takes back planes whose pads (everything outside the interior) are zero again.
    func returnPlanes(_ buffer: ConvBuffer, geometry: PlaneGeometry, channels: Int) {
        let key = PlanePool.Key(geometry: geometry, channels: channels)
        let limit = maximumPooledBytes
        pool.withLock { $0.put(buffer, key, limit: limit) }
    }

    /// Bytes currently kept in the plane pool.
    public var pooledBytes: Int { pool.withLock { $0.bytes } }
}

/// Free activation planes by geometry: pads are zero in every one of them, so a borrowed set needs
/// no clearing (the kernels overwrite the whole interior and re-zero the pads they touch).
struct PlanePool {
    struct Key: Hashable {
        let geometry: PlaneGeometry
        let channels: Int
    }
    private var free: [Key: [ConvBuffer]] = [:]
    private(set) var bytes = 0

    mutating func take(_ key: Key) -> ConvBuffer? {
        guard let buffer = free[key]?.popLast() else { return nil }
        bytes -= buffer.count * MemoryLayout<Float>.stride
        return buffer
    }

    mutating func put(_ buffer: ConvBuffer, _ key: Key, limit: Int) {
        let size = buffer.count * MemoryLayout<Float>.stride
        guard bytes + size <= limit else { return }
        free[key, default: []].append(buffer)
        bytes += size
    }
}

/// A 64-byte-aligned, zero-initialised Float buffer of fixed size.
final class ConvBuffer: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Float>
    let count: Int

    init(count: Int) {
        self.count = count
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * MemoryLayout<Float>.stride,
                                                   alignment: 64)
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        pointer.initialize(repeating: 0, count: max(count, 1))
    }

    deinit { pointer.deallocate() }
}

/// A scratch buffer that only grows; contents are unspecified after `reserve`.
final class ConvScratch {
    private(set) var buffer = ConvBuffer(count: 0)
    var pointer: UnsafeMutablePointer<Float> { buffer.pointer }

    func reserve(_ count: Int) {
        if buffer.count < count { buffer = ConvBuffer(count: count) }
    }
}

/// The zero-padded planar layout the convolution kernels work in.
///
/// Each channel is a (H+2P)×(W+2P) plane with the image at offset (P, P) and zeros around it, so a
/// tap (dy, dx) of every output pixel is one fixed offset away: the input of tap (dy, dx) for a
/// band of output positions is a matrix [C, band] with leading dimension `planeStride`, which
/// `cblas_sgemm` reads in place. The GEMMs run over the
/// `columns = H·(W+2P)` positions n = y·(W+2P) + x, x < W+2P: the 2P positions per row with x ≥ W
/// land on pads of the output planes and are zeroed again by the epilogue. Layers with a smaller
/// kernel than 2P+1 use the same planes with shifted tap offsets.
struct PlaneGeometry: Hashable, Sendable {
    let height: Int
    let width: Int
    let pad: Int

    var paddedWidth: Int { width + 2 * pad }
    var paddedHeight: Int { height + 2 * pad }
    /// Floats from one channel to the next.
    var planeStride: Int { paddedHeight * paddedWidth }
    /// GEMM columns: every output row including its 2P pad positions.
    var columns: Int { height * paddedWidth }
    /// Index of pixel (0, 0) in a plane; column n sits at `origin + n`.
    var origin: Int { pad * paddedWidth + pad }

    /// The last junk column reads up to 2P floats past the last plane.
    func bufferCount(channels: Int) -> Int { channels * planeStride + 2 * pad + 16 }

    /// Offset of tap (dy, dx) of a k×k kernel relative to column n's input position.
    func tapOffset(dy: Int, dx: Int, kernelSize k: Int) -> Int {
        let p = (k - 1) / 2
        return (dy - p + pad) * paddedWidth + (dx - p + pad)
    }
}

/// Activation planes borrowed from a workspace's pool; give them back with `recycle()` once their
/// pads are zero again (the kernels keep them so).
struct ConvPlanes: @unchecked Sendable {
    let buffer: ConvBuffer
    let geometry: PlaneGeometry
    let channels: Int
    let workspace: ConvWorkspace

    var pointer: UnsafeMutablePointer<Float> { buffer.pointer }

    func recycle() { workspace.returnPlanes(buffer, geometry: geometry, channels: channels) }

    /// Copies a [C, H, W] image into the interior.
    func load(_ image: UnsafePointer<Float>) {
        let g = geometry, h = g.height, w = g.width
        let workers = min(channels, workspace.threads)
        concurrentWorkers(workers) { worker in
            for c in stride(from: worker, to: channels, by: workers) {
                for y in 0..<h {
                    (pointer + c * g.planeStride + g.origin + y * g.paddedWidth)
                        .update(from: image + (c * h + y) * w, count: w)
                }
            }
        }
    }

    /// Copies the interior out to a [C, H, W] image.
    func store(_ image: UnsafeMutablePointer<Float>) {
        let g = geometry, h = g.height, w = g.width
        let workers = min(channels, workspace.threads)
        concurrentWorkers(workers) { worker in
            for c in stride(from: worker, to: channels, by: workers) {
                for y in 0..<h {
                    (image + (c * h + y) * w)
                        .update(from: pointer + c * g.planeStride + g.origin + y * g.paddedWidth, count: w)
                }
            }
        }
    }
}


/// Hands `count` jobs to `workers` threads one at a time (dynamic, so that a core busy with
/// something else does not hold up the call): body(worker, job).
func convJobs(_ count: Int, workers: Int, _ body: (Int, Int) -> Void) {
    let workers = max(1, min(workers, count))
    if workers == 1 {
        for job in 0..<count { body(0, job) }
        return
    }
    let next = Atomic<Int>(0)
    concurrentWorkers(workers) { worker in
        while true {
            let job = next.wrappingAdd(1, ordering: .relaxed).oldValue
            if job >= count { break }
            body(worker, job)
        }
    }
}

