import Foundation
import PGTensor
import Synchronization

extension Engine {
    /// The node's operator, created once per run from its completed params.
    func instance(_ id: String) throws -> any Operator {
        if let op = state.withLock({ $0.instances[id] }) { return op }
        let node = graph.node(id)!
        let type = operators[node.type]!
        let op: any Operator
        do {
            op = try type.init(params: Engine.params(node, spec(id), graph.directory))
        } catch {
            throw RunError(node: id, type: node.type, Engine.describe(error))
        }
        state.withLock { $0.instances[id] = op }
        return op
    }

    func makeContext(_ id: String) -> RunContext {
        let emit = self.emit
        return RunContext(nodeID: id, nodeType: graph.node(id)!.type, graphDirectory: graph.directory,
                          threads: options.threads, plugins: plugins,
                          onProgress: { done, total in emit(.progress(node: id, done: done, total: total)) },
                          onWarning: { emit(.warning("\(id): \($0)")) },
                          cancelled: cancelled)
    }

    /// Values on a node's inputs that come from static outputs, leaving out those from `skipping`
    /// (nodes an optimize stage computes anew every step: they have no value before it starts).
    func staticInputs(_ id: String, skipping: Set<String> = []) throws -> Inputs {
        var values: [String: Value] = [:]
        for (port, src) in graph.node(id)!.inputs where !perFrame(src) && !skipping.contains(src.node) {
            values[port] = try staticOutputs(src.node)?[src.port]
                ?? { throw RunError(node: id, type: graph.node(id)!.type, "input \(port): \(src) has no value (it did not run)") }()
        }
        return Inputs(values)
    }

    /// All inputs of a per-frame evaluation: per-frame ones for frame `t` from the cache,
    /// static ones broadcast.
    func frameInputs(_ id: String, frame t: Int, statics: Inputs) throws -> Inputs {
        var values = statics.values
        var loaded: [String: [String: Value]] = [:]
        for (port, src) in graph.node(id)!.inputs where perFrame(src) {
            if loaded[src.node] == nil { loaded[src.node] = try frameValue(src.node, frame: t) }
            values[port] = loaded[src.node]![src.port]
        }
        return Inputs(values, parameters: statics.parameters)
    }

    /// One frame of a per-frame node's outputs: from the cache, or computed here and now when the
    /// node's results are not stored (cache policy recompute), from its own inputs in turn.
    func frameValue(_ id: String, frame t: Int) throws -> [String: Value] {
        guard volatile.contains(id) else {
            guard let outs = store.load(entryKey(id, frame: t)) else {
                // Planned as cached but unreadable now (damaged, or removed by another process):
                // the caller plans again and recomputes it.
                throw StaleEntry(node: id, frame: t)
            }
            return outs
        }
        let node = graph.node(id)!
        do {
            var statics = try staticInputs(id)
            statics.parameters = try parameters(id, statics: statics)
            let outs = try instance(id).evaluate(try frameInputs(id, frame: t, statics: statics), frame: t, context: makeContext(id))
            try checkOutputs(id, frame: t, outs)
            return outs
        } catch let e as StaleEntry { throw e } catch let e as RunError { throw e } catch {
            throw RunError(node: id, type: node.type, frame: t, Engine.describe(error))
        }
    }

    /// Writes one result to the cache after checking the operator produced every declared output.
    func put(_ id: String, frame: Int?, _ outputs: [String: Value]) throws {
        let node = graph.node(id)!
        try checkOutputs(id, frame: frame, outputs)
        if volatile.contains(id) { return }   // cache policy recompute: never stored
        do {
            try store.store(entryKey(id, frame: frame), outputs,
                            info: EntryInfo(nodeID: id, nodeType: node.type, frame: frame, graph: graph.name))
        } catch {
            throw RunError(node: id, type: node.type, frame: frame, "cannot write its result to the cache: \(error)")
        }
    }

    func checkOutputs(_ id: String, frame: Int?, _ outputs: [String: Value]) throws {
        // A map running as a static node owes all its outputs once.
        let rateWanted: Rate = frame == nil ? .staticRate : .perFrame
        let owed = spec(id).outputs.filter { spec(id).role == .map || $0.rate == rateWanted }
        for port in owed where outputs[port.name] == nil {
            throw RunError(node: id, type: graph.node(id)!.type, frame: frame, "produced no value for its output \"\(port.name)\"")
        }
    }

    /// A trainable node's current parameters: as last trained, else its seeded initial values.
    func parameters(_ id: String, statics: Inputs) throws -> [String: Tensor] {
        guard ingredients[id]!.trainable else { return [:] }
        if let p = state.withLock({ $0.parameters[id] }) { return p }
        let op = try instance(id) as! any Trainable
        let p: [String: Tensor]
        do { p = try op.initialParameters(statics, context: makeContext(id)) } catch {
            throw RunError(node: id, type: graph.node(id)!.type, "initialising parameters: \(Engine.describe(error))")
        }
        state.withLock { $0.parameters[id] = p }
        return p
    }

    static func describe(_ error: Error) -> String {
        if let e = error as? OperatorError { return e.message }
        if error is CancellationError { return "interrupted" }
        return "\(error)"
    }

    /// `body` for 0..<n: in parallel, or in order when the run is held to one thread (--threads 1).
    func forEachFrame(_ n: Int, _ body: @Sendable (Int) -> Void) {
        if options.threads > 1 { DispatchQueue.concurrentPerform(iterations: n, execute: body) }
        else { for i in 0..<n { body(i) } }
    }

    /// Runs one node for what the plan asked of it.
    func execute(_ id: String, frames: [Int]?, all clip: [Int]) throws {
        let node = graph.node(id)!
        let role = self.role(id)
        let reason = state.withLock { $0.summary.ran[id] } ?? ""
        let started = Date()
        // A sink none of whose inputs carries frames (an Encoder fed one static image, a
        // GaussianExport fed a static cloud) consumes its static values as a single frame.
        let all = role == .sink && !node.inputs.contains(where: { perFrame($0.source) }) ? [0] : clip
        let count = role == .map || role == .source ? frames?.count : (role == .sink ? all.count : nil)
        emit(.started(node: id, type: node.type, frames: count, reason: reason))
        var failedFrame: Int?
        do {
            let op = try instance(id)
            let context = makeContext(id)
            var gathered = try staticInputs(id)
            gathered.parameters = try parameters(id, statics: gathered)
            let statics = gathered
            switch role {
            case .staticNode:
                let outs = try op.evaluate(statics, frame: nil, context: context)
                try put(id, frame: nil, outs)
                let key = entryKey(id, frame: nil).hex
                state.withLock { $0.statics[key] = outs }

            case .sink:
                guard let sink = op as? any FrameSink else { throw RunError(node: id, type: node.type, "\(node.type) is not a frame sink") }
                var next = 0
                let stream = FrameStream(count: all.count) { [self] in
                    guard next < all.count else { return nil }
                    try context.checkCancelled()
                    let t = all[next]
                    next += 1
                    failedFrame = t
                    return (t, try frameInputs(id, frame: t, statics: statics))
                }
                let outs = try sink.consume(stream, inputs: statics, context: context)
                failedFrame = nil
                try put(id, frame: nil, outs)
                let key = entryKey(id, frame: nil).hex
                state.withLock { $0.statics[key] = outs }

            case .source:
                guard let source = op as? any FrameSource else { throw RunError(node: id, type: node.type, "\(node.type) is not a frame source") }
                let wanted = frames ?? []
                var done = 0
                // A sequential source fails on the frame after the last one it handed over.
                failedFrame = wanted.first
                try source.produce(frames: wanted, inputs: statics, context: context) { t, outs in
                    try context.checkCancelled()
                    failedFrame = t
                    try put(id, frame: t, outs)
                    done += 1
                    failedFrame = done < wanted.count ? wanted[done] : nil
                    emit(.progress(node: id, done: done, total: wanted.count))
                }
                failedFrame = nil
                if done != wanted.count {
                    throw RunError(node: id, type: node.type, "produced \(done) of the \(wanted.count) frames asked for")
                }

            case .map:
                let wanted = frames ?? []
                struct Progress { var done = 0; var error: (Int, Error)? }
                let progress = Mutex(Progress())
                let emit = self.emit
                forEachFrame(wanted.count) { i in
                    if progress.withLock({ $0.error != nil }) { return }
                    let t = wanted[i]
                    do {
                        try context.checkCancelled()
                        let inputs = try frameInputs(id, frame: t, statics: statics)
                        let outs = try op.evaluate(inputs, frame: t, context: context)
                        try put(id, frame: t, outs)
                        let done = progress.withLock { $0.done += 1; return $0.done }
                        emit(.progress(node: id, done: done, total: wanted.count))
                    } catch {
                        progress.withLock { if $0.error == nil { $0.error = (t, error) } }
                    }
                }
                if let (t, e) = progress.withLock({ $0.error }) {
                    failedFrame = t
                    throw e
                }
            }
        } catch let stale as StaleEntry {
            throw stale
        } catch {
            let run = (error as? RunError) ?? RunError(node: id, type: node.type, frame: failedFrame, Engine.describe(error))
            emit(.failed(node: id, type: node.type, frame: run.frame, message: run.message))
            throw run
        }
        emit(.finished(node: id, type: node.type, seconds: Date().timeIntervalSince(started), frames: count))
    }
}

/// A cache entry the plan counted on could not be read when it was needed.
struct StaleEntry: Error, Hashable {
    var node: String
    var frame: Int?
}
