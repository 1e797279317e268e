import Foundation
import PGFlow
import PGKernels
import PGTensor

/// Photometric refinement of tracking (issue 14, item 3): a trainable rigid correction per frame,
/// applied to the frame's posed Gaussians before Splat (`RigidMotion`: a turn ω about the
/// Gaussians' centroid and a shift τ), so an optimize stage that trains only this node against the
/// frames aligns each frame's pose where landmarks left it off by a pixel. See
/// `Nodes/PoseRefine.json`.
public struct PoseRefine: Trainable {
    public static let type = "PoseRefine"
    public static let version = 1

    public init(params: Params) throws {}

    /// A step trains the rows of the frames it drew; the others stay put.
    public var sparseGroups: Set<String> { ["motion"] }

    public func initialParameters(_ inputs: Inputs, context: RunContext) throws -> [String: Tensor] {
        guard let count = inputs["meta"]?.record?["frame_count"]?.number, count >= 1 else {
            throw OperatorError("input 'meta' should be VideoSource.meta with the clip's frame_count (one correction per frame)")
        }
        return ["motion": Tensor(zeros: [Int(count), 6])]
    }

    struct State {
        var saved: RigidMotion.Saved
        var means: [Float]
        var quats: [Float]
        var omega: SIMD3<Double>
    }

    /// Frame t's correction: (ω, τ).
    func motion(_ inputs: Inputs, frame: Int?) throws -> (SIMD3<Double>, SIMD3<Double>, Int) {
        let m = try inputs.parameter("motion")
        guard let t = frame, t >= 0, t < m.shape[0] else {
            throw OperatorError("PoseRefine has corrections for frames 0…\(m.shape[0] - 1), not \(frame.map(String.init) ?? "a static evaluation")")
        }
        let r = m.scalars[(6 * t)..<(6 * t + 6)].map(Double.init)
        return (SIMD3(r[0], r[1], r[2]), SIMD3(r[3], r[4], r[5]), t)
    }

    public func forward(_ inputs: Inputs, frame: Int?, context: RunContext) throws -> (outputs: [String: Value], saved: Saved) {
        guard var record = try inputs.value("gaussians").record else { throw OperatorError("input 'gaussians' should be a Gaussians record") }
        let g = try GaussianRecord(.record(record), what: "input 'gaussians'")
        let (omega, tau, _) = try motion(inputs, frame: frame)
        var means = g.means, quats = g.quats
        let saved = RigidMotion.apply(means: &means, quats: &quats, omega: omega, tau: tau)
        record["means"] = .tensor(Tensor(shape: [g.count, 3], scalars: means))
        if !quats.isEmpty { record["quats"] = .tensor(Tensor(shape: [g.count, 4], scalars: quats)) }
        return (["gaussians": .record(record)], Saved(State(saved: saved, means: g.means, quats: g.quats, omega: omega)))
    }

    public func vjp(_ cotangents: [String: Value], saved: Saved, inputs: Inputs, frame: Int?, context: RunContext) throws -> Gradients {
        let s: State = try saved.get()
        let m = try inputs.parameter("motion")
        let (_, _, t) = try motion(inputs, frame: frame)
        guard var cot = cotangents["gaussians"]?.record else { return Gradients(parameters: ["motion": Tensor(zeros: m.shape)]) }
        var gMeans = cot["means"]?.tensor?.scalars ?? [Float](repeating: 0, count: s.means.count)
        var gQuats = cot["quats"]?.tensor?.scalars ?? [Float](repeating: 0, count: s.quats.count)
        if gQuats.count != s.quats.count { gQuats = [Float](repeating: 0, count: s.quats.count) }
        let (gOmega, gTau) = RigidMotion.applyVJP(s.saved, means: s.means, quats: s.quats, omega: s.omega, gMeans: &gMeans, gQuats: &gQuats)
        cot["means"] = .tensor(Tensor(shape: [s.means.count / 3, 3], scalars: gMeans))
        if !s.quats.isEmpty { cot["quats"] = .tensor(Tensor(shape: [s.quats.count / 4, 4], scalars: gQuats)) }
        var grad = Tensor(zeros: m.shape)
        for k in 0..<3 {
            grad.scalars[6 * t + k] = Float(gOmega[k])
            grad.scalars[6 * t + 3 + k] = Float(gTau[k])
        }
        return Gradients(inputs: ["gaussians": .record(cot)], parameters: ["motion": grad])
    }
}
