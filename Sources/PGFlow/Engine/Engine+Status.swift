/// Whether a node's result is already in the cache, as `pgflow dot --status` colours it.
public enum NodeStatus: String, Sendable {
    case cached
    case willRun = "will run"
}

extension Engine {
    /// Each node's cache state, without running anything. A per-frame node is cached when every
    /// frame is; the frame count comes from its source's cached entry (unknown: will run). Optimize
    /// stages (as "stage:<name>") are cached when their result is; nodes downstream of trained
    /// parameters are looked up under the keys of the stages that train them, as a run would.
    public func status() throws -> [String: NodeStatus] {
        var frames: [String: Int] = [:]
        var out: [String: NodeStatus] = [:]
        var previous = ""
        for stage in graph.stages {
            guard case .optimize(let o) = stage.kind else { continue }
            let (settings, problems) = TrainingSettings.read(o)
            guard problems.isEmpty else { break }
            let key = stageRecipe(o, loss: settings.loss, after: previous).key
            out[stage.recordID] = store.contains(CacheKey(hex: key)!) ? .cached : .willRun
            state.withLock { st in
                for id in settings.train { st.parameterStates[id] = key }
                st.stageKeys[stage.name] = key
            }
            previous = key
        }
        refreshRecipes()
        for id in order {
            let recipe = self.recipe(id)!
            switch role(id) {
            case .staticNode, .sink:
                out[id] = try staticMiss(id) == nil ? .cached : .willRun
            case .source:
                if let n = try staticOutputs(id)?[Engine.frameCountKey]?.number {
                    frames[id] = Int(n)
                    out[id] = (0..<Int(n)).allSatisfy { store.contains(recipe.entryKey(frame: $0)) } ? .cached : .willRun
                } else {
                    out[id] = .willRun
                }
            case .map where volatile.contains(id):
                // Never stored: as ready as what it is computed from.
                frames[id] = graph.ancestors(of: [id]).compactMap { frames[$0] }.first
                out[id] = graph.node(id)!.inputs.allSatisfy { out[$0.source.node] == .cached } ? .cached : .willRun
            case .map:
                let n = graph.ancestors(of: [id]).compactMap { frames[$0] }.first
                if let n { frames[id] = n }
                out[id] = n.map { n in (0..<n).allSatisfy { store.contains(recipe.entryKey(frame: $0)) } } == true ? .cached : .willRun
            }
        }
        return out
    }
}
