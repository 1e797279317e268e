import Foundation
import PGFlow
import PGTensor

/// What a node that calls a catalogued plugin holds (EditorCall, FaceLandmarks, Matte, ExprLoss):
/// the plugin's name and the node's own params for it, and the request every op starts from.
struct PluginCall: Sendable {
    let plugin: String
    let given: JSON?
    let base: URL

    /// From a node's `plugin` and `params` params; nil when `plugin` is optional and not set.
    init?(_ params: Params) throws {
        guard params.has("plugin") else { return nil }
        plugin = try params.string("plugin")
        given = params["params"]
        base = params.baseDirectory
    }

    /// For nodes whose `plugin` param is required (EditorCall, FaceLandmarks, Matte, PerceptualLoss).
    init(requiring params: Params) throws {
        guard let call = try PluginCall(params) else { throw OperatorError("param 'plugin' is required") }
        self = call
    }

    /// The run's plugin host.
    func host(_ context: RunContext) throws -> PluginHost {
        guard let host = context.plugins else { throw OperatorError("\(context.nodeType) needs a run's plugin host (run it in a graph)") }
        return host
    }

    /// The node's params for the plugin, completed with the manifest's defaults.
    func params(_ host: PluginHost) throws -> [String: JSON] {
        try host.manifest(plugin).completeParams(given, base: base)
    }

    /// `{"op", "frame", "params"}`: the start of every request.
    func request(_ op: String, frame t: Int, host: PluginHost) throws -> [(key: String, value: JSON)] {
        [("op", .string(op)), ("frame", .int(Int64(t))),
         ("params", .object(try params(host).sorted { $0.key < $1.key }.map { (key: $0.key, value: $0.value) }))]
    }

    /// An error from reading a plugin's answer, named with the plugin.
    func named<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as OperatorError { throw OperatorError("plugin \"\(plugin)\": \(e.message)") }
    }
}

extension Inputs {
    /// An RGB image input [3, H, W].
    func rgb(_ port: String) throws -> Tensor {
        let t = try tensor(port)
        guard t.rank == 3, t.shape[0] == 3 else { throw OperatorError("input '\(port)' should be an RGB image [3, H, W], got \(t.shape)") }
        return t
    }
}
