import Foundation
import PGTensor

/// The Neural Renderer 𝒰 of Eq. 9 (PortraitGen §3.2.2): a small CNN that turns the splatted
/// feature image I_F [C, H, W] into the RGB image I = 𝒰(I_F) [3, H, W] of the same size.
///
/// The default (`Configuration.portraitGen`) is the paper code's network: five 3×3 convolutions
/// with ReLU, 32→128→64→32→32→32, padding 1, then a 1×1 convolution to 3 channels and a sigmoid —
/// 147 843 parameters and about 77 GFLOP per 512² frame. Widths, kernel sizes and activations are
/// configurable. Parameters are a flat list of named tensors (`layer0.weight` [Cout, Cin, k, k],
/// `layer0.bias` [Cout], `layer1.weight`, …) ready for NPZ.
///
/// Every layer is a `Kernels.conv2d` on zero-padded planes shared by the whole stack, so a layer's
/// output is the next one's input without any copy, and only the network's input and output are
/// converted to and from plain [C, H, W].
public struct NeuralRendererNet: Sendable, Equatable {
    public struct Layer: Sendable, Hashable, Codable {
        /// Output channels.
        public var channels: Int
        /// Odd; padding is (k − 1) / 2.
        public var kernelSize: Int
        public var activation: Activation

        public init(channels: Int, kernelSize: Int, activation: Activation) {
            self.channels = channels
            self.kernelSize = kernelSize
            self.activation = activation
        }
    }

    public struct Configuration: Sendable, Hashable, Codable {
        /// Channels of the feature image I_F.
        public var inputChannels: Int
        public var layers: [Layer]

        public init(inputChannels: Int, layers: [Layer]) {
            self.inputChannels = inputChannels
            self.layers = layers
        }

        /// Hidden k×k layers with one activation, then an output layer.
        public init(inputChannels: Int = 32, hiddenChannels: [Int] = [128, 64, 32, 32, 32],
                    hiddenKernelSize: Int = 3, hiddenActivation: Activation = .relu,
                    outputChannels: Int = 3, outputKernelSize: Int = 1, outputActivation: Activation = .sigmoid) {
            self.inputChannels = inputChannels
            layers = hiddenChannels.map { Layer(channels: $0, kernelSize: hiddenKernelSize, activation: hiddenActivation) }
                + [Layer(channels: outputChannels, kernelSize: outputKernelSize, activation: outputActivation)]
        }

        /// The paper code's renderer: 3×3 conv + ReLU 32→128→64→32→32→32, 1×1 conv to 3, sigmoid.
        public static let portraitGen = Configuration()

        public var outputChannels: Int { layers.last?.channels ?? inputChannels }

        /// Input channels of layer i.
        public func channelsIn(_ i: Int) -> Int { i == 0 ? inputChannels : layers[i - 1].channels }

        /// Names and shapes of the parameters, in the order of `NeuralRendererNet.parameters`.
        public var parameterShapes: [(name: String, shape: [Int])] {
            layers.enumerated().flatMap { i, layer in
                [("layer\(i).weight", [layer.channels, channelsIn(i), layer.kernelSize, layer.kernelSize]),
                 ("layer\(i).bias", [layer.channels])]
            }
        }

        public var parameterCount: Int {
            parameterShapes.reduce(0) { $0 + $1.shape.reduce(1, *) }
        }

        /// Floating-point operations of one forward pass at this size; the VJP does twice this.
        public func forwardFLOPs(height: Int, width: Int) -> Double {
            layers.enumerated().reduce(0) { sum, item in
                let (i, l) = item
                return sum + Conv2DShape(channelsIn: channelsIn(i), channelsOut: l.channels, kernelSize: l.kernelSize,
                                         height: height, width: width).flops
            }
        }

        /// The padding every activation plane carries: enough for the widest kernel.
        var pad: Int { layers.map { ($0.kernelSize - 1) / 2 }.max() ?? 0 }

        func check() {
            precondition(inputChannels > 0, "NeuralRendererNet: inputChannels must be positive")
            precondition(!layers.isEmpty, "NeuralRendererNet: at least one layer")
            for (i, l) in layers.enumerated() {
                precondition(l.channels > 0, "NeuralRendererNet: layer \(i) has \(l.channels) channels")
                precondition(l.kernelSize > 0 && l.kernelSize % 2 == 1,
                             "NeuralRendererNet: layer \(i) kernel size \(l.kernelSize) must be odd")
            }
        }
    }

    /// A parameter file that does not fit the configuration; lists every problem at once.
    public struct ParameterError: Error, CustomStringConvertible, Sendable {
        public var problems: [String]
        public var description: String {
            "The neural renderer's parameters do not fit its configuration: " + problems.joined(separator: "; ") + "."
        }
    }

    public let configuration: Configuration
    /// `layer0.weight`, `layer0.bias`, `layer1.weight`, … with the shapes of `parameterShapes`.
    public var parameters: [Tensor] {
        willSet {
            precondition(newValue.map(\.shape) == configuration.parameterShapes.map(\.shape),
                         "NeuralRendererNet: parameters must keep the shapes \(configuration.parameterShapes.map(\.shape))")
        }
    }

    public var parameterNames: [String] { configuration.parameterShapes.map(\.name) }

    /// The parameters by name, e.g. for `NPZ.write`.
    public var namedParameters: [(name: String, tensor: Tensor)] {
        Array(zip(parameterNames, parameters)).map { (name: $0.0, tensor: $0.1) }
    }

    /// Tensors aligned with `parameters` (the parameters themselves, or `vjp`'s gradients) keyed
    /// by parameter name, as parameter groups and their gradients travel through the engine.
    public func byName(_ tensors: [Tensor]) -> [String: Tensor] {
        precondition(tensors.count == parameters.count, "NeuralRendererNet.byName: \(tensors.count) tensors for \(parameters.count) parameters")
        return Dictionary(uniqueKeysWithValues: zip(parameterNames, tensors))
    }

    /// Seeded Kaiming-normal initialisation: weights ~ N(0, gain² / fan_in) with fan_in = Cin·k²
    /// and gain √2 before a ReLU, 1 otherwise; biases zero. The same seed gives the same weights
    /// on every machine (SplitMix64 and Box–Muller in Double).
    public init(configuration: Configuration = .portraitGen, seed: UInt64) {
        configuration.check()
        self.configuration = configuration
        var random = NormalDraws(seed: seed)
        var tensors: [Tensor] = []
        for (i, layer) in configuration.layers.enumerated() {
            let fanIn = configuration.channelsIn(i) * layer.kernelSize * layer.kernelSize
            let gain = layer.activation == .relu ? 2.0.squareRoot() : 1.0
            let std = gain / Double(fanIn).squareRoot()
            let shape = [layer.channels, configuration.channelsIn(i), layer.kernelSize, layer.kernelSize]
            let count = shape.reduce(1, *)
            tensors.append(Tensor(shape: shape, scalars: (0..<count).map { _ in Float(std * random.next()) }))
            tensors.append(Tensor(zeros: [layer.channels]))
        }
        parameters = tensors
    }

    /// Parameters by name (e.g. from `NPZ.read`); names the configuration does not use are ignored.
    public init(configuration: Configuration, parameters named: [String: Tensor]) throws {
        configuration.check()
        self.configuration = configuration
        var problems: [String] = []
        var tensors: [Tensor] = []
        for (name, shape) in configuration.parameterShapes {
            guard let t = named[name] else {
                problems.append("\(name) \(shape) is missing")
                tensors.append(Tensor(zeros: shape))
                continue
            }
            if t.shape != shape { problems.append("\(name) has shape \(t.shape), expected \(shape)") }
            tensors.append(t.shape == shape ? t : Tensor(zeros: shape))
        }
        if !problems.isEmpty { throw ParameterError(problems: problems) }
        parameters = tensors
    }
}

// MARK: - Forward and VJP

extension NeuralRendererNet {
    /// What `forward` keeps for `vjp`: the zero-padded input planes and every layer's output planes
    /// (the VJP needs each layer's input for its weight gradient and its output for the activation's
    /// derivative; the one is the other's predecessor). About (C_in + Σ widths)·(H+2)(W+2)·4 bytes:
    /// 340 MB at 512² for the default network. Releasing it hands the planes back to the
    /// workspace's pool, so a training loop allocates them once.
    public final class Saved: @unchecked Sendable {     // immutable after init
        let configuration: Configuration
        let geometry: PlaneGeometry
        let planes: [ConvPlanes]

        init(configuration: Configuration, geometry: PlaneGeometry, planes: [ConvPlanes]) {
            self.configuration = configuration
            self.geometry = geometry
            self.planes = planes
        }

        public var height: Int { geometry.height }
        public var width: Int { geometry.width }

        deinit { for p in planes { p.recycle() } }
    }

    /// I = 𝒰(I_F) for inference: nothing is saved, planes go back to the pool layer by layer.
    public func callAsFunction(_ features: Tensor, workspace: ConvWorkspace = .shared) -> Tensor {
        run(features, saving: false, workspace: workspace).rgb
    }

    /// I = 𝒰(I_F), keeping what `vjp` needs.
    public func forward(_ features: Tensor, workspace: ConvWorkspace = .shared) -> (rgb: Tensor, saved: Saved) {
        let r = run(features, saving: true, workspace: workspace)
        return (r.rgb, r.saved!)
    }

    /// From the cotangent of the output, the cotangent of the feature image and of every parameter
    /// (aligned with `parameters`). Uses this network's current weights: call it before an
    /// optimizer step changes them.
    public func vjp(_ saved: Saved, vRGB: Tensor, workspace ws: ConvWorkspace = .shared)
        -> (vFeatures: Tensor, vParameters: [Tensor]) {
        let c = configuration
        precondition(saved.configuration == c, "NeuralRendererNet.vjp: saved by a network of another configuration")
        let g = saved.geometry
        precondition(vRGB.shape == [c.outputChannels, g.height, g.width],
                     "NeuralRendererNet.vjp: vRGB \(vRGB.shape), expected \([c.outputChannels, g.height, g.width])")
        let shapes = c.parameterShapes.map(\.shape)
        let counts = shapes.map { $0.reduce(1, *) }
        let offsets = counts.reduce(into: [0]) { $0.append($0.last! + $1) }
        var vFeatures = Tensor(zeros: [c.inputChannels, g.height, g.width])
        var vFlat = [Float](repeating: 0, count: offsets.last!)
        ws.exclusive {
            let weights = packWeights(ws)
            vFlat.withUnsafeMutableBufferPointer { vParams in
                var vY = ws.borrowPlanes(g, channels: c.outputChannels)
                vRGB.withUnsafeBufferPointer { vY.load($0.baseAddress!) }
                let last = c.layers.count - 1
                // Pads of both are zero, so the derivative can run over whole planes.
                c.layers[last].activation.backward(vY.pointer, output: saved.planes[last + 1].pointer,
                                                   count: c.outputChannels * g.planeStride)
                for l in stride(from: last, through: 0, by: -1) {
                    let layer = c.layers[l]
                    let vX = ws.borrowPlanes(g, channels: c.channelsIn(l))
                    let epilogue: ConvEpilogue = l > 0
                        ? .cotangent(c.layers[l - 1].activation, output: saved.planes[l].pointer)
                        : .cotangent(.identity, output: nil)
                    Kernels.convPlanesVJP(saved.planes[l].pointer, vPreactivation: vY.pointer,
                                          tapWeight: weights + offsets[2 * l],
                                          vWeight: vParams.baseAddress! + offsets[2 * l],
                                          vBias: vParams.baseAddress! + offsets[2 * l + 1],
                                          vInput: vX.pointer, vInputEpilogue: epilogue,
                                          channelsIn: c.channelsIn(l), channelsOut: layer.channels,
                                          kernelSize: layer.kernelSize, geometry: g, workspace: ws)
                    vY.recycle()
                    vY = vX
                }
                vFeatures.withUnsafeMutableBufferPointer { vY.store($0.baseAddress!) }
                vY.recycle()
            }
        }
        let vParameters = shapes.indices.map {
            Tensor(shape: shapes[$0], scalars: Array(vFlat[offsets[$0]..<offsets[$0 + 1]]))
        }
        return (vFeatures, vParameters)
    }

    private func run(_ features: Tensor, saving: Bool, workspace ws: ConvWorkspace) -> (rgb: Tensor, saved: Saved?) {
        let c = configuration
        precondition(features.rank == 3 && features.shape[0] == c.inputChannels && features.shape[1] > 0
                     && features.shape[2] > 0,
                     "NeuralRendererNet: features must be [\(c.inputChannels), H, W], got \(features.shape)")
        let g = PlaneGeometry(height: features.shape[1], width: features.shape[2], pad: c.pad)
        var rgb = Tensor(zeros: [c.outputChannels, g.height, g.width])
        let planes: [ConvPlanes] = ws.exclusive {
            let weights = packWeights(ws)
            let offsets = c.parameterShapes.map { $0.shape.reduce(1, *) }.reduce(into: [0]) { $0.append($0.last! + $1) }
            var current = ws.borrowPlanes(g, channels: c.inputChannels)
            features.withUnsafeBufferPointer { current.load($0.baseAddress!) }
            var kept = saving ? [current] : []
            for (l, layer) in c.layers.enumerated() {
                let output = ws.borrowPlanes(g, channels: layer.channels)
                Kernels.convPlanes(current.pointer, tapWeight: weights + offsets[2 * l], output: output.pointer,
                                   channelsIn: c.channelsIn(l), channelsOut: layer.channels,
                                   kernelSize: layer.kernelSize, geometry: g,
                                   epilogue: .forward(layer.activation, bias: weights + offsets[2 * l + 1]),
                                   workspace: ws)
                if saving { kept.append(output) } else { current.recycle() }
                current = output
            }
            rgb.withUnsafeMutableBufferPointer { current.store($0.baseAddress!) }
            if !saving { current.recycle() }
            return kept
        }
        return (rgb, saving ? Saved(configuration: c, geometry: g, planes: planes) : nil)
    }

    /// All parameters copied into one workspace buffer (150k floats: nothing next to a frame),
    /// weights tap-major [k², Cout, Cin] as the kernels want them, at the offsets of the flat
    /// parameter list; the Tensors keep their value semantics.
    private func packWeights(_ ws: ConvWorkspace) -> UnsafePointer<Float> {
        let c = configuration
        let total = parameters.reduce(0) { $0 + $1.count }
        ws.packedWeights.reserve(total)
        var p = ws.packedWeights.pointer
        for (l, layer) in c.layers.enumerated() {
            parameters[2 * l].withUnsafeBufferPointer {
                Kernels.convTapMajor($0.baseAddress!, into: p, channelsIn: c.channelsIn(l),
                                     channelsOut: layer.channels, kernelSize: layer.kernelSize)
            }
            p += parameters[2 * l].count
            parameters[2 * l + 1].withUnsafeBufferPointer { p.update(from: $0.baseAddress!, count: $0.count) }
            p += parameters[2 * l + 1].count
        }
        return UnsafePointer(ws.packedWeights.pointer)
    }
}
