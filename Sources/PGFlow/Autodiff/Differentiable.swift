import PGTensor

/// What a differentiable node's forward keeps for its VJP. Opaque to the engine: only the node
/// that made it reads it back.
public struct Saved: @unchecked Sendable {
    public let contents: Any
    public init(_ contents: Any) { self.contents = contents }
    public static let none = Saved(())

    public func get<T>(_ type: T.Type = T.self) throws -> T {
        guard let v = contents as? T else { throw OperatorError("saved state is \(Swift.type(of: contents)), expected \(T.self)") }
        return v
    }
}

/// What a VJP returns: cotangents for differentiable inputs (same layout as the input values)
/// and gradients for the node's own parameter groups.
public struct Gradients: Sendable {
    public var inputs: [String: Value]
    public var parameters: [String: Tensor]
    public init(inputs: [String: Value] = [:], parameters: [String: Tensor] = [:]) {
        self.inputs = inputs
        self.parameters = parameters
    }
}

/// A node gradients flow through. Its catalog entry marks which ports are differentiable; the
/// engine passes cotangents only for those outputs and reads them only for those inputs.
public protocol Differentiable: Operator {
    /// The forward pass, keeping exactly what `vjp` needs.
    func forward(_ inputs: Inputs, frame: Int?, context: RunContext) throws -> (outputs: [String: Value], saved: Saved)
    /// Pulls cotangents on outputs back to inputs and parameters. Outputs without a cotangent
    /// are absent from `cotangents` (treat as zero).
    func vjp(_ cotangents: [String: Value], saved: Saved, inputs: Inputs, frame: Int?, context: RunContext) throws -> Gradients
}

extension Differentiable {
    public func evaluate(_ inputs: Inputs, frame: Int?, context: RunContext) throws -> [String: Value] {
        try forward(inputs, frame: frame, context: context).outputs
    }
}

/// A node that owns parameters an optimize stage trains (its catalog entry says `"trainable": true`).
public protocol Trainable: Differentiable {
    /// Parameter groups at their starting values, from params and static inputs (seeded, so the
    /// same graph starts from the same parameters every time). Inputs that themselves depend on
    /// trained parameters are absent here: they exist only once a step has run.
    func initialParameters(_ inputs: Inputs, context: RunContext) throws -> [String: Tensor]
    /// Groups with one row per frame (or other parts a step touches only some of): Adam leaves
    /// the elements a step gives no gradient alone (`Adam.update(lazy:)`).
    var sparseGroups: Set<String> { get }
}

extension Trainable {
    public var sparseGroups: Set<String> { [] }
}
