import Foundation

extension Graph {
    /// The plugin a node's `plugin` param names and the node's `params` for it, checked against the
    /// plugin's manifest like node params are against the catalog.
    func pluginProblems(_ node: GraphNode, _ spec: NodeSpec, _ catalog: Catalog) -> [Diagnostic] {
        var out: [Diagnostic] = []
        func problem(_ path: String, _ message: String, atKey: Bool = false) {
            out.append(Diagnostic(file: document.file, path: path,
                                  location: atKey ? document.keyLocation(path) : document.location(path), message: message))
        }
        for p in spec.params where p.kind == .plugin {
            guard let name = (node.param(p.name) ?? p.defaultValue)?.string else { continue }   // reported as a param
            let at = "\(node.path).params.\(p.name)"
            let ofKind = catalog.plugins.values.filter { $0.kind == p.pluginKind }.map(\.name).sorted()
            guard let manifest = catalog.plugins[name] else {
                problem(at, "node \"\(node.id)\" (\(node.type)): no plugin \"\(name)\" in the catalog" + Suggest.hint(name, ofKind)
                        + " (\(p.pluginKind ?? "") plugins: \(ofKind.isEmpty ? "none" : ofKind.joined(separator: ", ")); `pgflow plugins` lists them)")
                continue
            }
            if let kind = p.pluginKind, manifest.kind != kind {
                problem(at, "node \"\(node.id)\" (\(node.type)) takes an \(kind) plugin, but \"\(name)\" is a \(manifest.kind) plugin")
                continue
            }
            let paramsAt = "\(node.path).params.params"
            let given = node.param("params")
            guard given == nil || given == .null || given?.objectMembers != nil else {
                problem(paramsAt, "params for plugin \"\(name)\" must be a JSON object, got \(given!.kindName) \(given!.text)")
                continue
            }
            let members = given?.objectMembers ?? []
            for (key, atKey, message) in ParamCheck.problems(members, manifest.params, owner: "plugin \"\(name)\"",
                                                             subject: { "param \"\($0)\" of plugin \"\(name)\" (node \"\(node.id)\")" }) {
                problem("\(paramsAt).\(key)", message, atKey: atKey)
            }
            for ps in manifest.params where ps.required && !members.contains(where: { $0.0 == ps.name }) {
                problem(paramsAt.replacingOccurrences(of: ".params.params", with: ".params"),
                        "node \"\(node.id)\" (\(node.type)): plugin \"\(name)\" needs the param \"\(ps.name)\" in \"params\" (\(ps.kind.rawValue)\(ps.doc.isEmpty ? "" : ": " + ps.doc))")
            }
        }
        return out
    }

    /// The plugin a node uses, if it has a `plugin` param naming a catalogued one.
    public func plugin(of node: GraphNode, _ catalog: Catalog) -> PluginManifest? {
        guard let spec = catalog[node.type], let p = spec.params.first(where: { $0.kind == .plugin }),
              let name = (node.param(p.name) ?? p.defaultValue)?.string else { return nil }
        return catalog.plugins[name]
    }
}

extension PluginManifest {
    /// A node's params for this plugin completed with the manifest's defaults, `path` params made
    /// absolute against the graph's folder: exactly what the worker receives.
    public func completeParams(_ given: JSON?, base: URL) -> [String: JSON] {
        var out: [String: JSON] = [:]
        let members = Dictionary((given?.objectMembers ?? []).map { ($0.0, $0.1) }, uniquingKeysWith: { a, _ in a })
        for p in params {
            guard let v = members[p.name].flatMap({ $0 == .null ? nil : $0 }) ?? p.defaultValue else { continue }
            if p.kind == .path, let s = v.string { out[p.name] = .string(Params.resolve(s, against: base).path) }
            else { out[p.name] = v }
        }
        return out
    }
}
