import Foundation
import PGFlow
import PGTensor

/// A seeded noise image (see `Nodes/Noise.json`): fixed random feature images for fitting tests
/// and benchmarks, and weights for gradient probes. The same seed gives the same image everywhere.
public struct Noise: Operator {
    public static let type = "Noise"
    public static let version = 1

    let shape: [Int]
    let seed: UInt64
    let normal: Bool
    let mean: Float
    let scale: Float

    public init(params: Params) throws {
        shape = [try params.int("channels"), try params.int("height"), try params.int("width")]
        seed = UInt64(try params.int("seed"))
        normal = try params.string("distribution") == "normal"
        mean = Float(try params.double("mean"))
        scale = Float(try params.double("scale"))
    }

    public func evaluate(_ inputs: Inputs, frame: Int?, context: RunContext) throws -> [String: Value] {
        var rng = SplitMix64(seed: seed)
        let count = shape.reduce(1, *)
        var values = [Float](repeating: 0, count: count)
        for i in 0..<count {
            // One normal per Box–Muller pair: simple and identical on every machine.
            let x = normal ? rng.boxMuller().0 : 2 * rng.uniformOpen() - 1
            values[i] = mean + scale * Float(x)
        }
        return ["image": .tensor(Tensor(shape: shape, scalars: values))]
    }
}
