import Foundation
import PGFlow
import PGTensor

/// A perceptual distance between the render and the target, d(I, I*), from a `perceptual` plugin
/// (LPIPS: `Nodes/plugins/lpips.json`), for the edit loss's LPIPS term (DESIGN §8). The network
/// runs in the plugin, which answers one `distance` request per frame with d and, in training, the
/// image gradient ∂d/∂I; the backward pass scales that gradient by the loss's cotangent. There is
/// no built-in network: LPIPS needs weights that cannot be downloaded here (`Nodes/PerceptualLoss.json`).
public struct PerceptualLoss: Differentiable {
    public static let type = "PerceptualLoss"
    public static let version = 1

    let call: PluginCall

    public init(params: Params) throws {
        call = try PluginCall(requiring: params)
    }

    /// The plugin's distance for frame t and, when asked, its gradient with respect to the image.
    func distance(_ inputs: Inputs, frame: Int?, context: RunContext, gradient: Bool) throws -> (Double, Tensor?) {
        let image = try inputs.rgb("image"), target = try inputs.rgb("target")
        guard target.shape == image.shape else { throw OperatorError("input 'target' is \(target.shape), image \(image.shape); they must match") }
        let host = try call.host(context)
        let t = frame ?? 0
        var request = try call.request("distance", frame: t, host: host)
        request.append(("gradient", .bool(gradient)))
        let (h, w) = (image.shape[1], image.shape[2])
        return try host.call(call.plugin, request, files: [("image", image.npyDataHWC()), ("target", target.npyDataHWC())],
                             what: "the perceptual distance of frame \(t)") { reply, output in
            try call.named {
                guard let d = reply["distance"]?.double, d.isFinite else {
                    throw OperatorError("its reply has no finite 'distance' (got \(reply["distance"]?.text ?? "none"))")
                }
                return (d, gradient ? try ImageFile.read(output, height: h, width: w, channels: 3, range: nil) : nil)
            }
        }
    }

    /// Outside training only the distance is asked for.
    public func evaluate(_ inputs: Inputs, frame: Int?, context: RunContext) throws -> [String: Value] {
        ["loss": .number(try distance(inputs, frame: frame, context: context, gradient: false).0)]
    }

    public func forward(_ inputs: Inputs, frame: Int?, context: RunContext) throws -> (outputs: [String: Value], saved: Saved) {
        let (d, g) = try distance(inputs, frame: frame, context: context, gradient: true)
        return (["loss": .number(d)], Saved(g!))
    }

    public func vjp(_ cotangents: [String: Value], saved: Saved, inputs: Inputs, frame: Int?, context: RunContext) throws -> Gradients {
        let g: Tensor = try saved.get()
        let c = Float(cotangents["loss"]?.number ?? 0)
        return Gradients(inputs: ["image": .tensor(c == 1 ? g : g * c)])
    }
}
