import Foundation
import PGFlow
import PGMedia
import PGTensor

/// Writes one frame's Gaussians as a 3DGS `.ply`, so a trained field opens in the viewers and
/// trainers people use and comes back through GaussianCloud. See `Nodes/GaussianExport.json`.
public struct GaussianExport: FrameSink {
    public static let type = "GaussianExport"
    public static let version = 1

    let url: URL
    let frame: Int
    let format: GaussianPLY.Format

    public init(params: Params) throws {
        url = try params.url("path").standardizedFileURL
        guard url.pathExtension.lowercased() == "ply" else {
            throw OperatorError("param 'path' should end in .ply, got '\(url.lastPathComponent)'")
        }
        frame = try params.int("frame")
        let name = try params.string("format")
        guard let f = GaussianPLY.Format(rawValue: name) else {
            throw OperatorError("param 'format' should be one of \(GaussianPLY.Format.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(name)\"")
        }
        format = f
    }

    public func consume(_ frames: FrameStream, inputs: Inputs, context: RunContext) throws -> [String: Value] {
        var chosen: [String: Value]?
        var seen = 0
        while let (t, frameInputs) = try frames.next() {
            try context.checkCancelled()
            seen += 1
            if t == frame, let g = frameInputs["gaussians"]?.record { chosen = g }
            context.progress(seen, of: frames.count)
        }
        guard let record = chosen else {
            throw OperatorError("param 'frame' is \(frame), but the clip has \(seen) frame\(seen == 1 ? "" : "s") (0…\(max(seen - 1, 0)))")
        }
        return ["file": try AtomicFile.write(try Self.cloud(record).encoded(format: format), to: url)]
    }

    /// The record as a 3DGS cloud: every feature channel as f_feat_*, and channels 0–2 (trained
    /// towards RGB by PortraitGen's stable term, Eq. 12) also as the degree-0 colour f_dc, so a
    /// plain 3DGS viewer shows the avatar in colour.
    static func cloud(_ r: [String: Value]) throws -> GaussianPLY {
        let g = try GaussianRecord(.record(r), what: "the gaussians record")
        let n = g.count
        let means = Tensor(shape: [n, 3], scalars: g.means), opacity = Tensor(shape: [n], scalars: g.opacityLogits)
        let logScales = Tensor(shape: [n, g.logScales.count / max(n, 1)], scalars: g.logScales)
        let features = Tensor(shape: [n, g.channels], scalars: g.features)
        // Isotropic Gaussians carry no rotation: the identity quaternion (w = 1), as 3DGS files want one.
        let quats = g.quats.isEmpty ? Tensor(shape: [n, 4], scalars: (0..<(4 * n)).map { $0 % 4 == 0 ? 1 : 0 })
                                    : Tensor(shape: [n, 4], scalars: g.quats)
        var dc: Tensor?
        if features.shape[1] >= 3 {
            let c = features.shape[1]
            dc = Tensor(shape: [n, 3], scalars: (0..<(3 * n)).map { i in (features.scalars[(i / 3) * c + i % 3] - 0.5) / GaussianPLY.shC0 })
        }
        return GaussianPLY(means: means, sphericalHarmonicsDC: dc, opacityLogits: opacity, logScales: logScales,
                           quats: quats, features: features)
    }
}
