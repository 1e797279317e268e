extension Graph {
    /// Node ids feeding `id` directly, in input order (unknown ids skipped).
    public func upstream(of id: String) -> [String] {
        guard let n = node(id) else { return [] }
        var seen = Set<String>()
        return n.inputs.map(\.source.node).filter { self.node($0) != nil && seen.insert($0).inserted }
    }

    /// Node ids reading an output of `id`.
    public func downstream(of id: String) -> [String] {
        nodes.filter { $0.inputs.contains { $0.source.node == id } }.map(\.id)
    }

    /// Every node `ids` depend on, and the ids themselves.
    public func ancestors(of ids: [String]) -> Set<String> {
        var out = Set<String>()
        var stack = ids
        while let id = stack.popLast() {
            guard out.insert(id).inserted else { continue }
            stack += upstream(of: id)
        }
        return out
    }

    /// Nodes in dependency order (file order among independent ones); nil if there is a cycle.
    public func topologicalOrder() -> [String]? {
        var indegree: [String: Int] = [:]
        for n in nodes { indegree[n.id] = upstream(of: n.id).count }
        var order: [String] = []
        var ready = nodes.map(\.id).filter { indegree[$0] == 0 }
        while !ready.isEmpty {
            let id = ready.removeFirst()
            order.append(id)
            for d in downstream(of: id) {
                indegree[d]! -= 1
                if indegree[d] == 0 { ready.append(d) }
            }
        }
        return order.count == nodes.count ? order : nil
    }

    /// Each distinct cycle once, as the node ids along it (first id repeated at the end).
    public func cycles() -> [[String]] {
        var color: [String: Int] = [:] // 0 new, 1 on stack, 2 done
        var stack: [String] = []
        var found: [[String]] = []
        var seenSets = Set<Set<String>>()
        func visit(_ id: String) {
            color[id] = 1
            stack.append(id)
            for u in upstream(of: id) {
                if color[u, default: 0] == 1, let start = stack.firstIndex(of: u) {
                    // Walking upstream; report the cycle in data-flow order.
                    let cycle = Array(stack[start...].reversed())
                    if seenSets.insert(Set(cycle)).inserted { found.append(cycle + [cycle[0]]) }
                } else if color[u, default: 0] == 0 {
                    visit(u)
                }
            }
            stack.removeLast()
            color[id] = 2
        }
        for n in nodes where color[n.id, default: 0] == 0 { visit(n.id) }
        return found
    }
}
