import Foundation

/// The node catalog: every node type's ports, params and doc, loaded from `Nodes/*.json`.
public struct Catalog: Sendable {
    public var specs: [String: NodeSpec]
    public var directory: URL?
    /// The plugins graphs may name (`Nodes/plugins/*.json`, see `Nodes/plugins/README.md`).
    public var plugins: [String: PluginManifest]

    public init(specs: [NodeSpec], directory: URL? = nil, plugins: [PluginManifest] = []) {
        self.specs = Dictionary(specs.map { ($0.type, $0) }, uniquingKeysWith: { a, _ in a })
        self.directory = directory
        self.plugins = Dictionary(plugins.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
    }

    public subscript(type: String) -> NodeSpec? { specs[type] }
    public var types: [String] { specs.keys.sorted() }

    /// Where the catalog is when no `--nodes` is given: `$PGFLOW_NODES`, then `Nodes/` beside the
    /// binary or in `../share/pgflow/`, then the nearest `Nodes/` above the binary (a source checkout).
    public static func defaultDirectory(executable: URL, environment: [String: String]) -> URL? {
        if let env = environment["PGFLOW_NODES"], !env.isEmpty { return URL(fileURLWithPath: env) }
        let fm = FileManager.default
        let bin = executable.resolvingSymlinksInPath().deletingLastPathComponent()
        let candidates = [bin.appendingPathComponent("Nodes"),
                          bin.appendingPathComponent("../share/pgflow/Nodes").standardizedFileURL]
        for c in candidates where fm.fileExists(atPath: c.appendingPathComponent("README.md").path)
            || (try? fm.contentsOfDirectory(atPath: c.path).contains { $0.hasSuffix(".json") }) == true {
            return c
        }
        var dir = bin
        while dir.path != "/" {
            let c = dir.appendingPathComponent("Nodes")
            if (try? fm.contentsOfDirectory(atPath: c.path).contains { $0.hasSuffix(".json") }) == true { return c }
            dir = dir.deletingLastPathComponent()
        }
        return nil
    }

    /// Loads every `*.json` in `directory` and the plugin manifests in `directory/plugins` and in
    /// `pluginFolders` (a later folder's plugin of the same name wins); problems in any file are
    /// all reported together.
    public static func load(_ directory: URL, pluginFolders: [URL] = []) throws -> Catalog {
        let fm = FileManager.default
        guard let names = try? fm.contentsOfDirectory(atPath: directory.path) else {
            throw ValidationError([Diagnostic(file: directory.path, path: "", location: nil,
                                              message: "node catalog folder not found (use --nodes DIR or PGFLOW_NODES)")])
        }
        var specs: [NodeSpec] = []
        var problems: [Diagnostic] = []
        for name in names.sorted() where name.hasSuffix(".json") {
            let url = directory.appendingPathComponent(name)
            do {
                let doc = try JSONDocument.load(url)
                var reader = SpecReader(doc: doc)
                if let spec = reader.read() {
                    if spec.type + ".json" != name {
                        reader.problem("type", "the type \"\(spec.type)\" must match the file name \(name)")
                    } else {
                        specs.append(spec)
                    }
                }
                problems += doc.duplicateKeys + reader.problems
            } catch let e as ValidationError {
                problems += e.diagnostics
            }
        }
        var plugins: [String: PluginManifest] = [:]
        for folder in [directory.appendingPathComponent("plugins")] + pluginFolders {
            let (found, pluginProblems) = PluginManifest.loadFolder(folder)
            for m in found { plugins[m.name] = m }
            problems += pluginProblems
        }
        if !problems.isEmpty { throw ValidationError(problems) }
        return Catalog(specs: specs, directory: directory, plugins: Array(plugins.values))
    }
}

/// Reads one catalog file, collecting every problem with its JSON path.
struct SpecReader {
    let doc: JSONDocument
    var problems: [Diagnostic] = []

    mutating func problem(_ path: String, _ message: String) {
        problems.append(Diagnostic(file: doc.file, path: path, location: doc.location(path), message: message))
    }

    mutating func read() -> NodeSpec? {
        guard let root = doc.root.objectMembers else { problem("", "a catalog entry must be a JSON object"); return nil }
        for (k, _) in root where !["type", "doc", "inputs", "outputs", "params", "trainable", "cache", "dataset_update"].contains(k) {
            problem(k, "unknown key \"\(k)\" (expected type, doc, inputs, outputs, params, trainable, cache, dataset_update)")
        }
        guard let type = doc.root["type"]?.string, !type.isEmpty else { problem("type", "missing \"type\""); return nil }
        let inputs = ports("inputs", isInput: true)
        let outputs = ports("outputs", isInput: false)
        var params: [ParamSpec] = []
        for (name, v) in doc.root["params"]?.objectMembers ?? [] {
            if let p = param("params.\(name)", name, v) { params.append(p) }
        }
        var spec = NodeSpec(type: type, doc: doc.root["doc"]?.string ?? "", inputs: inputs, outputs: outputs,
                            params: params, trainable: doc.root["trainable"]?.bool ?? false, file: doc.file)
        if let d = doc.root["dataset_update"] {
            spec.datasetUpdate = d.bool ?? false
            if d.bool == nil { problem("dataset_update", "dataset_update must be true or false") }
            if spec.datasetUpdate {
                if spec.role != .map { problem("dataset_update", "only a map node can hold a dataset update") }
                if spec.input("source") == nil { problem("dataset_update", "a dataset-update node needs an input \"source\" (the target before any update)") }
                if spec.param("every")?.kind != .int { problem("dataset_update", "a dataset-update node needs an int param \"every\" (steps between updates)") }
            }
        }
        if let c = doc.root["cache"] {
            if let policy = c.string.flatMap(CachePolicy.init(rawValue:)) {
                spec.cache = policy
                if policy == .recompute && spec.role != .map {
                    problem("cache", "only a map node (per-frame inputs and outputs) can be recomputed; a \(spec.role.rawValue) node's results are kept")
                }
            } else {
                problem("cache", "cache must be \"persist\" or \"recompute\"")
            }
        }
        return spec
    }

    mutating func ports(_ key: String, isInput: Bool) -> [PortSpec] {
        var out: [PortSpec] = []
        for (name, v) in doc.root[key]?.objectMembers ?? [] {
            let path = "\(key).\(name)"
            guard let t = v["type"]?.string, let type = PortType(rawValue: t) else {
                problem(path + ".type", "port type must be one of \(PortType.allCases.map(\.rawValue).joined(separator: ", "))")
                continue
            }
            guard let r = v["rate"]?.string, let rate = Rate(rawValue: r) else {
                problem(path + ".rate", "rate must be \"per-frame\" or \"static\"")
                continue
            }
            out.append(PortSpec(name: name, type: type, rate: rate, optional: isInput && (v["optional"]?.bool ?? false),
                                differentiable: v["differentiable"]?.bool ?? false, doc: v["doc"]?.string ?? ""))
        }
        return out
    }

    mutating func param(_ path: String, _ name: String, _ v: JSON) -> ParamSpec? {
        guard let k = v["type"]?.string, let kind = ParamKind(rawValue: k) else {
            problem(path + ".type", "param type must be one of \(ParamKind.allCases.map(\.rawValue).joined(separator: ", "))")
            return nil
        }
        let values = v["values"]?.array?.compactMap(\.string) ?? []
        if (kind == .enum || kind == .enums) && values.isEmpty { problem(path + ".values", "an \(kind.rawValue) param needs \"values\"") }
        var spec = ParamSpec(name: name, kind: kind, defaultValue: v["default"], optional: v["optional"]?.bool ?? false,
                             min: v["min"]?.double, max: v["max"]?.double, count: v["count"]?.int,
                             values: values, doc: v["doc"]?.string ?? "")
        if kind == .plugin {
            spec.pluginKind = v["kind"]?.string
            if spec.pluginKind == nil { problem(path + ".kind", "a plugin param needs \"kind\" (editor, landmarks, matte, expression)") }
        }
        if let d = spec.defaultValue, d != .null, let msg = ParamCheck.check(d, against: spec) {
            problem(path + ".default", "default " + msg)
        }
        return spec
    }
}

extension Catalog {
    /// Where the catalog promises what an implementation cannot do: a differentiable port on a
    /// node whose Swift type has no VJP (it would train with zero gradient, silently), a trainable
    /// node whose type owns no parameters, a type with no implementation at all.
    public func implementationProblems(_ operators: [any Operator.Type]) -> [Diagnostic] {
        var out: [Diagnostic] = []
        for type in types {
            let spec = self[type]!
            guard let op = operators.first(where: { $0.type == type }) else {
                out.append(Diagnostic(file: spec.file, path: "type", location: nil,
                                      message: "\(type): this build of pgflow has no implementation of it"))
                continue
            }
            if spec.differentiable && !(op is any Differentiable.Type) {
                let ports = (spec.inputs + spec.outputs).filter(\.differentiable).map(\.name).joined(separator: ", ")
                out.append(Diagnostic(file: spec.file, path: "", location: nil,
                                      message: "\(type): ports \(ports) are marked differentiable, but its implementation has no backward pass (not Differentiable)"))
            }
            if spec.trainable && !(op is any Trainable.Type) {
                out.append(Diagnostic(file: spec.file, path: "trainable", location: nil,
                                      message: "\(type) is marked trainable, but its implementation owns no parameters (not Trainable)"))
            }
        }
        return out
    }
}
