import Foundation
import PGTensor

/// The Swift implementation of one node type from the catalog (`Nodes/<Type>.json`).
///
/// The scheduler decides how to call it from the catalog's port rates:
/// - no per-frame port at all: a *static* node, `evaluate(_:frame:context:)` once with `frame == nil`;
/// - per-frame outputs and per-frame inputs: a *map*, `evaluate` once per frame index;
/// - per-frame outputs and no per-frame inputs: a *source*, which must conform to `FrameSource`;
/// - per-frame inputs and only static outputs: a *sink*, which must conform to `FrameSink`.
public protocol Operator: Sendable {
    /// The catalog type name, e.g. `"VideoSource"`.
    static var type: String { get }
    /// Bump when the outputs for the same inputs and params change: it is part of every cache key.
    static var version: Int { get }
    /// `params` are validated against the catalog and completed with its defaults.
    init(params: Params) throws
    /// Compute the outputs for one frame (`frame` set) or once (`frame == nil`).
    func evaluate(_ inputs: Inputs, frame: Int?, context: RunContext) throws -> [String: Value]
}

extension Operator {
    public func evaluate(_ inputs: Inputs, frame: Int?, context: RunContext) throws -> [String: Value] {
        throw OperatorError("\(Self.type) does not evaluate single frames")
    }
}

/// A node that creates a frame sequence (decoders, procedural generators).
/// If it also has static outputs (e.g. metadata), they come from `evaluate(_:frame: nil, context:)`.
public protocol FrameSource: Operator {
    /// How many frames the source yields with these (static) inputs.
    func frameCount(_ inputs: Inputs, context: RunContext) throws -> Int
    /// Produce exactly `frames` (ascending) and hand each to `emit` in order. The default calls
    /// `evaluate` per frame; sequential decoders override it to stream.
    func produce(frames: [Int], inputs: Inputs, context: RunContext,
                 emit: (Int, [String: Value]) throws -> Void) throws
}

extension FrameSource {
    public func produce(frames: [Int], inputs: Inputs, context: RunContext,
                        emit: (Int, [String: Value]) throws -> Void) throws {
        for t in frames { try emit(t, try evaluate(inputs, frame: t, context: context)) }
    }
}

/// A node that consumes every frame of its per-frame inputs in order (encoders, metrics).
public protocol FrameSink: Operator {
    func consume(_ frames: FrameStream, inputs: Inputs, context: RunContext) throws -> [String: Value]
}

/// Frames handed to a sink in order; `next()` returns nil after the last one.
/// Each element holds the sink's per-frame inputs for that frame; static inputs are in `inputs`.
public final class FrameStream {
    public let count: Int
    private let pull: () throws -> (Int, Inputs)?
    public init(count: Int, pull: @escaping () throws -> (Int, Inputs)?) {
        self.count = count
        self.pull = pull
    }
    public func next() throws -> (frame: Int, inputs: Inputs)? { try pull() }
}

/// An error raised inside a node. The scheduler adds node id, type and frame.
public struct OperatorError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
