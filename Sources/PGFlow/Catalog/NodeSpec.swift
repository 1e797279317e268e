/// How often a port carries a value.
public enum Rate: String, Sendable, Codable {
    case perFrame = "per-frame"
    case staticRate = "static"
}

/// The value types ports carry (see `Value` for their layouts).
public enum PortType: String, Sendable, CaseIterable {
    case image = "Image", camera = "Camera", gaussians = "Gaussians", tracking = "Tracking"
    case mesh = "Mesh", boxes = "Boxes", scalar = "Scalar", file = "File", meta = "Meta", tensor = "Tensor"
    case record = "Record"
}

public struct PortSpec: Sendable, Equatable {
    public var name: String
    public var type: PortType
    public var rate: Rate
    public var optional: Bool
    public var differentiable: Bool
    public var doc: String
}

public enum ParamKind: String, Sendable, CaseIterable {
    case int, number, bool, string, `enum`, path, outpath, ints, numbers, json
    /// An array of `values` (or one value, meaning it for every element), e.g. one activation per layer.
    case enums
    /// A parametric model: a built-in name ("builtin:head") or a model file read like a `path`.
    case model
    /// A catalogued plugin of the spec's `pluginKind` (`Nodes/plugins/<name>.json`), named by its
    /// name; the plugin's own params sit in the node's `params` param and are validated against
    /// its manifest.
    case plugin
}

public struct ParamSpec: Sendable, Equatable {
    public var name: String
    public var kind: ParamKind
    public var defaultValue: JSON?
    public var optional: Bool
    public var min: Double?
    public var max: Double?
    public var count: Int?
    public var values: [String]
    public var doc: String
    /// For a `plugin` param: the kind of plugin it takes (`editor`, `landmarks`, …).
    public var pluginKind: String? = nil

    /// Required params have neither a default nor `"optional": true`.
    public var required: Bool { defaultValue == nil && !optional }
}

/// Whether a node's per-frame results are kept in the on-disk cache (docs/DESIGN.md §9).
public enum CachePolicy: String, Sendable, CaseIterable {
    /// Stored in the cache: expensive or irreplaceable results (decoded frames, renders, edits).
    case persist
    /// Never stored: computed again, frame by frame, inside whatever consumes them. For cheap,
    /// large per-frame values (splatted feature images, composites, posed Gaussians), which cost
    /// more disk than they save time.
    case recompute
}

/// How the scheduler calls a node, decided by its port rates (see `Operator`).
public enum NodeRole: String, Sendable {
    case staticNode = "static", map, source, sink
}

/// One entry of the node catalog (`Nodes/<Type>.json`).
public struct NodeSpec: Sendable {
    public var type: String
    public var doc: String
    public var inputs: [PortSpec]
    public var outputs: [PortSpec]
    public var params: [ParamSpec]
    /// The node owns parameters an optimize stage can train.
    public var trainable: Bool
    public var file: String
    /// The type's default; a graph node's `"cache"` overrides it.
    public var cache: CachePolicy = .persist
    /// Inside an optimize stage the node's per-frame output is a held training target, updated
    /// from its inputs every `every` steps (params `every`, `max_edits`) and otherwise reused:
    /// iterative dataset update (EditorCall; docs/DESIGN.md §3).
    public var datasetUpdate = false

    public func input(_ name: String) -> PortSpec? { inputs.first { $0.name == name } }
    public func output(_ name: String) -> PortSpec? { outputs.first { $0.name == name } }
    public func param(_ name: String) -> ParamSpec? { params.first { $0.name == name } }

    public var differentiable: Bool { inputs.contains { $0.differentiable } || outputs.contains { $0.differentiable } }

    public var role: NodeRole {
        let perFrameOut = outputs.contains { $0.rate == .perFrame }
        let perFrameIn = inputs.contains { $0.rate == .perFrame }
        switch (perFrameIn, perFrameOut) {
        case (_, true): return perFrameIn ? .map : .source
        case (true, false): return .sink
        case (false, false): return .staticNode
        }
    }
}
