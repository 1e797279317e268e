import Foundation

/// `"node.port"`: one output of one node.
public struct PortRef: Hashable, Sendable, CustomStringConvertible, Comparable {
    public var node: String
    public var port: String
    public init(node: String, port: String) { self.node = node; self.port = port }

    /// Parses `"node.port"`; nil when the text is not of that shape.
    public init?(parsing text: String) {
        guard let dot = text.lastIndex(of: "."), dot != text.startIndex, text.index(after: dot) != text.endIndex
        else { return nil }
        node = String(text[..<dot])
        port = String(text[text.index(after: dot)...])
    }
    public var description: String { "\(node).\(port)" }
    public static func < (a: PortRef, b: PortRef) -> Bool { (a.node, a.port) < (b.node, b.port) }
}

/// A node as written in a graph file, after `$var` substitution.
public struct GraphNode: Sendable {
    public var id: String
    public var type: String
    /// Params in file order, with vars substituted.
    public var params: [(name: String, value: JSON)]
    /// Input port → the output feeding it, in file order.
    public var inputs: [(port: String, source: PortRef)]
    /// `"cache": "persist" | "recompute"` in the graph file, overriding the type's policy.
    public var cache: CachePolicy? = nil

    public func param(_ name: String) -> JSON? { params.first { $0.name == name }?.value }
    public func input(_ port: String) -> PortRef? { inputs.first { $0.port == port }?.source }
    /// JSON path of this node in the graph file.
    public var path: String { "nodes.\(id)" }
}

/// What a run or a stage asks for: a whole node (all its outputs) or one output.
public enum Target: Sendable, Hashable, CustomStringConvertible {
    case node(String)
    case port(PortRef)
    public var node: String {
        switch self { case .node(let n): return n; case .port(let p): return p.node }
    }
    public var description: String {
        switch self { case .node(let n): return n; case .port(let p): return p.description }
    }
}

public struct OptimizeSettings: Sendable {
    public var loss: PortRef
    public var train: [String]
    public var steps: Int
    /// The whole `optimize` object, for settings read by the training engine.
    public var settings: JSON
}

public struct Stage: Sendable {
    public enum Kind: Sendable {
        case run([Target])
        case optimize(OptimizeSettings)
    }
    public var name: String
    public var kind: Kind
    public var index: Int
    public var path: String { "stages[\(index)]" }

    /// How an optimize stage stands beside node ids wherever results are listed (the run record,
    /// `--explain`, `dot --status`, cache entries): made here and nowhere else, so no module
    /// spells the prefix itself.
    public var recordID: String { Stage.recordID(name) }
    public static func recordID(_ name: String) -> String { "stage:" + name }
}

/// A parsed and validated graph file (version 1).
public struct Graph: Sendable {
    public var file: URL
    public var name: String
    public var vars: [(name: String, value: JSON)]
    public var nodes: [GraphNode]
    public var stages: [Stage]
    public var outputs: [Target]
    public var document: JSONDocument

    public var directory: URL { file.deletingLastPathComponent() }
    public func node(_ id: String) -> GraphNode? { nodes.first { $0.id == id } }
}
