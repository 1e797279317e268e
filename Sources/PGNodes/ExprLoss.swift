import Foundation
import PGFlow
import PGKernels
import PGTensor

/// PortraitGen's expression similarity guidance (§3.3.1): ‖E(crop(I)) − E(crop(I_src))‖², the
/// mean squared difference of expression features of the render and of the *unedited* frame on
/// a head crop, so repeated 2D edits cannot drift the expression. E is pgflow's built-in
/// `ExpressionEncoder` (no weights), or an `expression` plugin (EMOCA, say) that returns features
/// for a crop and, for the backward pass, the crop's gradient for a feature cotangent; pgflow
/// crops and pulls that gradient back to the frame. See `Nodes/ExprLoss.json`.
public struct ExprLoss: Differentiable {
    public static let type = "ExprLoss"
    public static let version = 1

    let settings: ExpressionEncoder.Settings
    let scale: Double
    /// An external encoder.
    let call: PluginCall?

    public init(params: Params) throws {
        var s = ExpressionEncoder.Settings()
        s.size = try params.int("size")
        s.cells = try params.int("cells")
        s.blur = try params.double("blur")
        guard s.size % s.cells == 0 else { throw OperatorError("param 'size' (\(s.size)) should be a multiple of 'cells' (\(s.cells))") }
        settings = s
        scale = try params.double("scale")
        call = try PluginCall(params)
    }

    struct State {
        var image: ExpressionEncoder.Saved?
        var difference: [Float]
        /// Plugin mode: the box and the image's crop, for the plugin's VJP.
        var box: SIMD4<Double>
        var crop: Tensor?
    }

    // MARK: the external encoder

    func encode(_ call: PluginCall, _ crop: Tensor, frame t: Int, context: RunContext, what: String) throws -> [Float] {
        let host = try call.host(context)
        return try host.call(call.plugin, try call.request("encode", frame: t, host: host), files: [("image", crop.npyDataHWC())],
                             what: "the expression features of \(what) in frame \(t)") { reply, _ in
            try call.named {
                guard let list = reply["features"]?.array, !list.isEmpty else { throw OperatorError("its reply has no 'features' list") }
                return try list.map { v in
                    guard let d = v.double, d.isFinite else { throw OperatorError("a feature is not a finite number: \(v.text)") }
                    return Float(d)
                }
            }
        }
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
        let image = try inputs.rgb("image"), source = try inputs.tensor("source")
        guard source.shape == image.shape else { throw OperatorError("input 'source' is \(source.shape), image \(image.shape); they must match") }
        let d = ExpressionEncoder.count(settings)
        guard let box = try cropBox(inputs) else {
            // No face in the crop: no term, no gradient (never NaN).
            return (["loss": .number(0), "features": .tensor(Tensor(zeros: [d]))], Saved.none)
        }
        if let call {
            let t = frame ?? 0
            let crop = ExpressionEncoder.crop(image, box: box, size: settings.size)
            let mine = try encode(call, crop, frame: t, context: context, what: "the image")
            let theirs = try encode(call, ExpressionEncoder.crop(source, box: box, size: settings.size), frame: t, context: context, what: "the source")
            guard mine.count == theirs.count else {
                throw OperatorError("plugin \"\(call.plugin)\" gave \(mine.count) features for the image but \(theirs.count) for the source")
            }
            let diff = zip(mine, theirs).map { $0 - $1 }
            let loss = diff.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(diff.count)
            return (["loss": .number(loss), "features": .tensor(Tensor(shape: [mine.count], scalars: mine))],
                    Saved(State(image: nil, difference: diff, box: box, crop: crop)))
        }
        let mine = ExpressionEncoder.encode(image, box: box, settings: settings)
        let theirs = ExpressionEncoder.encode(source, box: box, settings: settings)
        let diff = zip(mine.features, theirs.features).map { $0 - $1 }
        let loss = diff.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(d)
        return (["loss": .number(loss), "features": .tensor(Tensor(shape: [d], scalars: mine.features))],
                Saved(State(image: mine, difference: diff, box: box, crop: nil)))
    }

    public func vjp(_ cotangents: [String: Value], saved: Saved, inputs: Inputs, frame: Int?, context: RunContext) throws -> Gradients {
        let image = try inputs.tensor("image")
        guard let state = saved.contents as? State, let c = cotangents["loss"]?.number, c != 0 else {
            return Gradients(inputs: ["image": .tensor(Tensor(zeros: image.shape))])
        }
        let d = Float(state.difference.count)
        let g = state.difference.map { Float(c) * 2 * $0 / d }
        if let saved = state.image {
            return Gradients(inputs: ["image": .tensor(ExpressionEncoder.encodeVJP(saved, cotangent: g, settings: settings))])
        }
        // The plugin's gradient on the crop, pulled back through the crop onto the frame.
        guard let call, let crop = state.crop else { throw OperatorError("ExprLoss: the saved state has no crop for the plugin's backward pass") }
        let host = try call.host(context)
        let t = frame ?? 0
        var request = try call.request("vjp", frame: t, host: host)
        request.append(("cotangent", .array(g.map { .double(Double($0)) })))
        let n = settings.size
        let cropGradient = try host.call(call.plugin, request, files: [("image", crop.npyDataHWC())],
                                         what: "the expression gradient of frame \(t)") { _, output in
            try call.named { try ImageFile.read(output, height: n, width: n, channels: 3, range: nil) }
        }
        return Gradients(inputs: ["image": .tensor(ExpressionEncoder.cropVJP(cropGradient, box: state.box, height: image.shape[1], width: image.shape[2]))])
    }
}
