import Foundation

/// Everything a node's result depends on, hashed into its cache key (docs/DESIGN.md §3).
///
/// A recipe is Merkle-style: it folds in the recipes of the nodes feeding it, so a node's key is
/// known before anything runs and changes exactly when something upstream changes. A per-frame
/// node's value for frame t is keyed by (recipe, t); static nodes and sinks by the recipe alone.
/// The parts are kept so `--explain` can say which one changed since the last run.
public struct Recipe: Sendable, Codable, Equatable {
    public var type: String
    public var version: Int
    /// Param name → canonical JSON, in name order; defaults filled in.
    public var params: [String: String]
    /// `path` param name → SHA-256 of the file's (or folder's) content.
    public var files: [String: String]
    /// Input port → "node.port@<recipe key of that node>".
    public var inputs: [String: String]
    /// Extra state folded in by the training engine (parameter checkpoints), empty otherwise.
    public var state: String
    public var key: String

    public init(type: String, version: Int, params: [String: String], files: [String: String],
                inputs: [String: String], state: String = "") {
        self.type = type
        self.version = version
        self.params = params
        self.files = files
        self.inputs = inputs
        self.state = state
        var h = KeyHasher("pgflow.recipe.v1")
        h.add("type", type)
        h.add("version", version)
        for (k, v) in params.sorted(by: { $0.key < $1.key }) { h.add("param." + k, v) }
        for (k, v) in files.sorted(by: { $0.key < $1.key }) { h.add("file." + k, v) }
        for (k, v) in inputs.sorted(by: { $0.key < $1.key }) { h.add("input." + k, v) }
        h.add("state", state)
        self.key = h.finalize().hex
    }

    /// The cache key of this node's value for one frame (or the static value when `frame` is nil).
    public func entryKey(frame: Int?) -> CacheKey {
        var h = KeyHasher("pgflow.entry.v1")
        h.add("recipe", key)
        h.add("frame", frame ?? -1)
        return h.finalize()
    }

    /// Why this recipe differs from `old`, in words for `--explain`; nil when equal.
    public func change(from old: Recipe?, rerunInputs: Set<String>) -> String? {
        guard let old else { return "new" }
        if old.key == key { return nil }
        if old.type != type { return "type changed (\(old.type) → \(type))" }
        if old.version != version { return "implementation changed (\(type) v\(old.version) → v\(version))" }
        var reasons: [String] = []
        for name in Set(params.keys).union(old.params.keys).sorted() where params[name] != old.params[name] {
            reasons.append("param \(name) changed (\(old.params[name] ?? "unset") → \(params[name] ?? "unset"))")
        }
        for name in Set(files.keys).union(old.files.keys).sorted() where files[name] != old.files[name] {
            reasons.append("file of param \(name) changed")
        }
        for port in Set(inputs.keys).union(old.inputs.keys).sorted() where inputs[port] != old.inputs[port] {
            let src = (inputs[port] ?? old.inputs[port] ?? "").split(separator: "@").first.map(String.init) ?? ""
            // A node's input names "node.port"; a stage's names the node itself (or "previous stage").
            let isStageInput = !src.contains(".")
            let srcNode = isStageInput ? src : src.split(separator: ".").dropLast().joined(separator: ".")
            if isStageInput {
                reasons.append(rerunInputs.contains(srcNode) ? "\(srcNode) ran" : "\(srcNode) changed")
            } else if rerunInputs.contains(srcNode) {
                reasons.append("input \(port) changed (\(srcNode) ran)")
            } else {
                reasons.append("input \(port) changed (now \(src))")
            }
        }
        if old.state != state { reasons.append("trained parameters changed") }
        if reasons.count > 4 { reasons = reasons.prefix(3) + ["and \(reasons.count - 3) more"] }
        return reasons.isEmpty ? "inputs changed" : reasons.joined(separator: ", ")
    }
}
