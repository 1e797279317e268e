import PGFlow
import PGTensor

/// A `Gaussians` record (layout in PGFlow's Value.swift) as flat arrays, checked once for every
/// node that reads one (GaussianField's cloud input, Splat, GaussianExport). The rules:
/// means [N, 3]; log_scales [N, 3] (anisotropic) or [N, 1] (isotropic); quats [N, 4] (w, x, y, z),
/// required when anisotropic and optional when isotropic; opacity_logits [N]; features [N, C].
struct GaussianRecord: Sendable {
    var count: Int
    var channels: Int
    var means: [Float]           // [N, 3]
    var logScales: [Float]       // [N, 3] or [N, 1]
    var quats: [Float]           // [N, 4] or [] (isotropic only)
    var opacityLogits: [Float]   // [N]
    var features: [Float]        // [N, C]


    /// `what` names the record in errors ("input 'gaussians'").
    init(_ value: Value, what: String) throws {
        guard let r = value.record else { throw OperatorError("\(what) should be a Gaussians record, got \(value.summary)") }
        func tensor(_ key: String) throws -> Tensor {
            guard let v = r[key] else { throw OperatorError("\(what) has no '\(key)'") }
            guard let t = v.tensor else { throw OperatorError("\(what): '\(key)' should be a tensor, got \(v.summary)") }
            return t
        }
        let means = try tensor("means")
        guard means.rank == 2, means.shape[1] == 3 else { throw OperatorError("\(what): means should be [N, 3], got \(means.shape)") }
        let n = means.shape[0]
        func expect(_ t: Tensor, _ key: String, _ shapes: [[Int]]) throws {
            guard shapes.contains(t.shape) else {
                throw OperatorError("\(what): \(key) should be \(shapes.map { "\($0)" }.joined(separator: " or ")) for \(n) Gaussians, got \(t.shape)")
            }
        }
        let logScales = try tensor("log_scales")
        try expect(logScales, "log_scales", [[n, 3], [n, 1]])
        let opacity = try tensor("opacity_logits")
        try expect(opacity, "opacity_logits", [[n]])
        let features = try tensor("features")
        guard features.rank == 2, features.shape[0] == n else {
            throw OperatorError("\(what): features should be [\(n), C], got \(features.shape)")
        }
        var quats: [Float] = []
        if r["quats"] != nil {
            let q = try tensor("quats")
            try expect(q, "quats", [[n, 4]])
            quats = q.scalars
        } else if logScales.shape[1] == 3 && n > 0 {
            throw OperatorError("\(what) has no 'quats', which anisotropic Gaussians (log_scales [N, 3]) need")
        }
        count = n
        channels = features.shape[1]
        self.means = means.scalars
        self.logScales = logScales.scalars
        self.quats = quats
        opacityLogits = opacity.scalars
        self.features = features.scalars
    }
}
