import Foundation
import PGFlow
import PGTensor

/// A per-frame foreground matte of a real clip from a `matte` plugin (MediaPipe's selfie
/// segmentation; `Nodes/plugins/matte.json`): what a synthetic sample's matte video gives, for
/// clips that have none. Feed it where VideoSource.mask would go (Loss.matte, Metrics.mask).
public struct Matte: Operator {
    public static let type = "Matte"
    public static let version = 1

    let plugin: String
    let given: JSON?
    let base: URL

    public init(params: Params) throws {
        plugin = try params.string("plugin")
        given = params["params"]
        base = params.baseDirectory
    }

    public func evaluate(_ inputs: Inputs, frame: Int?, context: RunContext) throws -> [String: Value] {
        guard let host = context.plugins else { throw OperatorError("Matte needs a run's plugin host (run it in a graph)") }
        let manifest = try host.manifest(plugin)
        let params = manifest.completeParams(given, base: base)
        let image = try inputs.tensor("image")
        guard image.rank == 3, image.shape[0] == 3 else {
            throw OperatorError("input 'image' should be an RGB image [3, H, W], got \(image.shape)")
        }
        let (h, w) = (image.shape[1], image.shape[2])
        let t = frame ?? 0
        let request: [(key: String, value: JSON)] = [
            ("op", .string("matte")), ("frame", .int(Int64(t))),
            ("params", .object(params.sorted { $0.key < $1.key }.map { (key: $0.key, value: $0.value) })),
        ]
        let mask = try host.call(plugin, request, files: [("image", image.npyDataHWC())], what: "the matte of frame \(t)") { _, output in
            do { return try ImageFile.read(output, height: h, width: w, channels: 1) } catch let e as OperatorError {
                throw OperatorError("plugin \"\(plugin)\": \(e.message)")
            }
        }
        return ["mask": .tensor(mask)]
    }
}
