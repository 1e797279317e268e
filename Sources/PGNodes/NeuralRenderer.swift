import Foundation
import PGFlow
import PGKernels
import PGTensor
import Synchronization

/// The Neural Renderer 𝒰 of PortraitGen Eq. 9: a small CNN from the splatted feature image I_F
/// to RGB (see `Nodes/NeuralRenderer.json`). Its weights are the node's trainable parameter
/// groups, one per tensor (`layer0.weight`, `layer0.bias`, …), so an optimize stage can give the
/// whole renderer one learning rate ("renderer") or single layers their own ("renderer.layer5.weight").
public struct NeuralRenderer: Trainable {
    public static let type = "NeuralRenderer"
    public static let version = 1

    let configuration: NeuralRendererNet.Configuration
    let seed: UInt64
    let weights: URL?
    let workspaces = ConvWorkspaces()

    public init(params: Params) throws {
        let hidden = try params.ints("hidden")
        guard hidden.allSatisfy({ $0 >= 1 }) else { throw OperatorError("param 'hidden' widths should be positive, got \(hidden)") }
        /// One value per hidden layer: a list of that length, or a single value for all of them.
        func perLayer<T>(_ name: String, _ values: [T]) throws -> [T] {
            if values.count == 1 { return Array(repeating: values[0], count: hidden.count) }
            guard values.count == hidden.count else {
                throw OperatorError("param '\(name)' has \(values.count) values for \(hidden.count) hidden layers; give one, or one per layer")
            }
            return values
        }
        func activation(_ name: String, _ s: String) throws -> Activation {
            guard let a = Activation(rawValue: s) else { throw OperatorError("param '\(name)' should be identity, relu or sigmoid, got \"\(s)\"") }
            return a
        }
        let kernels = try perLayer("kernel_size", try params.ints("kernel_size"))
        let activations = try perLayer("activation", try params.strings("activation")).map { try activation("activation", $0) }
        let outputKernel = try params.int("output_kernel_size")
        for (name, k) in kernels.map({ ("kernel_size", $0) }) + [("output_kernel_size", outputKernel)] where k % 2 == 0 {
            throw OperatorError("param '\(name)' should be odd (padding keeps the image size), got \(k)")
        }
        let layers = hidden.indices.map { NeuralRendererNet.Layer(channels: hidden[$0], kernelSize: kernels[$0], activation: activations[$0]) }
        configuration = .init(inputChannels: try params.int("channels"),
                              layers: layers + [NeuralRendererNet.Layer(channels: try params.int("output_channels"), kernelSize: outputKernel,
                                                                        activation: try activation("output_activation", try params.string("output_activation")))])
        seed = UInt64(try params.int("seed"))
        weights = params.has("weights") ? try params.url("weights") : nil
    }

    /// Seeded Kaiming initialisation, or the tensors of the `weights` NPZ (e.g. an optimize
    /// stage's `export`), checked against the configured architecture.
    public func initialParameters(_ inputs: Inputs, context: RunContext) throws -> [String: Tensor] {
        guard let weights else {
            let net = NeuralRendererNet(configuration: configuration, seed: seed)
            return net.byName(net.parameters)
        }
        let named: [String: Tensor]
        do { named = try NPZ.read(weights) } catch { throw OperatorError("param 'weights': \(error)") }
        do {
            let net = try NeuralRendererNet(configuration: configuration, parameters: named)
            return net.byName(net.parameters)
        } catch let e as NeuralRendererNet.ParameterError {
            throw OperatorError("param 'weights': \(weights.path) does not fit the configured renderer: "
                                + e.problems.joined(separator: "; "))
        }
    }

    /// The network with the current parameter values.
    func network(_ inputs: Inputs) throws -> NeuralRendererNet {
        do {
            return try NeuralRendererNet(configuration: configuration, parameters: inputs.parameters)
        } catch let e as NeuralRendererNet.ParameterError {
            throw OperatorError("renderer parameters do not fit the configuration: " + e.problems.joined(separator: "; "))
        }
    }

    func features(_ inputs: Inputs) throws -> Tensor {
        let f = try inputs.tensor("features")
        guard f.rank == 3, f.shape[0] == configuration.inputChannels else {
            throw OperatorError("input 'features' should be [\(configuration.inputChannels), H, W] (param 'channels'), got \(f.shape)")
        }
        return f
    }

    public func forward(_ inputs: Inputs, frame: Int?, context: RunContext) throws -> (outputs: [String: Value], saved: Saved) {
        let net = try network(inputs)
        let (rgb, saved) = net.forward(try features(inputs), workspace: workspaces.for(context))
        return (["rgb": .tensor(rgb)], Saved(saved))
    }

    /// Rendering without a VJP to follow keeps no activations (hundreds of MB at 512²).
    public func evaluate(_ inputs: Inputs, frame: Int?, context: RunContext) throws -> [String: Value] {
        ["rgb": .tensor(try network(inputs)(try features(inputs), workspace: workspaces.for(context)))]
    }

    public func vjp(_ cotangents: [String: Value], saved: Saved, inputs: Inputs, frame: Int?,
                    context: RunContext) throws -> Gradients {
        let s: NeuralRendererNet.Saved = try saved.get()
        let net = try network(inputs)
        let shape = [configuration.outputChannels, s.height, s.width]
        let v: Tensor
        switch cotangents["rgb"] {
        case nil: v = Tensor(zeros: shape)
        case .some(let value):
            guard let t = value.tensor, t.shape == shape else {
                throw OperatorError("cotangent for 'rgb' should be a tensor \(shape), got \(value.summary)")
            }
            v = t
        }
        let (vFeatures, vParameters) = net.vjp(s, vRGB: v, workspace: workspaces.for(context))
        return Gradients(inputs: ["features": .tensor(vFeatures)], parameters: net.byName(vParameters))
    }
}

/// One convolution workspace per node and thread count, so the activation planes a training loop
/// borrows are allocated once per run, not once per frame.
final class ConvWorkspaces: Sendable {
    private let byThreads = Mutex<[Int: ConvWorkspace]>([:])

    func `for`(_ context: RunContext) -> ConvWorkspace {
        let threads = max(1, context.threads)
        return byThreads.withLock { all in
            if let ws = all[threads] { return ws }
            let ws = ConvWorkspace(threads: threads)
            all[threads] = ws
            return ws
        }
    }
}
