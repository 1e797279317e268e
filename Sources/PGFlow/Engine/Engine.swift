import Foundation
import PGTensor
import Synchronization

/// Runs a validated graph: works out every node's cache key up front, reuses what the cache
/// holds, and evaluates only what is missing, node by node in dependency order, frames in
/// parallel. Per-frame values go through the disk cache rather than memory, so a long clip is
/// streamed, not held.
public final class Engine: Sendable {
    public let graph: Graph
    public let catalog: Catalog
    public let store: CacheStore
    let files: FileDigest
    let operators: [String: any Operator.Type]
    let options: RunOptions
    let emit: @Sendable (RunEvent) -> Void
    let cancelled: @Sendable () -> Bool
    /// Node id → its params and file digests, worked out once (hashing files is not free).
    let ingredients: [String: Ingredients]
    let order: [String]
    /// How each node is called (see `Graph.roles`).
    let roles: [String: NodeRole]
    /// Recipes of the previous run of this graph with this cache, for `--explain`.
    let previous: [String: Recipe]
    /// Map nodes whose per-frame results are never stored (cache policy `recompute`): consumers
    /// compute the frames they need on the spot (`frameValue`).
    let volatile: Set<String>
    /// Nodes to recompute though cached → why: the `--force` nodes and everything downstream of
    /// them (a forced node's new result would otherwise be ignored by a cached consumer).
    let forced: [String: String]
    /// Plugin workers, started on first use and stopped when `run` returns.
    let plugins: PluginHost
    let state = Mutex(EngineState())

    struct EngineState {
        var statics: [String: [String: Value]] = [:]
        var frameCounts: [String: Int] = [:]
        var instances: [String: any Operator] = [:]
        var summary = RunSummary()
        /// Node id → recipe under the current parameter states.
        var recipes: [String: Recipe] = [:]
        /// Trainable node id → key of the stage that last trained it ("init" before any).
        var parameterStates: [String: String] = [:]
        /// Trainable node id → its current parameter groups.
        var parameters: [String: [String: Tensor]] = [:]
        /// Nodes whose results this run produced or reused (their recipes go into the run record).
        var touched = Set<String>()
        /// Optimize stage name → its key, as `status()` worked them out in order.
        var stageKeys: [String: String] = [:]
    }

    struct Ingredients: Sendable {
        var type: String
        var version: Int
        var params: [String: String]
        var files: [String: String]
        var trainable: Bool
    }

    public init(graph: Graph, catalog: Catalog, operators: [any Operator.Type], cacheDirectory: URL,
                options: RunOptions = RunOptions(),
                events: @escaping @Sendable (RunEvent) -> Void = { _ in },
                cancelled: @escaping @Sendable () -> Bool = { false }) throws {
        self.graph = graph
        self.catalog = catalog
        self.operators = Dictionary(operators.map { ($0.type, $0) }, uniquingKeysWith: { a, _ in a })
        self.options = options
        self.emit = events
        self.cancelled = cancelled
        self.store = try CacheStore(directory: cacheDirectory, onWarning: { events(.warning($0)) })
        self.files = store.fileDigests
        guard let order = graph.topologicalOrder() else { throw RunError("the graph has a cycle") }
        self.order = order
        self.roles = graph.roles(catalog) ?? [:]
        let roles = self.roles
        self.volatile = Set(graph.nodes.filter { n in
            roles[n.id] == .map && (n.cache ?? catalog[n.type]?.cache ?? .persist) == .recompute
        }.map(\.id))
        self.ingredients = try Engine.gatherIngredients(graph, catalog, self.operators, order, files)
        self.previous = RunRecord.load(cacheDirectory, graph: graph)
        var forced: [String: String] = [:]
        for f in options.force.sorted() {
            forced[f] = "forced (--force \(f))"
            var frontier = [f]
            while let id = frontier.popLast() {
                for d in graph.downstream(of: id) where forced[d] == nil {
                    forced[d] = "forced: downstream of --force \(f)"
                    frontier.append(d)
                }
            }
        }
        self.forced = forced
        let logs = cacheDirectory.appendingPathComponent("logs")
        self.plugins = PluginHost(catalog: catalog.plugins,
                                  python: PluginHost.defaultPython(catalogDirectory: catalog.directory,
                                                                   environment: ProcessInfo.processInfo.environment),
                                  threads: options.threads,
                                  log: { plugin, line in
                                      events(.log(plugin: plugin, line: line))
                                      PluginLog.append(line, to: logs.appendingPathComponent("plugin-\(plugin).log"))
                                  })
        let recipes = Engine.recipes(graph, order, ingredients, states: [:])
        state.withLock { $0.recipes = recipes }
    }

    /// Completed params (defaults filled in) of a node, as the operator sees them.
    static func params(_ node: GraphNode, _ spec: NodeSpec, _ base: URL) -> Params {
        var values: [String: JSON] = [:]
        for p in spec.params {
            if let v = node.param(p.name), v != .null { values[p.name] = v }
            else if let d = p.defaultValue { values[p.name] = d }
        }
        return Params(values, baseDirectory: base)
    }

    private static func gatherIngredients(_ graph: Graph, _ catalog: Catalog, _ operators: [String: any Operator.Type],
                                          _ order: [String], _ files: FileDigest) throws -> [String: Ingredients] {
        var out: [String: Ingredients] = [:]
        // Every missing input and every write over an input at once, before hashing anything.
        let missing = graph.fileProblems(catalog)
        if !missing.isEmpty { throw ValidationError(missing) }
        var unreadable: [Diagnostic] = []
        for id in order {
            let node = graph.node(id)!
            guard let spec = catalog[node.type] else { throw RunError("unknown node type \(node.type)") }
            guard let op = operators[node.type] else {
                throw RunError(node: id, type: node.type, "this build of pgflow has no implementation of \(node.type)")
            }
            let params = params(node, spec, graph.directory)
            var canon: [String: String] = [:]
            var digests: [String: String] = [:]
            for p in spec.params {
                guard let v = params[p.name] else { continue }
                // A model param is a file unless it names a built-in model.
                if p.kind == .path || (p.kind == .model && v.string?.hasPrefix("builtin:") == false), let path = v.string {
                    // Content, not name, decides reuse: a moved file with the same bytes stays cached.
                    canon[p.name] = "<file>"
                    let url = Params.resolve(path, against: graph.directory)
                    let at = "\(node.path).params.\(p.name)"
                    do { digests[p.name] = try files.sha256(of: url) } catch {
                        unreadable.append(Diagnostic(file: graph.document.file, path: at, location: graph.document.location(at),
                                                  message: "node \"\(id)\" (\(node.type)), param \"\(p.name)\": \(error)"))
                    }
                } else {
                    canon[p.name] = v.canonical
                }
            }
            // A plugin enters the key by version and script digest; its params completed with the
            // manifest's defaults, and the files they name by content, as for node params.
            if let plugin = graph.plugin(of: node, catalog) {
                digests["plugin"] = plugin.digest
                var complete = plugin.completeParams(params["params"], base: graph.directory)
                for p in plugin.params where p.kind == .path {
                    guard let path = complete[p.name]?.string else { continue }
                    complete[p.name] = .string("<file>")
                    let at = "\(node.path).params.params.\(p.name)"
                    do { digests["params.\(p.name)"] = try files.sha256(of: URL(fileURLWithPath: path)) } catch {
                        unreadable.append(Diagnostic(file: graph.document.file, path: at, location: graph.document.location(at),
                                                  message: "node \"\(id)\" (\(node.type)), plugin \"\(plugin.name)\" param \"\(p.name)\": \(error)"))
                    }
                }
                canon["params"] = JSON.object(complete.sorted { $0.key < $1.key }.map { (key: $0.key, value: $0.value) }).canonical
            }
            out[id] = Ingredients(type: node.type, version: op.version, params: canon, files: digests,
                                  trainable: spec.trainable && op is any Trainable.Type)
        }
        if !unreadable.isEmpty { throw ValidationError(unreadable) }
        return out
    }

    /// Recipes for every node; a trainable node's recipe folds in which stage trained it last,
    /// so everything downstream of trained parameters is keyed by the parameter state.
    static func recipes(_ graph: Graph, _ order: [String], _ ingredients: [String: Ingredients],
                        states: [String: String]) -> [String: Recipe] {
        var recipes: [String: Recipe] = [:]
        for id in order {
            let ing = ingredients[id]!
            var inputs: [String: String] = [:]
            for (port, src) in graph.node(id)!.inputs {
                inputs[port] = "\(src)@\(recipes[src.node]?.key ?? "?")"
            }
            recipes[id] = Recipe(type: ing.type, version: ing.version, params: ing.params, files: ing.files,
                                 inputs: inputs, state: ing.trainable ? (states[id] ?? "init") : "")
        }
        return recipes
    }

    /// Recomputes recipes after an optimize stage changed parameter states.
    func refreshRecipes() {
        let states = state.withLock { $0.parameterStates }
        let recipes = Engine.recipes(graph, order, ingredients, states: states)
        state.withLock { st in st.recipes.merge(recipes) { _, new in new } }
    }

    func spec(_ id: String) -> NodeSpec { catalog[graph.node(id)!.type]! }
    func role(_ id: String) -> NodeRole { roles[id] ?? spec(id).role }
    /// Whether this output holds one value per frame in this graph.
    func perFrame(_ src: PortRef) -> Bool { graph.carriesFrames(src, catalog, roles) }
    public func recipe(_ id: String) -> Recipe? { state.withLock { $0.recipes[id] } }
    func entryKey(_ id: String, frame: Int?) -> CacheKey { recipe(id)!.entryKey(frame: frame) }

    /// Runs the stages (or the requested targets) and returns what happened.
    @discardableResult
    public func run() throws -> RunSummary {
        enum Step { case run(String, [Target]); case optimize(Stage, OptimizeSettings) }
        var plan: [Step] = []
        // Asked for part of the graph: first the optimize stages that train what it depends on
        // (each chained on the ones before it), so it sees trained parameters, not initial ones.
        func trainedFirst(_ targets: [Target]) -> [Step] {
            let needed = graph.ancestors(of: targets.map(\.node))
            let stages = graph.stages.compactMap { stage -> (Stage, OptimizeSettings)? in
                if case .optimize(let o) = stage.kind { return (stage, o) }
                return nil
            }
            guard let last = stages.lastIndex(where: { !needed.isDisjoint(with: $0.1.train) }) else { return [] }
            return stages[...last].map { .optimize($0.0, $0.1) }
        }
        if let until = options.until {
            plan = trainedFirst([.node(until)]) + [.run("until \(until)", [.node(until)])]
        } else if let targets = options.targets {
            plan = trainedFirst(targets) + [.run("targets", targets)]
        } else {
            for stage in graph.stages {
                switch stage.kind {
                case .run(let targets): plan.append(.run(stage.name, targets))
                case .optimize(let o): plan.append(.optimize(stage, o))
                }
            }
            if !graph.outputs.isEmpty { plan.append(.run("outputs", graph.outputs)) }
        }
        defer {
            plugins.shutdown()
            let (recipes, touched) = state.withLock { ($0.recipes, $0.touched) }
            RunRecord.save(store.directory, graph: graph, recipes: recipes.filter { touched.contains($0.key) })
        }
        var stageKey = ""
        for (i, step) in plan.enumerated() {
            switch step {
            case .run(let name, let targets):
                if plan.count > 1 || !graph.stages.isEmpty { emit(.stage(name: name, index: i, count: plan.count)) }
                try materialize(targets)
                for t in targets {
                    if let v = try targetValue(t) {
                        // A target named by a stage and by "outputs" is reported once.
                        state.withLock { st in
                            if !st.summary.outputs.contains(where: { $0.target == t.description }) {
                                st.summary.outputs.append((t.description, v))
                            }
                        }
                    }
                }
            case .optimize(let stage, let o):
                emit(.stage(name: stage.name, index: i, count: plan.count))
                stageKey = try optimize(stage, o, after: stageKey)
            }
        }
        return state.withLock { $0.summary }
    }

    /// A static target's value after the run (per-frame targets live in the cache by frame).
    func targetValue(_ t: Target) throws -> Value? {
        let r = role(t.node)
        guard r == .staticNode || r == .sink || r == .source else { return nil }
        // A source's static outputs (VideoSource.meta) sit beside its frame count.
        guard var outs = try staticOutputs(t.node) else { return nil }
        outs[Engine.frameCountKey] = nil
        if r == .source, case .port(let p) = t, spec(t.node).output(p.port)?.rate != .staticRate { return nil }
        if outs.isEmpty { return nil }
        switch t {
        case .node: return outs.count == 1 ? outs.first!.value : .record(outs)
        case .port(let p): return outs[p.port]
        }
    }
}
