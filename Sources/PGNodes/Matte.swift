import Foundation
import PGFlow
import PGTensor

/// A per-frame foreground matte of a real clip from a `matte` plugin (MediaPipe's selfie
/// segmentation; `Nodes/plugins/matte.json`): what a synthetic sample's matte video gives, for
/// clips that have none. Feed it where VideoSource.mask would go (Loss.matte, Metrics.mask).
public struct Matte: Operator {
    public static let type = "Matte"
    public static let version = 1

    let call: PluginCall

    public init(params: Params) throws {
        call = try PluginCall(requiring: params)
    }

    public func evaluate(_ inputs: Inputs, frame: Int?, context: RunContext) throws -> [String: Value] {
        let host = try call.host(context)
        let image = try inputs.rgb("image")
        let (h, w) = (image.shape[1], image.shape[2])
        let t = frame ?? 0
        let mask = try host.call(call.plugin, try call.request("matte", frame: t, host: host), files: [("image", image.npyDataHWC())],
                                 what: "the matte of frame \(t)") { _, output in
            try call.named { try ImageFile.read(output, height: h, width: w, channels: 1) }
        }
        return ["mask": .tensor(mask)]
    }
}
