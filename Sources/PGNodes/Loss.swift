import Foundation
import PGFlow
import PGKernels
import PGTensor

/// The weighted training objective of PortraitGen §3.2.3 (Eq. 10–13) and anything an edit adds:
/// image terms between the rendered RGB and the target, the stable term on the feature image's
/// first three channels, the mask term on the rendered alpha, a probe Σ image·W, and weighted
/// scalar inputs (regularisers, expression loss). See `Nodes/Loss.json`.
public struct Loss: Differentiable {
    public static let type = "Loss"
    public static let version = 1

    /// An image term: which input is compared with which, and how.
    enum ImageTerm: String, CaseIterable {
        case l1, dssim, mse, huber, stable, mask, probe
        /// The (prediction, target) input ports of the term.
        var ports: (String, String?) {
            switch self {
            case .l1, .dssim, .mse, .huber: return ("image", "target")
            case .stable: return ("features", "target")
            case .mask: return ("alpha", "matte")
            case .probe: return ("image", nil)
            }
        }
    }

    /// The scalar inputs, each with its own weight param `w_<port>`.
    static let scalarPorts = ["laplacian", "offset", "scale", "opacity", "expression", "perceptual", "extra"]

    let imageWeights: [(ImageTerm, Float)]
    let scalarWeights: [(String, Float)]
    let huberDelta: Float
    let probe: Tensor?
    let maskedImage: Bool

    public init(params: Params) throws {
        imageWeights = try ImageTerm.allCases.compactMap { t in
            let w = Float(try params.double("w_" + t.rawValue))
            return w == 0 ? nil : (t, w)
        }
        scalarWeights = try Self.scalarPorts.compactMap { p in
            let w = Float(try params.double("w_" + p))
            return w == 0 ? nil : (p, w)
        }
        huberDelta = Float(try params.double("huber_delta"))
        maskedImage = try params.bool("masked")
        if imageWeights.contains(where: { $0.0 == .probe }) {
            guard params.has("probe") else { throw OperatorError("w_probe is set but param 'probe' (an .npy of weights W) is not") }
            let url = try params.url("probe")
            do { probe = try Tensor(npyFile: url) } catch { throw OperatorError("param 'probe': \(error)") }
        } else {
            probe = nil
        }
    }

    struct SavedState {
        /// Per image term: prediction and target as evaluated.
        var pairs: [ImageTerm: (Tensor, Tensor?)]
        var mask: Tensor?
    }

    /// The prediction and target of a term, checked and cut to what the term compares.
    func operands(_ term: ImageTerm, _ inputs: Inputs) throws -> (Tensor, Tensor?) {
        let (pName, tName) = term.ports
        func input(_ port: String) throws -> Tensor {
            guard let v = inputs[port] else {
                throw OperatorError("w_\(term.rawValue) is set but input '\(port)' is not connected")
            }
            guard let t = v.tensor, t.rank == 3 else { throw OperatorError("input '\(port)' should be an image [C, H, W], got \(v.summary)") }
            return t
        }
        var p = try input(pName)
        guard let tName else {
            guard let w = probe, w.count == p.count else {
                throw OperatorError("param 'probe' has shape \(probe?.shape ?? []) but input 'image' is \(p.shape)")
            }
            return (p, Tensor(shape: p.shape, scalars: w.scalars))
        }
        // The stable term compares with the unedited source when one is connected (the edit
        // loss: L1(I_F[0:3], I_src) while the image terms chase the edited target).
        var t = try input(term == .stable && inputs["source"] != nil ? "source" : tName)
        if term == .stable {
            // Eq. 12: the first three feature channels are pushed towards the photo itself.
            guard p.shape[0] >= t.shape[0] else {
                throw OperatorError("the stable term compares features[0:\(t.shape[0])] with the target, but features have \(p.shape[0]) channels")
            }
            p = Tensor(shape: t.shape, scalars: Array(p.scalars[0..<t.count]))
        }
        if term == .mask, t.shape[0] > 1 { t = Tensor(shape: [1] + Array(t.shape.dropFirst()), scalars: Array(t.scalars[0..<(t.count / t.shape[0])])) }
        guard p.shape == t.shape else {
            throw OperatorError("term \(term.rawValue): input '\(pName)' is \(p.shape) but '\(tName)' is \(t.shape)")
        }
        return (p, t)
    }

    /// The matte that restricts the image terms to the subject when `masked` is on.
    func imageMask(_ inputs: Inputs) throws -> Tensor? {
        guard maskedImage else { return nil }
        guard let m = inputs["matte"]?.tensor, m.rank == 3 else { throw OperatorError("param 'masked' needs input 'matte' connected") }
        return Tensor(shape: [1] + Array(m.shape.dropFirst()), scalars: Array(m.scalars[0..<(m.count / m.shape[0])]))
    }

    func value(_ term: ImageTerm, _ p: Tensor, _ t: Tensor?, mask: Tensor?) -> Float {
        let t = t!
        switch term {
        case .l1, .stable: return mask.map { Kernels.maskedL1Loss(p, t, mask: $0) } ?? Kernels.l1Loss(p, t)
        case .mask: return Kernels.l1Loss(p, t)
        case .dssim: return Kernels.dssimLoss(p, t, threads: KernelThreads.budget)
        case .mse: return Kernels.mseLoss(p, t)
        case .huber: return Kernels.huberLoss(p, t, delta: huberDelta)
        case .probe: return Kernels.weightedSum(p, weights: t)
        }
    }

    /// ∂term/∂prediction. Targets here are data (the photo, the edit, the source), so the kernels
    /// are asked for no target cotangent: on a 32-channel 512² probe that halves the VJP's time.
    func cotangent(_ term: ImageTerm, _ p: Tensor, _ t: Tensor?, mask: Tensor?, _ v: Float) -> Tensor {
        let t = t!
        // The probe's cotangent is v·W: at v = 1 it is W itself, shared rather than written again.
        if term == .probe && v == 1 { return t }
        let (c, h, w) = (p.shape[0], p.shape[1], p.shape[2])
        return Tensor(shape: p.shape) { vp in
            p.withUnsafeBufferPointer { pb in
                t.withUnsafeBufferPointer { tb in
                    switch term {
                    case .l1, .stable:
                        if let mask {
                            mask.withUnsafeBufferPointer { mb in
                                Kernels.maskedL1LossVJP(pb, tb, mask: mb, vLoss: v, vPrediction: vp, vTarget: nil)
                            }
                        } else {
                            Kernels.l1LossVJP(pb, tb, vLoss: v, vPrediction: vp, vTarget: nil)
                        }
                    case .mask: Kernels.l1LossVJP(pb, tb, vLoss: v, vPrediction: vp, vTarget: nil)
                    case .dssim:
                        Kernels.dssimLossVJP(pb, tb, channels: c, height: h, width: w, vLoss: v, vPrediction: vp, vTarget: nil,
                                             threads: KernelThreads.budget)
                    case .mse: Kernels.mseLossVJP(pb, tb, vLoss: v, vPrediction: vp, vTarget: nil)
                    case .huber: Kernels.huberLossVJP(pb, tb, delta: huberDelta, vLoss: v, vPrediction: vp, vTarget: nil)
                    case .probe: Kernels.weightedSumVJP(pb, weights: tb, vLoss: v, vInput: vp, vWeights: nil)
                    }
                }
            }
        }
    }

    // The loss kernels split their work by the run's --threads (KernelThreads).
    public func forward(_ inputs: Inputs, frame: Int?, context: RunContext) throws -> (outputs: [String: Value], saved: Saved) {
        try KernelThreads.$budget.withValue(context.threads) { try forwardTerms(inputs) }
    }

    func forwardTerms(_ inputs: Inputs) throws -> (outputs: [String: Value], saved: Saved) {
        guard !imageWeights.isEmpty || !scalarWeights.isEmpty else {
            throw OperatorError("every weight is 0: set at least one w_* param")
        }
        var total = 0.0
        var terms: [String: Value] = [:]
        var pairs: [ImageTerm: (Tensor, Tensor?)] = [:]
        let mask = try imageMask(inputs)
        for (term, w) in imageWeights {
            let (p, t) = try operands(term, inputs)
            let v = Double(value(term, p, t, mask: term == .l1 || term == .stable ? mask : nil))
            pairs[term] = (p, t)
            terms[term.rawValue] = .number(v)
            total += Double(w) * v
        }
        for (port, w) in scalarWeights {
            guard let v = inputs[port] else { throw OperatorError("w_\(port) is set but input '\(port)' is not connected") }
            guard let x = v.number, x.isFinite else { throw OperatorError("input '\(port)' should be a finite scalar, got \(v.summary)") }
            terms[port] = .number(x)
            total += Double(w) * x
        }
        return (["loss": .tensor(Tensor(scalar: Float(total))), "terms": .record(terms)],
                Saved(SavedState(pairs: pairs, mask: mask)))
    }

    public func vjp(_ cotangents: [String: Value], saved: Saved, inputs: Inputs, frame: Int?, context: RunContext) throws -> Gradients {
        try KernelThreads.$budget.withValue(context.threads) { try vjpTerms(cotangents, saved: saved, inputs: inputs) }
    }

    func vjpTerms(_ cotangents: [String: Value], saved: Saved, inputs: Inputs) throws -> Gradients {
        let s = try saved.get(SavedState.self)
        let c = Float(cotangents["loss"]?.number ?? 0)
        var out: [String: Tensor] = [:]
        func add(_ port: String, _ g: Tensor) {
            if let old = out[port] { out[port] = old + g } else { out[port] = g }
        }
        for (term, w) in imageWeights {
            let (p, t) = s.pairs[term]!
            var g = cotangent(term, p, t, mask: term == .l1 || term == .stable ? s.mask : nil, w * c)
            if term == .stable, let f = inputs["features"]?.tensor, f.count > g.count {
                // Only the first three channels take part: the rest get zeros.
                g = Tensor(shape: f.shape, scalars: g.scalars + [Float](repeating: 0, count: f.count - g.count))
            }
            add(term.ports.0, g)
        }
        for (port, w) in scalarWeights {
            let shape = inputs[port]?.tensor?.shape ?? []
            add(port, Tensor(shape: shape, scalars: [Float](repeating: w * c, count: max(1, shape.reduce(1, *)))))
        }
        return Gradients(inputs: out.mapValues { .tensor($0) })
    }
}
