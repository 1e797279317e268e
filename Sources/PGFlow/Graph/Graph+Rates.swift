extension Graph {
    /// How the engine calls each node. A map node (per-frame in, per-frame out) none of whose
    /// per-frame inputs actually carries frames — every one is fed by a static value — runs once
    /// as a static node, and its outputs are static: a static cloud splatted through a static
    /// camera is one image, not a sequence. A sink fed only static values consumes them as a
    /// single frame (an Encoder writes a one-frame video, GaussianExport a static cloud).
    /// Nil on a cycle.
    public func roles(_ catalog: Catalog) -> [String: NodeRole]? {
        guard let order = topologicalOrder() else { return nil }
        var roles: [String: NodeRole] = [:]
        for id in order {
            guard let n = node(id), let spec = catalog[n.type] else { continue }
            var role = spec.role
            if role == .map {
                let framed = n.inputs.contains { port, src in
                    guard spec.input(port)?.rate == .perFrame else { return false }
                    return carriesFrames(src, catalog, roles)
                }
                if !framed { role = .staticNode }
            }
            roles[id] = role
        }
        return roles
    }

    /// Whether an output gives one value per frame, given the roles of the nodes so far.
    public func carriesFrames(_ ref: PortRef, _ catalog: Catalog, _ roles: [String: NodeRole]) -> Bool {
        guard let n = node(ref.node), catalog[n.type]?.output(ref.port)?.rate == .perFrame else { return false }
        return roles[ref.node] == .source || roles[ref.node] == .map
    }
}
