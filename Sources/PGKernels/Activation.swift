import Foundation
import PGTensor

/// Pointwise activation after a convolution. Every derivative is computed from the activation's
/// *output*, so a forward pass only has to keep the layer outputs for the VJP.
public enum Activation: String, Sendable, Hashable, CaseIterable, Codable {
    case identity
    case relu
    /// 1 / (1 + e^(−x)); the NeuralRenderer's last layer, mapping features to 0…1 RGB.
    case sigmoid
}

extension Activation {
    /// p[i] = act(p[i] + bias) for `count` contiguous floats.
    @inline(__always)
    func apply(_ p: UnsafeMutablePointer<Float>, count: Int, bias: Float) {
        switch self {
        case .identity:
            if bias != 0 { for i in 0..<count { p[i] += bias } }
        case .relu:
            for i in 0..<count { p[i] = max(p[i] + bias, 0) }
        case .sigmoid:
            for i in 0..<count { p[i] = stableSigmoid(p[i] + bias) }
        }
    }

    /// v[i] *= act'(·) where y[i] is the activation's output: the cotangent of the pre-activation.
    @inline(__always)
    func backward(_ v: UnsafeMutablePointer<Float>, output y: UnsafePointer<Float>, count: Int) {
        switch self {
        case .identity:
            break
        case .relu:
            for i in 0..<count { v[i] = y[i] > 0 ? v[i] : 0 }
        case .sigmoid:
            for i in 0..<count { v[i] *= y[i] * (1 - y[i]) }
        }
    }
}

/// Sigmoid without overflow of e^(−x) for large negative x.
@inline(__always)
func stableSigmoid(_ x: Float) -> Float {
    if x >= 0 { return 1 / (1 + expf(-x)) }
    let e = expf(x)
    return e / (1 + e)
}

extension Kernels {
    /// y = act(x).
    public static func activation(
        _ activation: Activation,
        _ x: UnsafeBufferPointer<Float>,                // [N]
        output y: UnsafeMutableBufferPointer<Float>     // [N]
    ) {
        precondition(x.count == y.count, "activation: input has \(x.count) values, output \(y.count)")
        guard let yp = y.baseAddress, let xp = x.baseAddress else { return }
        yp.update(from: xp, count: x.count)
        activation.apply(yp, count: x.count, bias: 0)
    }

    /// vX = vY · act'(x), from the saved output y = act(x).
    public static func activationVJP(
        _ activation: Activation,
        output y: UnsafeBufferPointer<Float>,           // [N]
        vOutput: UnsafeBufferPointer<Float>,            // [N]
        vInput: UnsafeMutableBufferPointer<Float>       // [N]
    ) {
        precondition(y.count == vOutput.count && y.count == vInput.count,
                     "activationVJP: output \(y.count), vOutput \(vOutput.count), vInput \(vInput.count) values")
        guard let vp = vInput.baseAddress, let yp = y.baseAddress, let gp = vOutput.baseAddress else { return }
        vp.update(from: gp, count: y.count)
        activation.backward(vp, output: yp, count: y.count)
    }

    public static func relu(_ x: Tensor) -> Tensor { activation(.relu, x) }
    public static func reluVJP(output y: Tensor, vOutput: Tensor) -> Tensor { activationVJP(.relu, output: y, vOutput: vOutput) }
    public static func sigmoid(_ x: Tensor) -> Tensor { activation(.sigmoid, x) }
    public static func sigmoidVJP(output y: Tensor, vOutput: Tensor) -> Tensor { activationVJP(.sigmoid, output: y, vOutput: vOutput) }

    /// y = act(x), any shape.
    public static func activation(_ activation: Activation, _ x: Tensor) -> Tensor {
        var y = x
        y.withUnsafeMutableBufferPointer { b in
            if let p = b.baseAddress { activation.apply(p, count: b.count, bias: 0) }
        }
        return y
    }

    /// vX from the saved output y and the output cotangent vY (same shape).
    public static func activationVJP(_ activation: Activation, output y: Tensor, vOutput: Tensor) -> Tensor {
        precondition(y.shape == vOutput.shape, "activationVJP: output \(y.shape) but vOutput \(vOutput.shape)")
        var v = vOutput
        y.withUnsafeBufferPointer { yb in
            v.withUnsafeMutableBufferPointer { vb in
                if let vp = vb.baseAddress { activation.backward(vp, output: yb.baseAddress!, count: vb.count) }
            }
        }
        return v
    }
}
