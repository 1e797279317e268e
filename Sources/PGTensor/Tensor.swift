/// A dense Float32 array with a shape, stored contiguously in row-major order.
///
/// Images are channels-first `[C, H, W]`. Storage is a Swift `Array`, so copies share memory
/// until one of them is written (copy-on-write); hot loops reach the raw buffer through
/// `withUnsafeBufferPointer` / `withUnsafeMutableBufferPointer`.
public struct Tensor: Sendable, Equatable, Hashable {
    public private(set) var shape: [Int]
    public var scalars: [Float]

    public init(shape: [Int], scalars: [Float]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in shape \(shape)")
        precondition(shape.reduce(1, *) == scalars.count,
                     "shape \(shape) needs \(shape.reduce(1, *)) scalars, got \(scalars.count)")
        self.shape = shape
        self.scalars = scalars
    }

    public init(zeros shape: [Int]) {
        self.init(shape: shape, scalars: [Float](repeating: 0, count: shape.reduce(1, *)))
    }

    /// A tensor whose every scalar `body` writes (a VJP's output, say): no zero-fill pass over
    /// memory that is about to be overwritten.
    public init(shape: [Int], initializingWith body: (UnsafeMutableBufferPointer<Float>) throws -> Void) rethrows {
        let n = shape.reduce(1, *)
        let scalars = try [Float](unsafeUninitializedCapacity: n) { buffer, count in
            try body(UnsafeMutableBufferPointer(rebasing: buffer[0..<n]))
            count = n
        }
        self.init(shape: shape, scalars: scalars)
    }

    public init(repeating value: Float, shape: [Int]) {
        self.init(shape: shape, scalars: [Float](repeating: value, count: shape.reduce(1, *)))
    }

    public init(scalar: Float) { self.init(shape: [], scalars: [scalar]) }

    public var count: Int { scalars.count }
    public var rank: Int { shape.count }

    /// The single value of a rank-0 (or one-element) tensor.
    public var scalar: Float {
        precondition(scalars.count == 1, "tensor of shape \(shape) is not a scalar")
        return scalars[0]
    }

    /// Same scalars, new shape with the same element count.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        Tensor(shape: newShape, scalars: scalars)
    }

    /// Row-major strides in elements.
    public var strides: [Int] {
        var s = [Int](repeating: 1, count: shape.count)
        var acc = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) { s[i] = acc; acc *= shape[i] }
        return s
    }

    public subscript(index: Int...) -> Float {
        get { scalars[offset(index)] }
        set { scalars[offset(index)] = newValue }
    }

    private func offset(_ index: [Int]) -> Int {
        precondition(index.count == shape.count, "index \(index) for shape \(shape)")
        var o = 0
        for (i, d) in index.enumerated() {
            precondition(d >= 0 && d < shape[i], "index \(index) out of bounds for shape \(shape)")
            o = o * shape[i] + d
        }
        return o
    }

    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try scalars.withUnsafeBufferPointer(body)
    }

    public mutating func withUnsafeMutableBufferPointer<R>(
        _ body: (inout UnsafeMutableBufferPointer<Float>) throws -> R
    ) rethrows -> R {
        try scalars.withUnsafeMutableBufferPointer(body)
    }

    /// √Σx², summed in Double over eight lanes (a serial Float sum over a 4M-element gradient
    /// loses digits, and its chain of dependent adds took 3 ms).
    public var l2Norm: Double {
        withUnsafeBufferPointer { x in
            var lanes = SIMD8<Double>()
            var i = 0
            while i + 8 <= x.count {
                let v = SIMD8<Double>(SIMD8<Float>(x[i..<(i + 8)]))
                lanes.addProduct(v, v)
                i += 8
            }
            var sum = lanes.sum()
            while i < x.count { sum += Double(x[i]) * Double(x[i]); i += 1 }
            return sum.squareRoot()
        }
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let head = scalars.prefix(6).map { String($0) }.joined(separator: ", ")
        return "Tensor\(shape)[\(head)\(scalars.count > 6 ? ", …" : "")]"
    }
}
