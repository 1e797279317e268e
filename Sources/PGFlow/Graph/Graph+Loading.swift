import Foundation

extension Graph {
    /// Reads, substitutes vars in and validates a graph file against the catalog. Every problem
    /// found is reported together in one `ValidationError`; nothing runs before this succeeds.
    public static func load(_ url: URL, catalog: Catalog, overrides: [(String, String)] = []) throws -> Graph {
        let doc = try JSONDocument.load(url)
        var loader = GraphLoader(doc: doc, url: url, overrides: overrides)
        var graph = loader.read()
        graph?.anchorCommandLinePaths(catalog, overridden: Set(overrides.map(\.0)),
                                      currentDirectory: URL(fileURLWithPath: FileManager.default.currentDirectoryPath))
        var problems = doc.duplicateKeys + loader.problems
        if let graph { problems += graph.validate(catalog) }
        if !problems.isEmpty {
            // File order reads best: sort by position, keeping path-only problems last.
            problems.sort { ($0.location?.line ?? .max, $0.location?.column ?? .max) < ($1.location?.line ?? .max, $1.location?.column ?? .max) }
            throw ValidationError(problems)
        }
        return graph!
    }
}

/// Turns a graph file's JSON into a `Graph`, collecting structural problems as it goes.
struct GraphLoader {
    let doc: JSONDocument
    let url: URL
    let overrides: [(String, String)]
    var problems: [Diagnostic] = []
    var vars: [(name: String, value: JSON)] = []

    init(doc: JSONDocument, url: URL, overrides: [(String, String)]) {
        self.doc = doc
        self.url = url
        self.overrides = overrides
    }

    mutating func problem(_ path: String, _ message: String, atKey: Bool = false) {
        problems.append(Diagnostic(file: doc.file, path: path,
                                   location: atKey ? doc.keyLocation(path) : doc.location(path), message: message))
    }

    mutating func read() -> Graph? {
        guard let root = doc.root.objectMembers else {
            problem("", "a graph file must be a JSON object with \"pgflow\", \"nodes\" and \"stages\" or \"outputs\"")
            return nil
        }
        let known = ["pgflow", "name", "vars", "nodes", "stages", "outputs", "doc"]
        for (k, _) in root where !known.contains(k) {
            problem(k, "unknown key \"\(k)\" (a graph has \(known.joined(separator: ", ")))", atKey: true)
        }
        switch doc.root["pgflow"] {
        case nil: problem("", "missing \"pgflow\": 1 (the graph format version)")
        case .some(let v) where v.int == 1: break
        case .some(let v): problem("pgflow", "unsupported graph format version \(v.text); this pgflow reads version 1")
        }
        readVars()
        var nodes: [GraphNode] = []
        if let members = doc.root["nodes"]?.objectMembers {
            for (id, body) in members { if let n = readNode(id, body) { nodes.append(n) } }
        } else {
            problem(doc.root["nodes"] == nil ? "" : "nodes", "\"nodes\" must be an object of node id → node")
        }
        var stages: [Stage] = []
        if let s = doc.root["stages"] {
            if let arr = s.array {
                for (i, st) in arr.enumerated() { if let stage = readStage(i, st) { stages.append(stage) } }
            } else { problem("stages", "\"stages\" must be an array") }
        }
        var outputs: [Target] = []
        if let o = doc.root["outputs"] {
            if let arr = o.array {
                for (i, t) in arr.enumerated() { if let target = readTarget(t, "outputs[\(i)]") { outputs.append(target) } }
            } else { problem("outputs", "\"outputs\" must be an array of \"node\" or \"node.port\"") }
        }
        let name = doc.root["name"]?.string ?? url.deletingPathExtension().lastPathComponent
        return Graph(file: url, name: name, vars: vars, nodes: nodes, stages: stages, outputs: outputs, document: doc)
    }

    mutating func readVars() {
        if let v = doc.root["vars"] {
            if let m = v.objectMembers { vars = m.map { ($0.key, $0.value) } } else { problem("vars", "\"vars\" must be an object of name → value") }
        }
        for (name, text) in overrides {
            // `--set n=42` means the number 42, `--set p=hello` the string "hello".
            // `--set p=null` drops an optional param (json-c returns no object for a bare null).
            let value = text == "null" ? .null : (try? JSONDocument.parse(Data(text.utf8), file: "--set").root) ?? .string(text)
            if let i = vars.firstIndex(where: { $0.name == name }) {
                vars[i].value = value
            } else {
                let names = vars.map(\.name).joined(separator: ", ")
                problems.append(Diagnostic(file: doc.file, path: "vars", location: doc.location("vars"),
                                           message: "--set \(name)=…: the graph has no var \"\(name)\"" +
                                                    (names.isEmpty ? "" : " (it has \(names))")))
            }
        }
    }

    /// `"$name"` becomes the var's value (any JSON type); `"${name}"` inside a longer string is
    /// replaced by the var's text; `"$$"` is a literal dollar.
    mutating func substitute(_ v: JSON, _ path: String) -> JSON {
        switch v {
        case .string(let s) where s.contains("$"):
            if s.hasPrefix("$"), !s.hasPrefix("$$"), !s.hasPrefix("${"),
               s.dropFirst().allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) {
                let name = String(s.dropFirst())
                if let value = vars.first(where: { $0.name == name })?.value { return value }
                problem(path, "unknown var \"$\(name)\"" + varsHint())
                return v
            }
            var out = ""
            var rest = Substring(s)
            while let d = rest.firstIndex(of: "$") {
                out += rest[..<d]
                let after = rest[rest.index(after: d)...]
                if after.hasPrefix("$") { out += "$"; rest = after.dropFirst(); continue }
                if after.hasPrefix("{"), let close = after.firstIndex(of: "}") {
                    let name = String(after[after.index(after: after.startIndex)..<close])
                    if let value = vars.first(where: { $0.name == name })?.value {
                        out += value.string ?? value.canonical
                    } else {
                        problem(path, "unknown var \"${\(name)}\"" + varsHint())
                    }
                    rest = after[after.index(after: close)...]
                    continue
                }
                out += "$"
                rest = after
            }
            return .string(out + rest)
        case .array(let a):
            return .array(a.enumerated().map { substitute($1, "\(path)[\($0)]") })
        case .object(let m):
            return .object(m.map { ($0.key, substitute($0.value, "\(path).\($0.key)")) })
        default:
            return v
        }
    }

    private func varsHint() -> String {
        vars.isEmpty ? " (the graph defines no vars)" : " (vars: \(vars.map(\.name).joined(separator: ", ")))"
    }

    mutating func readNode(_ id: String, _ body: JSON) -> GraphNode? {
        let path = "nodes.\(id)"
        if id.isEmpty || id.contains(".") || id.contains("$") {
            problem(path, "node id \"\(id)\" must be non-empty and contain no '.' or '$'", atKey: true)
        }
        guard let members = body.objectMembers else {
            problem(path, "a node must be an object with \"type\", and optionally \"in\" and \"params\"")
            return nil
        }
        for (k, _) in members where !["type", "in", "params", "doc", "cache"].contains(k) {
            problem("\(path).\(k)", "unknown key \"\(k)\" in node \"\(id)\" (a node has type, in, params, cache, doc)", atKey: true)
        }
        var cache: CachePolicy?
        if let c = body["cache"] {
            cache = c.string.flatMap(CachePolicy.init(rawValue:))
            if cache == nil { problem("\(path).cache", "cache must be \"persist\" (keep results) or \"recompute\" (compute them again where needed)") }
        }
        guard let type = body["type"]?.string else {
            problem(body["type"] == nil ? path : "\(path).type", "node \"\(id)\" needs a \"type\" string")
            return nil
        }
        var inputs: [(port: String, source: PortRef)] = []
        if let i = body["in"] {
            if let m = i.objectMembers {
                for (port, link) in m {
                    guard let text = link.string, let ref = PortRef(parsing: text) else {
                        problem("\(path).in.\(port)", "a link must be a string \"node.port\", got \(link.text)")
                        continue
                    }
                    inputs.append((port, ref))
                }
            } else { problem("\(path).in", "\"in\" must be an object of input port → \"node.port\"") }
        }
        var params: [(name: String, value: JSON)] = []
        if let p = body["params"] {
            if let m = p.objectMembers {
                params = m.map { ($0.key, substitute($0.value, "\(path).params.\($0.key)")) }
            } else { problem("\(path).params", "\"params\" must be an object of name → value") }
        }
        return GraphNode(id: id, type: type, params: params, inputs: inputs, cache: cache)
    }

    mutating func readTarget(_ v: JSON, _ path: String) -> Target? {
        guard let s = v.string, !s.isEmpty else {
            problem(path, "expected \"node\" or \"node.port\", got \(v.text)")
            return nil
        }
        if let ref = PortRef(parsing: s) { return .port(ref) }
        return .node(s)
    }

    mutating func readStage(_ i: Int, _ v: JSON) -> Stage? {
        let path = "stages[\(i)]"
        guard let m = v.objectMembers else { problem(path, "a stage must be an object with \"name\" and \"run\" or \"optimize\""); return nil }
        for (k, _) in m where !["name", "run", "optimize", "doc"].contains(k) {
            problem("\(path).\(k)", "unknown key \"\(k)\" in a stage (a stage has name, run or optimize, doc)", atKey: true)
        }
        let name = v["name"]?.string ?? "stage\(i)"
        switch (v["run"], v["optimize"]) {
        case (let run?, nil):
            guard let arr = run.array else { problem("\(path).run", "\"run\" must be an array of \"node\" or \"node.port\""); return nil }
            let targets = arr.enumerated().compactMap { readTarget($1, "\(path).run[\($0)]") }
            return Stage(name: name, kind: .run(targets), index: i)
        case (nil, let opt?):
            let o = substitute(opt, "\(path).optimize")
            guard let lossText = o["loss"]?.string, let loss = PortRef(parsing: lossText) else {
                problem("\(path).optimize.loss", "an optimize stage needs \"loss\": \"node.port\"")
                return nil
            }
            let train = o["train"]?.array?.compactMap(\.string) ?? []
            if o["train"]?.array == nil { problem("\(path).optimize.train", "an optimize stage needs \"train\": [node ids]") }
            guard let steps = o["steps"]?.int, steps >= 0 else {
                problem("\(path).optimize.steps", "an optimize stage needs \"steps\", a non-negative integer")
                return nil
            }
            return Stage(name: name, kind: .optimize(OptimizeSettings(loss: loss, train: train, steps: steps, settings: o)), index: i)
        case (nil, nil):
            problem(path, "stage \"\(name)\" needs \"run\" or \"optimize\"")
        case (_?, _?):
            problem(path, "stage \"\(name)\" has both \"run\" and \"optimize\"; use two stages")
        }
        return nil
    }
}
