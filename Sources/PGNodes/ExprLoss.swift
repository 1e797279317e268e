import Foundation
import PGFlow
import PGKernels
import PGTensor

/// PortraitGen's expression similarity guidance (§3.3.1): ‖E(crop(I)) − E(crop(I_src))‖², the
/// mean squared difference of expression features of the render and of the *unedited* frame on
/// a head crop, so repeated 2D edits cannot drift the expression. E is pgflow's built-in
/// `ExpressionEncoder` (no weights). See `Nodes/ExprLoss.json`.
public struct ExprLoss: Differentiable {
    public static let type = "ExprLoss"
    public static let version = 1

    let settings: ExpressionEncoder.Settings
    let scale: Double

    public init(params: Params) throws {
        var s = ExpressionEncoder.Settings()
        s.size = try params.int("size")
        s.cells = try params.int("cells")
        s.blur = try params.double("blur")
        guard s.size % s.cells == 0 else { throw OperatorError("param 'size' (\(s.size)) should be a multiple of 'cells' (\(s.cells))") }
        settings = s
        scale = try params.double("scale")
    }

    struct State {
        var image: ExpressionEncoder.Saved
        var difference: [Float]
    }

    /// The crop box: the input box scaled about its centre; nil when there is no face (an empty
    /// or all-zero box, as Tracker gives when it has nothing to bound).
    func cropBox(_ inputs: Inputs) throws -> SIMD4<Double>? {
        let v = try inputs.value("box")
        let b = v.tensor?.scalars.map(Double.init) ?? v.list?.compactMap(\.number) ?? []
        guard b.count == 4 else { throw OperatorError("input 'box' should be [x0, y0, x1, y1], got \(v.summary)") }
        guard b.allSatisfy(\.isFinite), b[2] - b[0] >= 2, b[3] - b[1] >= 2 else { return nil }
        let cx = (b[0] + b[2]) / 2, cy = (b[1] + b[3]) / 2, hw = (b[2] - b[0]) / 2 * scale, hh = (b[3] - b[1]) / 2 * scale
        return SIMD4(cx - hw, cy - hh, cx + hw, cy + hh)
    }

    public func forward(_ inputs: Inputs, frame: Int?, context: RunContext) throws -> (outputs: [String: Value], saved: Saved) {
        let image = try inputs.tensor("image"), source = try inputs.tensor("source")
        guard image.rank == 3, image.shape[0] == 3 else { throw OperatorError("input 'image' should be RGB [3, H, W], got \(image.shape)") }
        guard source.shape == image.shape else { throw OperatorError("input 'source' is \(source.shape), image \(image.shape); they must match") }
        let d = ExpressionEncoder.count(settings)
        guard let box = try cropBox(inputs) else {
            // No face in the crop: no term, no gradient (never NaN).
            return (["loss": .number(0), "features": .tensor(Tensor(zeros: [d]))], Saved.none)
        }
        let mine = ExpressionEncoder.encode(image, box: box, settings: settings)
        let theirs = ExpressionEncoder.encode(source, box: box, settings: settings)
        let diff = zip(mine.features, theirs.features).map { $0 - $1 }
        let loss = diff.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(d)
        return (["loss": .number(loss), "features": .tensor(Tensor(shape: [d], scalars: mine.features))],
                Saved(State(image: mine, difference: diff)))
    }

    public func vjp(_ cotangents: [String: Value], saved: Saved, inputs: Inputs, frame: Int?, context: RunContext) throws -> Gradients {
        let image = try inputs.tensor("image")
        guard let state = saved.contents as? State, let c = cotangents["loss"]?.number, c != 0 else {
            return Gradients(inputs: ["image": .tensor(Tensor(zeros: image.shape))])
        }
        let d = Float(state.difference.count)
        let g = state.difference.map { Float(c) * 2 * $0 / d }
        return Gradients(inputs: ["image": .tensor(ExpressionEncoder.encodeVJP(state.image, cotangent: g, settings: settings))])
    }
}
