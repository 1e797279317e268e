import PGFlow
import PGKernels
import PGTensor

/// `builtin:head`'s procedural skin texture (`HeadModel.texture`) as an Image, to colour a fresh
/// GaussianField (its `texture` input) for the synthetic sample and demos. See `Nodes/HeadTexture.json`.
public struct HeadTexture: Operator {
    public static let type = "HeadTexture"
    public static let version = 1

    let resolution: Int

    public init(params: Params) throws {
        resolution = try params.int("resolution")
        guard resolution >= 1 else { throw OperatorError("param 'resolution' should be positive, got \(resolution)") }
    }

    public func evaluate(_ inputs: Inputs, frame: Int?, context: RunContext) throws -> [String: Value] {
        let r = resolution
        return ["texture": .tensor(Tensor(shape: [3, r, r], scalars: HeadModel.texture(resolution: r)))]
    }
}
