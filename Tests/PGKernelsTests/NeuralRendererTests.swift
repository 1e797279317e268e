import Foundation
import PGTensor
import Testing
@testable import PGKernels

@Suite("NeuralRendererNet")
struct NeuralRendererTests {
    /// Mixed kernels (so 3×3 layers run on planes padded for a 5×5 one) and all three activations.
    static let tiny = NeuralRendererNet.Configuration(inputChannels: 3, layers: [
        .init(channels: 4, kernelSize: 3, activation: .relu),
        .init(channels: 3, kernelSize: 5, activation: .identity),
        .init(channels: 3, kernelSize: 3, activation: .relu),
        .init(channels: 2, kernelSize: 1, activation: .sigmoid),
    ])

    /// The tiny network with random biases too (Kaiming leaves them zero) and rounded inputs.
    static func tinyNet(seed: UInt64) -> (NeuralRendererNet, [[Double]]) {
        var net = NeuralRendererNet(configuration: tiny, seed: seed)
        var rng = ConvTestRandom(seed: seed ^ 0xB1A5)
        var params: [[Double]] = []
        var tensors = net.parameters
        for i in tensors.indices {
            let values = i % 2 == 0 ? exact(float64(tensors[i].scalars)) : exact(rng.values(tensors[i].count, -0.2, 0.2))
            tensors[i] = Tensor(shape: tensors[i].shape, scalars: float32(values))
            params.append(values)
        }
        net.parameters = tensors
        return (net, params)
    }

    @Test("the default network is the paper code's: names, shapes, 147 843 parameters, ≈77 GFLOP at 512²")
    func defaultArchitecture() {
        let c = NeuralRendererNet.Configuration.portraitGen
        #expect(c.inputChannels == 32 && c.outputChannels == 3)
        #expect(c.layers.map(\.channels) == [128, 64, 32, 32, 32, 3])
        #expect(c.layers.map(\.kernelSize) == [3, 3, 3, 3, 3, 1])
        #expect(c.layers.map(\.activation) == [.relu, .relu, .relu, .relu, .relu, .sigmoid])
        #expect(c.parameterCount == 147_843)
        let net = NeuralRendererNet(seed: 1)
        #expect(net.parameterNames.prefix(4) == ["layer0.weight", "layer0.bias", "layer1.weight", "layer1.bias"])
        #expect(net.parameters[0].shape == [128, 32, 3, 3] && net.parameters[1].shape == [128])
        #expect(net.parameters[10].shape == [3, 32, 1, 1] && net.parameters[11].shape == [3])
        #expect(abs(c.forwardFLOPs(height: 512, width: 512) / 1e9 - 77.36) < 0.01)
    }

    @Test("seeded Kaiming initialisation: reproducible, N(0, 2/fan_in) before ReLU, zero biases")
    func initialisation() {
        let a = NeuralRendererNet(seed: 42), b = NeuralRendererNet(seed: 42), c = NeuralRendererNet(seed: 43)
        #expect(a == b)
        #expect(a.parameters[2] != c.parameters[2])
        let w = a.parameters[2].scalars.map(Double.init)            // layer1: 73 728 weights, fan_in 1152
        let mean = w.reduce(0, +) / Double(w.count)
        let std = (w.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(w.count)).squareRoot()
        #expect(abs(mean) < 0.002)
        #expect(abs(std / (2.0 / 1152).squareRoot() - 1) < 0.02, "std \(std)")
        let last = a.parameters[10].scalars.map(Double.init)        // sigmoid layer: gain 1, fan_in 32
        let lastStd = (last.map { $0 * $0 }.reduce(0, +) / Double(last.count)).squareRoot()
        #expect(lastStd > 0.5 * (1.0 / 32).squareRoot() && lastStd < 1.5 * (1.0 / 32).squareRoot())
        #expect(a.parameters.enumerated().allSatisfy { $0.offset % 2 == 0 || $0.element.scalars.allSatisfy { $0 == 0 } })
    }

    @Test("forward matches the chain of Float64 reference convolutions", arguments: [1, 2])
    func forward(threads: Int) {
        let seed: UInt64 = 301
        let (net, params) = Self.tinyNet(seed: seed)
        var rng = ConvTestRandom(seed: seed)
        let (h, w) = (6, 7)
        let input = exact(rng.values(3 * h * w))
        let ws = ConvWorkspace(threads: threads, bandBytes: 256)
        let features = Tensor(shape: [3, h, w], scalars: float32(input))
        let (rgb, _) = net.forward(features, workspace: ws)
        let reference = ConvReference.network(Self.tiny, parameters: params, input: input, height: h, width: w)
        #expect(rgb.shape == [2, h, w])
        let error = convMaxError(rgb.scalars, reference)
        #expect(error < 1e-5, "seed \(seed) threads \(threads): error \(error)")
        #expect(net(features, workspace: ws) == rgb, "inference and forward-for-VJP differ")
    }

    @Test("VJP of the input and every parameter matches Float64 central differences", arguments: [1, 2])
    func vjp(threads: Int) {
        let seed: UInt64 = 302 + UInt64(threads)
        let (net, params) = Self.tinyNet(seed: seed)
        var rng = ConvTestRandom(seed: seed)
        let (h, w) = (6, 5)
        let input = exact(rng.values(3 * h * w))
        let r = exact(rng.values(2 * h * w))
        let ws = ConvWorkspace(threads: threads, bandBytes: 256)
        let (_, saved) = net.forward(Tensor(shape: [3, h, w], scalars: float32(input)), workspace: ws)
        let (vFeatures, vParameters) = net.vjp(saved, vRGB: Tensor(shape: [2, h, w], scalars: float32(r)), workspace: ws)

        func loss(_ x: [Double], _ p: [[Double]]) -> Double {
            zip(r, ConvReference.network(Self.tiny, parameters: p, input: x, height: h, width: w)).reduce(0) { $0 + $1.0 * $1.1 }
        }
        let fdInput = input.indices.map { centralDifference({ loss($0, params) }, input, $0) }
        let e = convMaxError(vFeatures.scalars, fdInput)
        #expect(e < 1e-4, "seed \(seed): vFeatures error \(e)")
        for (k, name) in net.parameterNames.enumerated() {
            let fd = params[k].indices.map { i in
                centralDifference({ p in var all = params; all[k] = p; return loss(input, all) }, params[k], i)
            }
            let e = convMaxError(vParameters[k].scalars, fd)
            #expect(e < 1e-4, "seed \(seed): \(name) error \(e)")
            #expect(vParameters[k].shape == net.parameters[k].shape)
        }
    }

    @Test("saved activations go back to the workspace's pool and are reused")
    func pooling() {
        let (net, _) = Self.tinyNet(seed: 5)
        let ws = ConvWorkspace(threads: 2)
        let features = Tensor(repeating: 0.3, shape: [3, 9, 8])
        var saved: NeuralRendererNet.Saved? = net.forward(features, workspace: ws).saved
        let held = ws.pooledBytes
        saved = nil
        let returned = ws.pooledBytes
        #expect(returned > held)
        let (rgb, again) = net.forward(features, workspace: ws)
        #expect(ws.pooledBytes < returned)
        withExtendedLifetime(again) {}
        #expect(rgb == net(features, workspace: ws))
        _ = saved
    }

    @Test("parameters load by name and every mismatch is reported at once")
    func loading() throws {
        let net = NeuralRendererNet(configuration: Self.tiny, seed: 9)
        let named = net.byName(net.parameters)
        #expect(named.count == 8 && named["layer3.bias"] == net.parameters[7])
        #expect(net.namedParameters.map(\.name) == net.parameterNames)
        let loaded = try NeuralRendererNet(configuration: Self.tiny, parameters: named.merging(["extra": Tensor(zeros: [1])]) { a, _ in a })
        #expect(loaded == net)
        var broken = named
        broken["layer0.bias"] = nil
        broken["layer2.weight"] = Tensor(zeros: [3, 3, 1, 1])
        #expect {
            try NeuralRendererNet(configuration: Self.tiny, parameters: broken)
        } throws: { error in
            let text = "\(error)"
            return text.contains("layer0.bias [4] is missing") && text.contains("layer2.weight has shape [3, 3, 1, 1]")
        }
    }

    @Test("Adam fits a tiny renderer from a random feature image to a smooth target: L1 falls ≥10×")
    func fitsWithAdam() {
        let config = NeuralRendererNet.Configuration(inputChannels: 8, hiddenChannels: [16, 16])
        var net = NeuralRendererNet(configuration: config, seed: 2024)
        var rng = ConvTestRandom(seed: 77)
        let n = 16
        let features = Tensor(shape: [8, n, n], scalars: float32(rng.values(8 * n * n)))
        var target = Tensor(zeros: [3, n, n])
        for i in 0..<n {
            for j in 0..<n {
                let u = Double(j) / Double(n), v = Double(i) / Double(n)
                target[0, i, j] = Float(0.5 + 0.3 * sin(2 * .pi * u))
                target[1, i, j] = Float(0.5 + 0.3 * cos(2 * .pi * v))
                target[2, i, j] = Float(0.3 + 0.4 * u * v)
            }
        }
        let ws = ConvWorkspace(threads: 2)
        // Plain Adam (Kingma & Ba), bias-corrected, on every parameter.
        let lr: Float = 0.01, beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8
        var m = net.parameters.map { [Float](repeating: 0, count: $0.count) }
        var v = m
        let initial = Kernels.l1Loss(net(features, workspace: ws), target)
        var loss = initial
        var step = 0
        while step < 400 && loss > initial / 20 {
            step += 1
            let (rgb, saved) = net.forward(features, workspace: ws)
            loss = Kernels.l1Loss(rgb, target)
            let vRGB = Kernels.l1LossVJP(rgb, target, vLoss: 1).vPrediction
            let grads = net.vjp(saved, vRGB: vRGB, workspace: ws).vParameters
            var params = net.parameters
            let c1 = 1 - pow(beta1, Float(step)), c2 = 1 - pow(beta2, Float(step))
            for k in params.indices {
                for i in 0..<params[k].count {
                    let g = grads[k].scalars[i]
                    m[k][i] = beta1 * m[k][i] + (1 - beta1) * g
                    v[k][i] = beta2 * v[k][i] + (1 - beta2) * g * g
                    params[k].scalars[i] -= lr * (m[k][i] / c1) / ((v[k][i] / c2).squareRoot() + eps)
                }
            }
            net.parameters = params
        }
        let final = Kernels.l1Loss(net(features, workspace: ws), target)
        #expect(final * 10 <= initial, "L1 \(initial) → \(final) after \(step) Adam steps")
    }
}
