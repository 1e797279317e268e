import PGTensor

extension Value {
    /// Cotangent accumulation at fan-out: elementwise sum of two values of the same layout.
    public static func + (a: Value, b: Value) -> Value {
        switch (a, b) {
        case (.tensor(let x), .tensor(let y)): return .tensor(x + y)
        case (.number(let x), .number(let y)): return .number(x + y)
        case (.tensor(let x), .number(let y)) where x.count == 1: return .tensor(Tensor(shape: x.shape, scalars: [x.scalars[0] + Float(y)]))
        case (.number(let x), .tensor(let y)) where y.count == 1: return .tensor(Tensor(shape: y.shape, scalars: [Float(x) + y.scalars[0]]))
        case (.list(let x), .list(let y)) where x.count == y.count: return .list(zip(x, y).map { $0 + $1 })
        case (.record(let x), .record(let y)): return .record(x.merging(y) { $0 + $1 })
        default: preconditionFailure("cannot add cotangents \(a.summary) and \(b.summary)")
        }
    }
}

extension Tensor {
    public static func + (a: Tensor, b: Tensor) -> Tensor {
        precondition(a.shape == b.shape, "adding tensors of shapes \(a.shape) and \(b.shape)")
        var out = a
        out.withUnsafeMutableBufferPointer { o in
            b.withUnsafeBufferPointer { bb in
                for i in 0..<o.count { o[i] += bb[i] }
            }
        }
        return out
    }

    public static func * (a: Tensor, s: Float) -> Tensor {
        var out = a
        out.withUnsafeMutableBufferPointer { o in for i in 0..<o.count { o[i] *= s } }
        return out
    }
}
