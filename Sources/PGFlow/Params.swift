import Foundation

/// A node's parameters after `$var` substitution, validation against the catalog and defaults.
/// Getters are for operators; validation already guaranteed presence and type, so a failing
/// getter means the catalog and the operator disagree, which is reported as an OperatorError.
public struct Params: Sendable {
    public let values: [String: JSON]
    /// Directory of the graph file: relative paths in params resolve against it.
    public let baseDirectory: URL

    public init(_ values: [String: JSON], baseDirectory: URL) {
        self.values = values
        self.baseDirectory = baseDirectory
    }

    public subscript(name: String) -> JSON? { values[name] }

    public func has(_ name: String) -> Bool {
        if let v = values[name], v != .null { return true }
        return false
    }

    public func int(_ name: String) throws -> Int {
        guard let v = values[name]?.int else { throw missing(name, "an integer") }
        return v
    }
    public func double(_ name: String) throws -> Double {
        guard let v = values[name]?.double else { throw missing(name, "a number") }
        return v
    }
    public func bool(_ name: String) throws -> Bool {
        guard let v = values[name]?.bool else { throw missing(name, "a boolean") }
        return v
    }
    public func string(_ name: String) throws -> String {
        guard let v = values[name]?.string else { throw missing(name, "a string") }
        return v
    }
    public func ints(_ name: String) throws -> [Int] {
        if let i = values[name]?.int { return [i] }
        guard let a = values[name]?.array else { throw missing(name, "an array of integers") }
        return try a.map { guard let i = $0.int else { throw missing(name, "an array of integers") }; return i }
    }
    /// An `enums` param: one string, or an array of them.
    public func strings(_ name: String) throws -> [String] {
        if let s = values[name]?.string { return [s] }
        guard let a = values[name]?.array else { throw missing(name, "an array of strings") }
        return try a.map { guard let s = $0.string else { throw missing(name, "an array of strings") }; return s }
    }
    public func doubles(_ name: String) throws -> [Double] {
        if let d = values[name]?.double { return [d] }
        guard let a = values[name]?.array else { throw missing(name, "an array of numbers") }
        return try a.map { guard let d = $0.double else { throw missing(name, "an array of numbers") }; return d }
    }
    /// A path param resolved against the graph's directory.
    public func url(_ name: String) throws -> URL {
        let p = try string(name)
        return Params.resolve(p, against: baseDirectory)
    }

    public static func resolve(_ path: String, against base: URL) -> URL {
        let expanded = (path as NSString).expandingTildeInPath
        if expanded.hasPrefix("/") { return URL(fileURLWithPath: expanded).standardizedFileURL }
        return base.appendingPathComponent(expanded).standardizedFileURL
    }

    private func missing(_ name: String, _ what: String) -> OperatorError {
        OperatorError("param '\(name)' should be \(what), got \(values[name]?.text ?? "nothing")")
    }
}

/// The values arriving on a node's input ports (for one frame, for a per-frame evaluation).
public struct Inputs: Sendable {
    public var values: [String: Value]
    /// A trainable node's parameter groups (`"features"`, `"weights"`, …) at their current values.
    public var parameters: [String: Tensor]
    public init(_ values: [String: Value], parameters: [String: Tensor] = [:]) {
        self.values = values
        self.parameters = parameters
    }

    /// A parameter group; a missing one means the node and its `initialParameters` disagree.
    public func parameter(_ name: String) throws -> Tensor {
        guard let t = parameters[name] else { throw OperatorError("parameter group '\(name)' is missing") }
        return t
    }

    public subscript(port: String) -> Value? { values[port] }

    public func value(_ port: String) throws -> Value {
        guard let v = values[port] else { throw OperatorError("input '\(port)' is not connected") }
        return v
    }
    public func tensor(_ port: String) throws -> Tensor {
        let v = try value(port)
        guard let t = v.tensor else { throw OperatorError("input '\(port)' should be a tensor, got \(v.summary)") }
        return t
    }
    public func number(_ port: String) throws -> Double {
        let v = try value(port)
        guard let d = v.number else { throw OperatorError("input '\(port)' should be a number, got \(v.summary)") }
        return d
    }
    public func record(_ port: String) throws -> [String: Value] {
        let v = try value(port)
        guard let r = v.record else { throw OperatorError("input '\(port)' should be a record, got \(v.summary)") }
        return r
    }
}

import PGTensor
