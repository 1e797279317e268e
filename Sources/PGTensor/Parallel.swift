import Foundation

// pgflow's one way to run numeric loops in parallel (the kernels, the optimizer's step): a fixed
// number of workers, or a range cut into contiguous chunks, one per worker. It lives at the bottom
// of the module stack so every layer uses the same one. (The engine's frame loop is separate: it
// runs operators.)

/// Runs body(0..<workers) concurrently (inline for one worker).
///
/// The kernels' closures capture raw pointers into buffers that each worker reads or writes in
/// disjoint parts; Dispatch wants a `@Sendable` closure, so this is the one place that vouches
/// for them.
public func concurrentWorkers(_ workers: Int, _ body: (Int) -> Void) {
    if workers <= 1 { body(0); return }
    withoutActuallyEscaping(body) { body in
        let unchecked = UncheckedSendable(body)
        DispatchQueue.concurrentPerform(iterations: workers) { unchecked.value($0) }
    }
}

/// Splits 0..<n into at most `threads` contiguous ranges of at least `minimumChunk` (the last may
/// be shorter) and runs body(worker, range) for each concurrently; worker < threads, so callers
/// can keep per-worker buffers (reduced in worker order: the same split gives the same bits).
public func parallelChunks(_ n: Int, threads: Int, minimumChunk: Int = 256, _ body: (_ worker: Int, _ range: Range<Int>) -> Void) {
    let workers = max(1, min(threads, (n + minimumChunk - 1) / minimumChunk))
    if workers == 1 { body(0, 0..<n); return }
    concurrentWorkers(workers) { w in body(w, (n * w / workers)..<(n * (w + 1) / workers)) }
}

/// `parallelChunks` for bodies that need no worker index.
public func parallelChunks(_ n: Int, threads: Int, minimumChunk: Int = 256, _ body: (Range<Int>) -> Void) {
    parallelChunks(n, threads: threads, minimumChunk: minimumChunk) { (_: Int, range: Range<Int>) in body(range) }
}

public struct UncheckedSendable<Value>: @unchecked Sendable {
    public let value: Value
    public init(_ value: Value) { self.value = value }
}
