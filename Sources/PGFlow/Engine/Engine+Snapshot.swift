import Foundation

/// What the cache holds of a graph's last run, read without running anything: what `pgflow
/// report` draws. Nodes downstream of trained parameters are looked up under the keys of the
/// stages that trained them, as `status()` does.
public struct RunSnapshot: Sendable {
    public var status: [String: NodeStatus]
    /// The clip's length, when its source is cached.
    public var frameCount: Int?
    /// Each optimize stage's loss history, from its cached result (or its last checkpoint).
    public var histories: [(stage: String, history: LossHistory, complete: Bool)]
    /// Per node: how many cache entries its current results take and their bytes.
    public var footprint: [String: (entries: Int, bytes: Int64)]
}

extension Engine {
    public func snapshot() throws -> RunSnapshot {
        let status = try self.status()   // also keys trained nodes by their stages
        var frameCount: Int?
        for id in order where role(id) == .source {
            if let n = try staticOutputs(id)?[Engine.frameCountKey]?.number { frameCount = Int(n) }
        }
        var histories: [(String, LossHistory, Bool)] = []
        let stageKeys = state.withLock { $0.stageKeys }
        for stage in graph.stages {
            guard let key = stageKeys[stage.name] else { continue }
            var ck = KeyHasher("pgflow.checkpoint.v1")
            ck.add("stage", key)
            if let v = store.load(CacheKey(hex: key)!)?["state"], let s = TrainingState(v) {
                histories.append((stage.name, s.history, true))
                // Trained parameters, so values computed on demand (never stored) are the trained ones.
                state.withLock { st in for (id, p) in s.parameters { st.parameters[id] = p } }
            } else if let v = store.load(ck.finalize())?["state"], let s = TrainingState(v) {
                histories.append((stage.name, s.history, false))
            }
        }
        var footprint: [String: (Int, Int64)] = [:]
        for id in order {
            let recipe = self.recipe(id)!
            let keys: [CacheKey]
            switch role(id) {
            case .staticNode, .sink: keys = [recipe.entryKey(frame: nil)]
            case .source: keys = [recipe.entryKey(frame: nil)] + (0..<(frameCount ?? 0)).map { recipe.entryKey(frame: $0) }
            case .map: keys = (0..<(frameCount ?? 0)).map { recipe.entryKey(frame: $0) }
            }
            var entries = 0
            var bytes: Int64 = 0
            for k in keys {
                var st = stat()
                if stat(store.path(for: k), &st) == 0 { entries += 1; bytes += Int64(st.st_size) }
            }
            footprint[id] = (entries, bytes)
        }
        return RunSnapshot(status: status, frameCount: frameCount, histories: histories, footprint: footprint)
    }

    /// A cached output: static (`frame` nil) or one frame's. Nil when it is not in the cache.
    public func cachedValue(_ ref: PortRef, frame: Int?) -> Value? {
        guard graph.node(ref.node) != nil else { return nil }
        if frame == nil || !perFrame(ref) { return (try? staticOutputs(ref.node))??[ref.port] }
        return (try? frameValue(ref.node, frame: frame!))?[ref.port]
    }
}
