extension Graph {
    /// Every problem with this graph against the catalog, each with JSON path and line:column.
    /// Runs before anything executes; `pgflow validate` prints exactly these.
    public func validate(_ catalog: Catalog) -> [Diagnostic] {
        var out: [Diagnostic] = []
        let roles = self.roles(catalog)
        func problem(_ path: String, _ message: String, atKey: Bool = false) {
            out.append(Diagnostic(file: document.file, path: path,
                                  location: atKey ? document.keyLocation(path) : document.location(path),
                                  message: message))
        }

        for n in nodes {
            guard let spec = catalog[n.type] else {
                problem("\(n.path).type", "unknown node type \"\(n.type)\" for node \"\(n.id)\""
                        + Suggest.hint(n.type, catalog.types) + " (`pgflow nodes` lists them)")
                continue
            }
            // Params
            for (name, atKey, message) in ParamCheck.problems(n.params.map { (key: $0.name, value: $0.value) }, spec.params, owner: n.type,
                                                              subject: { "param \"\($0)\" of node \"\(n.id)\" (\(n.type))" }) {
                problem("\(n.path).params.\(name)", message, atKey: atKey)
            }
            for p in spec.params where p.required && n.param(p.name) == nil {
                problem(n.path, "node \"\(n.id)\" (\(n.type)) is missing the required param \"\(p.name)\" (\(p.kind.rawValue)\(p.doc.isEmpty ? "" : ": " + p.doc))")
            }
            out += pluginProblems(n, spec, catalog)
            if n.cache == .recompute, let roles, roles[n.id] != .map {
                problem("\(n.path).cache", "node \"\(n.id)\" cannot be recomputed: only a node that maps frames to frames can; its results are kept")
            }
            // Inputs
            for (port, src) in n.inputs {
                let path = "\(n.path).in.\(port)"
                guard let input = spec.input(port) else {
                    problem(path, "\(n.type) has no input \"\(port)\"" + Suggest.hint(port, spec.inputs.map(\.name))
                            + " (inputs: \(spec.inputs.map(\.name).joined(separator: ", ")))", atKey: true)
                    continue
                }
                guard let from = node(src.node) else {
                    problem(path, "link \"\(src)\" names no node \"\(src.node)\"" + Suggest.hint(src.node, nodes.map(\.id)))
                    continue
                }
                guard let fromSpec = catalog[from.type] else { continue } // reported on that node
                guard let output = fromSpec.output(src.port) else {
                    problem(path, "link \"\(src)\": \(from.type) node \"\(from.id)\" has no output \"\(src.port)\""
                            + " (outputs: \(fromSpec.outputs.map(\.name).joined(separator: ", ")))")
                    continue
                }
                if output.type != input.type {
                    problem(path, "input \"\(port)\" of node \"\(n.id)\" expects \(input.type.rawValue), got \(output.type.rawValue) from \(src)")
                }
                if let roles, carriesFrames(src, catalog, roles) && input.rate == .staticRate {
                    problem(path, "input \"\(port)\" of node \"\(n.id)\" takes one static value, but \(src) gives one value per frame")
                }
            }
            for input in spec.inputs where !input.optional && n.input(input.name) == nil {
                problem(n.path, "node \"\(n.id)\" (\(n.type)) is missing its required input \"\(input.name)\" (\(input.type.rawValue), \(input.rate.rawValue))")
            }
        }

        for cycle in cycles() {
            problem("nodes.\(cycle[0])", "cycle: \(cycle.joined(separator: " → ")); a graph must be acyclic")
        }

        // Targets and stages
        func checkTarget(_ t: Target, _ path: String) {
            guard let n = node(t.node) else {
                problem(path, "\"\(t)\" names no node \"\(t.node)\"" + Suggest.hint(t.node, nodes.map(\.id)))
                return
            }
            if case .port(let ref) = t, let spec = catalog[n.type], spec.output(ref.port) == nil {
                problem(path, "\"\(t)\": \(n.type) node \"\(n.id)\" has no output \"\(ref.port)\" (outputs: \(spec.outputs.map(\.name).joined(separator: ", ")))")
            }
        }
        for (i, t) in outputs.enumerated() { checkTarget(t, "outputs[\(i)]") }
        var stageNames: [String: Int] = [:]
        for s in stages {
            // Stages are cached and reported by name: two of one name would share results.
            if let first = stageNames[s.name] {
                problem("\(s.path).name", "stage name \"\(s.name)\" is already used by stages[\(first)]; give each stage its own name")
            } else {
                stageNames[s.name] = s.index
            }
            switch s.kind {
            case .run(let targets):
                if targets.isEmpty { problem("\(s.path).run", "stage \"\(s.name)\" runs nothing") }
                for (i, t) in targets.enumerated() { checkTarget(t, "\(s.path).run[\(i)]") }
            case .optimize(let o):
                for (suffix, message) in TrainingSettings.read(o).1 {
                    problem("\(s.path).optimize.\(suffix)", "stage \"\(s.name)\": \(message)")
                }
                checkTarget(.port(o.loss), "\(s.path).optimize.loss")
                for (i, id) in o.train.enumerated() {
                    if let n = node(id) {
                        if let spec = catalog[n.type], !spec.trainable {
                            problem("\(s.path).optimize.train[\(i)]", "node \"\(id)\" (\(n.type)) has nothing to train")
                        }
                    } else {
                        problem("\(s.path).optimize.train[\(i)]", "names no node \"\(id)\"" + Suggest.hint(id, nodes.map(\.id)))
                    }
                }
            }
        }
        if outputs.isEmpty && stages.isEmpty {
            problem("", "nothing to run: add \"outputs\": [\"node.port\", …] or \"stages\"")
        }
        return out
    }
}

/// "did you mean" for misspelt names.
public enum Suggest {
    public static func hint(_ name: String, _ candidates: [String]) -> String {
        let best = candidates.map { ($0, distance($0.lowercased(), name.lowercased())) }.min { $0.1 < $1.1 }
        guard let (c, d) = best, d <= max(2, name.count / 3) else { return "" }
        return "; did you mean \"\(c)\"?"
    }

    static func distance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var prev = Array(0...b.count)
        for i in 1...a.count {
            var cur = [i] + Array(repeating: 0, count: b.count)
            for j in 1...b.count {
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            prev = cur
        }
        return prev[b.count]
    }
}
