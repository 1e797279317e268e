import Foundation
import Synchronization

extension Engine {
    /// Makes every target available in the cache, running only what is missing. An entry found
    /// damaged while running is dropped by the cache; planning again recomputes it. Each damaged
    /// entry is met once (the cache drops it), so this ends; one that stays unreadable is an error.
    func materialize(_ targets: [Target]) throws {
        var seen = Set<StaleEntry>()
        var recomputed: [String: Set<Int>] = [:]
        while true {
            do {
                return try materializeOnce(targets, recomputed: &recomputed)
            } catch let stale as StaleEntry {
                try recover(from: stale, seen: &seen)
            }
        }
    }

    /// Warns about a damaged entry the first time it is met; the second time it is an error.
    func recover(from stale: StaleEntry, seen: inout Set<StaleEntry>) throws {
        let what = "\(stale.node)\(stale.frame.map { " frame \($0)" } ?? "")"
        guard seen.insert(stale).inserted else {
            throw RunError("the cached value of \(what) stays unreadable after recomputing it; check the cache folder (`pgflow cache verify --repair`)")
        }
        emit(.warning("\(what): cached value unreadable; recomputing"))
    }

    /// One plan and its execution. `recomputed` collects, across re-plans after damaged entries,
    /// the frames each node was planned to compute, so --explain counts them all.
    private func materializeOnce(_ targets: [Target], recomputed: inout [String: Set<Int>]) throws {
        let needed = graph.ancestors(of: targets.map(\.node))
        let nodes = order.filter(needed.contains)

        // Sources say how long the clip is; everything per-frame follows them. A source whose
        // static inputs come from a sink or a static node (Tracker's fit reads a whole clip's
        // detections) needs those made first: a plan of their own, which runs or reuses them.
        var frameCount: Int?
        var counted: String?
        for id in nodes where role(id) == .source {
            let producers = Set(graph.node(id)!.inputs.map(\.source).filter { !perFrame($0) && role($0.node) != .source }.map(\.node))
            if !producers.isEmpty {
                try materializeOnce(producers.sorted().map { Target.node($0) }, recomputed: &recomputed)
            }
            let c = try self.frameCount(id)
            if let n = frameCount, n != c, let first = counted {
                throw RunError("the frame sources disagree: \"\(first)\" has \(n) frames, \"\(id)\" has \(c)")
            }
            frameCount = c
            counted = id
        }
        let all = Array(0..<(frameCount ?? 0))
        state.withLock { $0.summary.frameCount = frameCount }

        // Walk back from the targets: a node runs for what it must provide and the cache lacks;
        // what it runs on must in turn be provided by its inputs.
        var need: [String: Set<Int>] = [:]
        var needStatic = Set<String>()
        for t in targets.map(\.node) {
            switch role(t) {
            case .map, .source: need[t] = Set(all)
            case .staticNode, .sink: needStatic.insert(t)
            }
        }
        var runFrames: [String: [Int]] = [:]
        var runStatic = Set<String>()
        var partial: [String: Int] = [:]
        var fileReasons: [String: String] = [:]
        for id in nodes.reversed() {
            let forced = options.recomputeAll || self.forced[id] != nil
            let recipe = self.recipe(id)!
            var ranFrames: Set<Int>?
            switch role(id) {
            case .staticNode, .sink:
                guard needStatic.contains(id) else { continue }
                if forced { runStatic.insert(id) }
                else if let why = try staticMiss(id) {
                    runStatic.insert(id)
                    if !why.isEmpty { fileReasons[id] = why }
                }
                if runStatic.contains(id) { ranFrames = Set(all) }
            case .map, .source:
                guard let want = need[id], !want.isEmpty else { continue }
                // Never stored: its consumers compute the frames they read, so what it reads must
                // be there for those frames. Run as a node only when it is itself a target.
                if volatile.contains(id) && !targets.contains(where: { $0.node == id }) {
                    for (_, src) in graph.node(id)!.inputs {
                        if perFrame(src) { need[src.node, default: []].formUnion(want) } else { needStatic.insert(src.node) }
                    }
                    state.withLock { if !$0.summary.recomputed.contains(id) { $0.summary.recomputed.append(id) } }
                    continue
                }
                let missing = forced || volatile.contains(id) ? want : want.filter { !store.contains(recipe.entryKey(frame: $0)) }
                if !missing.isEmpty {
                    runFrames[id] = missing.sorted()
                    let all = missing.union(recomputed[id] ?? [])
                    recomputed[id] = all
                    if all.count < want.count { partial[id] = all.count }
                    ranFrames = missing
                }
            }
            guard let frames = ranFrames else { continue }
            let node = graph.node(id)!
            let isSink = role(id) == .sink
            for (_, src) in node.inputs {
                if perFrame(src) {
                    need[src.node, default: []].formUnion(isSink ? Set(all) : frames)
                } else {
                    needStatic.insert(src.node)
                }
            }
        }

        let toRun = nodes.filter { runStatic.contains($0) || runFrames[$0] != nil }
        state.withLock { $0.touched.formUnion(nodes) }
        let running = Set(toRun)
        for id in nodes where !running.contains(id) && !summaryRecomputed(id) {
            // Upstream of results that are all cached, a node is not read at all: its own entries
            // may be gone (gc), so it is "not needed", not "cached".
            guard needStatic.contains(id) || !(need[id] ?? []).isEmpty else {
                state.withLock { if !$0.summary.notNeeded.contains(id) { $0.summary.notNeeded.append(id) } }
                continue
            }
            guard !state.withLock({ $0.summary.cached.contains(id) || $0.summary.ran[id] != nil }) else { continue }
            emit(.cached(node: id, type: graph.node(id)!.type))
            state.withLock { $0.summary.cached.append(id) }
        }
        for id in toRun {
            let reason: String
            if options.recomputeAll { reason = "forced (--no-cache)" }
            else if let why = self.forced[id] { reason = why }
            else if let r = recipe(id)!.change(from: previous[id], rerunInputs: running) { reason = r }
            else if let r = fileReasons[id] { reason = r }
            else if let k = partial[id] { reason = "\(k) of \(all.count) frames not in the cache" }
            else { reason = "not in the cache" }
            state.withLock { $0.summary.ran[id] = reason }
        }

        let plan = runFrames
        try runInDependencyOrder(toRun) { id in
            try self.execute(id, frames: plan[id], all: all)
        }
    }

    private func summaryRecomputed(_ id: String) -> Bool { state.withLock { $0.summary.recomputed.contains(id) } }

    /// Nil when a static or sink node's entry can be reused; otherwise why not ("" = not cached).
    /// A cached result that names a written file is reused only while that file is unchanged.
    func staticMiss(_ id: String) throws -> String? {
        guard let outs = try staticOutputs(id) else { return "" }
        for (port, v) in outs {
            guard let path = v["path"]?.string, let sha = v["sha256"]?.string else { continue }
            let url = URL(fileURLWithPath: path)
            guard FileManager.default.fileExists(atPath: path) else { return "output \(port) (\(path)) was removed" }
            if (try? files.sha256(of: url)) != sha { return "output \(port) (\(path)) was changed" }
        }
        return nil
    }

    /// A static node's (or a source's static) outputs: from memory, else from the cache.
    func staticOutputs(_ id: String) throws -> [String: Value]? {
        let key = entryKey(id, frame: nil)
        if let v = state.withLock({ $0.statics[key.hex] }) { return v }
        guard let v = store.load(key) else { return nil }
        state.withLock { $0.statics[key.hex] = v }
        return v
    }

    /// How many frames a source yields, computing (and caching) its static part when needed.
    func frameCount(_ id: String) throws -> Int {
        if !options.recomputeAll && forced[id] == nil,
           let outs = try staticOutputs(id), let n = outs[Engine.frameCountKey]?.number {
            return Int(n)
        }
        let node = graph.node(id)!
        let source = try instance(id) as! any FrameSource
        let context = makeContext(id)
        let inputs = try staticInputs(id)
        var outs: [String: Value] = [:]
        do {
            let n = try source.frameCount(inputs, context: context)
            if spec(id).outputs.contains(where: { $0.rate == .staticRate }) {
                outs = try source.evaluate(inputs, frame: nil, context: context)
            }
            outs[Engine.frameCountKey] = .number(Double(n))
        } catch let e as RunError { throw e } catch {
            throw RunError(node: id, type: node.type, Engine.describe(error))
        }
        try put(id, frame: nil, outs)
        let key = entryKey(id, frame: nil).hex
        state.withLock { $0.statics[key] = outs }
        return Int(outs[Engine.frameCountKey]!.number!)
    }

    static let frameCountKey = "#frames"

    /// Runs `ids` (a dependency-closed, topologically ordered list) with up to `threads` at once,
    /// each as soon as the ones it reads from are done. The first failure stops new starts.
    func runInDependencyOrder(_ ids: [String], _ body: @escaping @Sendable (String) throws -> Void) throws {
        let set = Set(ids)
        // A node waits for every scheduled node it reads from, also through nodes that are not
        // scheduled because their results are never stored (they are computed from those inside it).
        var feeders: [String: Set<String>] = [:]
        for id in ids {
            var found = Set<String>(), frontier = graph.upstream(of: id)
            while let u = frontier.popLast() {
                if set.contains(u) { found.insert(u) } else if volatile.contains(u) { frontier += graph.upstream(of: u) }
            }
            feeders[id] = found
        }
        var waitingOn: [String: Int] = [:]
        for id in ids { waitingOn[id] = feeders[id]!.count }
        let fed: [String: [String]] = Dictionary(grouping: ids.flatMap { d in feeders[d]!.map { ($0, d) } }, by: \.0).mapValues { $0.map(\.1) }
        struct Board { var waitingOn: [String: Int]; var ready: [String]; var running = 0; var error: Error? }
        let board = Mutex(Board(waitingOn: waitingOn, ready: ids.filter { waitingOn[$0] == 0 }))
        let group = DispatchGroup()
        let threads = options.threads
        let cancelled = self.cancelled
        @Sendable func pump() {
            while true {
                let next: String? = board.withLock { b in
                    guard b.error == nil, b.running < threads, !b.ready.isEmpty else { return nil }
                    b.running += 1
                    return b.ready.removeFirst()
                }
                guard let id = next else { return }
                group.enter()
                DispatchQueue.global().async {
                    var failure: Error?
                    do {
                        if cancelled() { throw CancellationError() }
                        try body(id)
                    } catch { failure = error }
                    board.withLock { b in
                        b.running -= 1
                        if let failure, b.error == nil { b.error = failure }
                        for d in fed[id] ?? [] {
                            b.waitingOn[d]! -= 1
                            if b.waitingOn[d] == 0 { b.ready.append(d) }
                        }
                    }
                    pump()
                    group.leave()
                }
            }
        }
        pump()
        group.wait()
        if let e = board.withLock({ $0.error }) { throw e }
    }
}
