extension Graph {
    /// Graphviz DOT for this graph: record nodes with named ports, value types on edges,
    /// trainable and differentiable nodes marked, stages as clusters, a legend; with `status`,
    /// nodes are coloured by cache state.
    public func dot(catalog: Catalog, status: [String: NodeStatus]? = nil) -> String {
        let roles = self.roles(catalog) ?? [:]
        var lines: [String] = []
        lines.append("digraph \(DOT.id(name)) {")
        lines.append("  rankdir=LR;")
        // Ranks across stage clusters: without it graphviz loses edges from a node outside a
        // cluster into a record port inside it ("lost edge" errors on reconstruct.json).
        lines.append("  newrank=true;")
        lines.append("  node [shape=record, fontname=\"Helvetica\", fontsize=11, style=filled, fillcolor=white];")
        lines.append("  edge [fontname=\"Helvetica\", fontsize=9];")
        lines.append("  label=\(DOT.id("\(name) — \(document.file.split(separator: "/").last.map(String.init) ?? "")")); labelloc=t;")

        // A node sits in the cluster of the first stage that names it (trained, loss or run target).
        var home: [String: Int] = [:]
        for s in stages {
            var named: [String] = []
            switch s.kind {
            case .run(let targets): named = targets.map(\.node)
            case .optimize(let o): named = [o.loss.node] + o.train
            }
            for id in named where home[id] == nil && node(id) != nil { home[id] = s.index }
        }

        func nodeLine(_ n: GraphNode) -> String {
            let spec = catalog[n.type]
            let ins = (spec?.inputs ?? []).map { "<i_\(DOT.port($0.name))> \(DOT.label($0.name))" }.joined(separator: "|")
            let outs = (spec?.outputs ?? []).map { "<o_\(DOT.port($0.name))> \(DOT.label($0.name))" }.joined(separator: "|")
            var marks: [String] = []
            if spec?.trainable == true { marks.append("trainable") }
            if spec?.differentiable == true { marks.append("∂") }
            let title = "\(DOT.label(n.id))\\n\(DOT.label(n.type))" + (marks.isEmpty ? "" : "\\n[\(marks.joined(separator: ", "))]")
            var attrs = ["label=\"{{\(ins)}|\(title)|{\(outs)}}\""]
            if spec?.trainable == true { attrs.append("penwidth=2.5") }
            if spec?.differentiable == true { attrs.append("color=\"#1f5fbf\"") }
            if spec == nil { attrs.append("fillcolor=\"#f4cccc\"") }
            if let st = status?[n.id] {
                attrs.append("fillcolor=\"\(st == .cached ? "#c8e6c9" : "#ffd8a8")\"")
                attrs.append("tooltip=\(DOT.id(st.rawValue))")
            }
            return "\(DOT.id(n.id)) [\(attrs.joined(separator: ", "))];"
        }

        for n in nodes where home[n.id] == nil { lines.append("  " + nodeLine(n)) }
        for s in stages {
            lines.append("  subgraph \(DOT.id("cluster_stage_\(s.index)")) {")
            let what: String
            switch s.kind {
            case .run: what = "run"
            case .optimize(let o):
                // What it trains, said in the label: a node drawn in an earlier stage's cluster
                // would otherwise leave a later stage that trains it again looking empty.
                what = "optimize \(o.loss) × \(o.steps) steps, trains \(o.train.joined(separator: ", "))"
                    + (status?[s.recordID].map { $0 == .cached ? "; cached" : "; will train" } ?? "")
            }
            lines.append("    label=\(DOT.id("stage \(s.index + 1): \(s.name) (\(what))")); style=\"rounded,dashed\"; color=\"#777777\";")
            for n in nodes where home[n.id] == s.index { lines.append("    " + nodeLine(n)) }
            lines.append("  }")
        }

        for n in nodes {
            let spec = catalog[n.type]
            for (port, src) in n.inputs {
                guard let from = node(src.node) else { continue }
                let out = catalog[from.type]?.output(src.port)
                let input = spec?.input(port)
                var attrs: [String] = []
                let perFrame = carriesFrames(src, catalog, roles)
                if let out { attrs.append("label=\(DOT.id(out.type.rawValue + (perFrame ? " ×t" : "")))") }
                if perFrame { attrs.append("penwidth=1.6") } else { attrs.append("style=dashed") }
                if out?.differentiable == true && input?.differentiable == true { attrs.append("color=\"#1f5fbf\"") }
                lines.append("  \(DOT.id(src.node)):\(DOT.id("o_" + DOT.port(src.port))):e -> \(DOT.id(n.id)):\(DOT.id("i_" + DOT.port(port))):w [\(attrs.joined(separator: ", "))];")
            }
        }

        lines.append("  subgraph cluster_legend {")
        lines.append("    label=\"legend\"; style=rounded; color=\"#aaaaaa\"; fontsize=10;")
        lines.append("    legend_node [label=\"{{<i> input}|id\\nType|{<o> output}}\"];")
        lines.append("    legend_trainable [label=\"trainable\\n(optimized by a stage)\", penwidth=2.5];")
        lines.append("    legend_diff [label=\"∂ differentiable\\n(gradients flow)\", color=\"#1f5fbf\"];")
        if status != nil {
            lines.append("    legend_cached [label=\"cached\", fillcolor=\"#c8e6c9\"];")
            lines.append("    legend_run [label=\"will run\", fillcolor=\"#ffd8a8\"];")
        }
        lines.append("    legend_a [shape=point]; legend_b [shape=point]; legend_c [shape=point]; legend_d [shape=point];")
        lines.append("    legend_a -> legend_b [label=\"per-frame (×t)\", penwidth=1.6];")
        lines.append("    legend_c -> legend_d [label=\"static\", style=dashed];")
        lines.append("  }")
        lines.append("}")
        return lines.joined(separator: "\n") + "\n"
    }
}

/// Quoting for DOT identifiers and record labels.
enum DOT {
    static func id(_ s: String) -> String {
        "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }
    /// Record labels treat { } | < > and quotes specially.
    static func label(_ s: String) -> String {
        var out = ""
        for c in s {
            if "{}|<>\"\\".contains(c) { out.append("\\") }
            out.append(c)
        }
        return out
    }
    /// Port names inside records: letters, digits and underscores only.
    static func port(_ s: String) -> String {
        String(s.map { $0.isLetter || $0.isNumber ? $0 : "_" })
    }
}
