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
            if bias != 0 {
                convLanes(p, count) { $0 + bias } tail: { $0 + bias }
            }
        case .relu:
            convLanes(p, count) { v in
                let s = v + bias
                return s.replacing(with: 0, where: s .< 0)
            } tail: { max($0 + bias, 0) }
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
            convLanes(v, y, count) { g, out in g.replacing(with: 0, where: out .<= 0) }
                tail: { g, out in out > 0 ? g : 0 }
        case .sigmoid:
            convLanes(v, y, count) { g, out in g * out * (1 - out) } tail: { g, out in g * out * (1 - out) }
        }
    }
}

/// Eight floats at a time (the compiler's loop vectoriser gives up on these selects), then a
/// scalar tail: p[i] = lane(p[i]).
typealias ConvLanes = SIMD8<Float>

@inline(__always)
func convLanes(_ p: UnsafeMutablePointer<Float>, _ count: Int,
               _ lane: (ConvLanes) -> ConvLanes, tail: (Float) -> Float) {
    let raw = UnsafeMutableRawPointer(p)
    var i = 0
    while i + 8 <= count {
        let v = raw.loadUnaligned(fromByteOffset: i * 4, as: ConvLanes.self)
        raw.storeBytes(of: lane(v), toByteOffset: i * 4, as: ConvLanes.self)
        i += 8
    }
    while i < count {
        p[i] = tail(p[i])
        i += 1
    }
}

/// p[i] = lane(p[i], q[i]).
@inline(__always)
func convLanes(_ p: UnsafeMutablePointer<Float>, _ q: UnsafePointer<Float>, _ count: Int,
               _ lane: (ConvLanes, ConvLanes) -> ConvLanes, tail: (Float, Float) -> Float) {
    let raw = UnsafeMutableRawPointer(p), rawQ = UnsafeRawPointer(q)
    var i = 0
    while i + 8 <= count {
        let v = raw.loadUnaligned(fromByteOffset: i * 4, as: ConvLanes.self)
        let w = rawQ.loadUnaligned(fromByteOffset: i * 4, as: ConvLanes.self)
        raw.storeBytes(of: lane(v, w), toByteOffset: i * 4, as: ConvLanes.self)
        i += 8
    }
    while i < count {
        p[i] = tail(p[i], q[i])
        i += 1
    }
}

/// Σ p[i] in Float, eight lanes at a time.
@inline(__always)
func convLaneSum(_ p: UnsafePointer<Float>, _ count: Int) -> Float {
    let raw = UnsafeRawPointer(p)
    var acc = ConvLanes(repeating: 0)
    var i = 0
    while i + 8 <= count {
        acc += raw.loadUnaligned(fromByteOffset: i * 4, as: ConvLanes.self)
        i += 8
    }
    var s = acc.sum()
    while i < count {
        s += p[i]
        i += 1
    }
    return s
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
