import PGTensor

/// Checks a differentiable node's VJP against central finite differences of its own forward.
///
/// The scalar probed is L = Σ r·output over the differentiable outputs, with r a seeded random
/// cotangent; the VJP of r must equal ∂L/∂x for every checked element x of the differentiable
/// inputs and parameter groups. Forwards run in Float32 (as the node does), so the step is
/// relative and tolerances are per node. Tests print `seed` with any mismatch.
public struct GradientCheck {
    public struct Mismatch: CustomStringConvertible, Sendable {
        public var name: String
        public var index: Int
        public var analytic: Double
        public var numeric: Double
        public var seed: UInt64
        public var description: String { "\(name)[\(index)]: VJP \(analytic) vs finite difference \(numeric) (seed \(seed))" }
    }

    public var seed: UInt64
    /// Elements checked per tensor (chosen at random when there are more).
    public var samples: Int
    /// Finite-difference step, relative to max(1, |x|).
    public var step: Double
    /// Pass when |a − n| ≤ absolute + relative·max(|a|, |n|).
    public var absolute: Double
    public var relative: Double

    public init(seed: UInt64 = 1, samples: Int = 12, step: Double = 1e-2, absolute: Double = 1e-3, relative: Double = 2e-2) {
        self.seed = seed
        self.samples = samples
        self.step = step
        self.absolute = absolute
        self.relative = relative
    }

    /// Checks `inputs` named in `wrt` (tensor values, or tensors inside record values as
    /// "port.key") and every parameter group. Returns the mismatches (empty: the VJP is right).
    public func check(_ op: any Differentiable, inputs: Inputs, wrt: [String], outputs: [String],
                      frame: Int? = nil, context: RunContext = .standalone()) throws -> [Mismatch] {
        var rng = SplitMix64(seed: seed)
        let (outs, saved) = try op.forward(inputs, frame: frame, context: context)
        var cotangents: [String: Value] = [:]
        func randomLike(_ v: Value) -> Value {
            switch v {
            case .tensor(let t):
                return .tensor(Tensor(shape: t.shape, scalars: (0..<t.count).map { _ in Float(Double(rng.next() % 2001) / 1000 - 1) }))
            case .number: return .number(Double(rng.next() % 2001) / 1000 - 1)
            case .record(let r):
                // Keys in sorted order: a dictionary's order changes from process to process, and
                // the draws must not, or the seed would not reproduce a mismatch.
                var out: [String: Value] = [:]
                for (k, v) in r.sorted(by: { $0.key < $1.key }) { out[k] = randomLike(v) }
                return .record(out)
            case .list(let l): return .list(l.map { randomLike($0) })
            case .string: return v
            }
        }
        for name in outputs { if let v = outs[name] { cotangents[name] = randomLike(v) } }
        let grads = try op.vjp(cotangents, saved: saved, inputs: inputs, frame: frame, context: context)

        func probe(_ i: Inputs) throws -> Double {
            let o = try op.forward(i, frame: frame, context: context).outputs
            var total = 0.0
            func dot(_ a: Value?, _ r: Value) {
                switch (a, r) {
                case (.tensor(let x)?, .tensor(let y)): for k in 0..<x.count { total += Double(x.scalars[k]) * Double(y.scalars[k]) }
                case (let x?, .number(let y)): total += (x.number ?? 0) * y
                case (.record(let x)?, .record(let y)): for (k, v) in y.sorted(by: { $0.key < $1.key }) { dot(x[k], v) }
                case (.list(let x)?, .list(let y)): for (a, b) in zip(x, y) { dot(a, b) }
                default: break
                }
            }
            for (name, r) in cotangents.sorted(by: { $0.key < $1.key }) { dot(o[name], r) }
            return total
        }

        var mismatches: [Mismatch] = []
        func compare(_ name: String, _ value: Tensor, analytic: Tensor?, set: (Tensor) -> Inputs) throws {
            let n = value.count
            var indices = Array(0..<n)
            if n > samples { indices = (0..<samples).map { _ in Int(rng.next() % UInt64(n)) } }
            for k in indices {
                let x = Double(value.scalars[k])
                let h = step * max(1, abs(x))
                var plus = value, minus = value
                plus.scalars[k] = Float(x + h)
                minus.scalars[k] = Float(x - h)
                let numeric = (try probe(set(plus)) - probe(set(minus))) / (Double(plus.scalars[k]) - Double(minus.scalars[k]))
                let a = Double(analytic?.scalars[k] ?? 0)
                if abs(a - numeric) > absolute + relative * max(abs(a), abs(numeric)) {
                    mismatches.append(Mismatch(name: name, index: k, analytic: a, numeric: numeric, seed: seed))
                }
            }
        }
        for name in wrt {
            let parts = name.split(separator: ".", maxSplits: 1).map(String.init)
            let port = parts[0]
            guard let v = inputs[port] else { continue }
            if parts.count == 2, let t = v[parts[1]]?.tensor {
                try compare(name, t, analytic: grads.inputs[port]?[parts[1]]?.tensor) { new in
                    var i = inputs
                    var r = v.record!
                    r[parts[1]] = .tensor(new)
                    i.values[port] = .record(r)
                    return i
                }
            } else if let t = v.tensor {
                try compare(name, t, analytic: grads.inputs[port]?.tensor) { new in
                    var i = inputs
                    i.values[port] = .tensor(new)
                    return i
                }
            }
        }
        for (group, t) in inputs.parameters.sorted(by: { $0.key < $1.key }) {
            try compare("parameter " + group, t, analytic: grads.parameters[group]) { new in
                var i = inputs
                i.parameters[group] = new
                return i
            }
        }
        return mismatches
    }
}
