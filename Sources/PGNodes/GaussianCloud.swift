import Foundation
import PGFlow
import PGMedia
import PGTensor

/// Loads a 3DGS `.ply` point cloud into a `Gaussians` record. See `Nodes/GaussianCloud.json`.
public struct GaussianCloud: Operator {
    public static let type = "GaussianCloud"
    public static let version = 1

    enum FeatureSource: String, CaseIterable {
        /// The f_feat_* channels when the file has them, else RGB.
        case auto
        /// 3DGS's degree-0 colour 0.5 + C0·f_dc, clamped at 0: three channels.
        case rgb
        /// The f_feat_* channels (pgflow's neural features).
        case neural
    }

    let url: URL
    let features: FeatureSource

    public init(params: Params) throws {
        url = try params.url("path")
        let name = try params.string("features")
        guard let f = FeatureSource(rawValue: name) else {
            throw OperatorError("param 'features' should be one of \(FeatureSource.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(name)\"")
        }
        features = f
    }

    public func evaluate(_ inputs: Inputs, frame: Int?, context: RunContext) throws -> [String: Value] {
        ["gaussians": .record(try Self.record(GaussianPLY.read(url), features: features, path: url.path))]
    }

    static func record(_ cloud: GaussianPLY, features source: FeatureSource, path: String) throws -> [String: Value] {
        let n = cloud.count
        let features: Tensor
        if source == .neural || (source == .auto && cloud.features != nil) {
            guard let f = cloud.features else {
                throw OperatorError("'\(path)' has no f_feat_* properties; use features \"rgb\" to splat its 3DGS colours")
            }
            features = f
        } else {
            guard let rgb = cloud.rgb else {
                throw OperatorError("'\(path)' has neither f_dc_0..2 colours nor f_feat_* features to splat")
            }
            features = rgb
        }
        // Without rot_* a Gaussian is axis-aligned: the identity quaternion (w = 1).
        let quats = cloud.quats ?? Tensor(shape: [n, 4], scalars: (0..<(4 * n)).map { $0 % 4 == 0 ? 1 : 0 })
        return ["means": .tensor(cloud.means), "log_scales": .tensor(cloud.logScales), "quats": .tensor(quats),
                "opacity_logits": .tensor(cloud.opacityLogits), "features": .tensor(features)]
    }
}
