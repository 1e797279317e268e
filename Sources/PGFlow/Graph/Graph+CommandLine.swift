import Foundation

extension Graph {
    /// A relative path given with `--set` was typed in a shell, so it means relative to the
    /// current folder, as every command-line tool reads paths; paths written in the graph file stay
    /// relative to the graph's folder. Applies to path, outpath and model params (a plugin's path
    /// params too) and to optimize stages' `history` and `export`, wherever the file's text starts
    /// with a var given on the command line (`"$video"`, `"${out}/x.mp4"`).
    mutating func anchorCommandLinePaths(_ catalog: Catalog, overridden: Set<String>, currentDirectory: URL) {
        guard !overridden.isEmpty else { return }
        func fromCommandLine(_ raw: JSON?) -> Bool {
            guard let s = raw?.string, s.hasPrefix("$"), !s.hasPrefix("$$") else { return false }
            let body = s.dropFirst()
            let name = body.hasPrefix("{") ? String(body.dropFirst().prefix { $0 != "}" })
                : String(body.prefix { $0.isLetter || $0.isNumber || $0 == "_" })
            return overridden.contains(name)
        }
        func anchored(_ v: JSON) -> JSON {
            guard let s = v.string, !s.isEmpty, !s.hasPrefix("/"), !s.hasPrefix("~"), !s.hasPrefix("builtin:") else { return v }
            return .string(currentDirectory.appendingPathComponent(s).standardizedFileURL.path)
        }
        let rawNodes = document.root["nodes"]
        for i in nodes.indices {
            let node = nodes[i]
            guard let spec = catalog[node.type] else { continue }
            let rawParams = rawNodes?[node.id]?["params"]
            for (j, p) in node.params.enumerated() {
                if let ps = spec.param(p.name), [.path, .outpath, .model].contains(ps.kind), fromCommandLine(rawParams?[p.name]) {
                    nodes[i].params[j].value = anchored(p.value)
                }
                // A plugin's own path params, inside the node's "params" object.
                if p.name == "params", let plugin = plugin(of: node, catalog), let members = p.value.objectMembers {
                    let rawMembers = rawParams?["params"]
                    nodes[i].params[j].value = .object(members.map { key, value in
                        guard plugin.param(key)?.kind == .path, fromCommandLine(rawMembers?[key]) else { return (key: key, value: value) }
                        return (key: key, value: anchored(value))
                    })
                }
            }
        }
        for i in stages.indices {
            guard case .optimize(var o) = stages[i].kind, let members = o.settings.objectMembers else { continue }
            let raw = document.root["stages"]?.array?[stages[i].index]["optimize"]
            o.settings = .object(members.map { key, value in
                guard ["history", "export"].contains(key), fromCommandLine(raw?[key]) else { return (key: key, value: value) }
                return (key: key, value: anchored(value))
            })
            stages[i].kind = .optimize(o)
        }
    }
}
