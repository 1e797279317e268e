import Foundation
import PGFlow
import PGKernels
import PGTensor
import Synchronization

/// Splats 3D Gaussians carrying C-channel features into a feature image, an alpha image and a
/// depth image through a pinhole camera (PortraitGen §3.2.1; see `Nodes/Splat.json` and
/// `PGKernels.SplatKernel` for the exact semantics). Differentiable with respect to every tensor of
/// the `gaussians` record; the camera is not differentiated.
public struct Splat: Differentiable {
    public static let type = "Splat"
    public static let version = 1
    /// The largest channel count the node accepts (the kernel itself has no small limit).
    public static let maxChannels = 64

    let width: Int?
    let height: Int?
    /// One value (every channel) or one per channel.
    let background: [Float]
    let isotropic: Bool
    let near: Float
    let depthMode: SplatDepthMode
    let workspaces = WorkspacePool()

    public init(params: Params) throws {
        width = params.has("width") ? try params.int("width") : nil
        height = params.has("height") ? try params.int("height") : nil
        for (name, v) in [("width", width), ("height", height)] {
            if let v, v < 1 || v > 16384 { throw OperatorError("param '\(name)' should be 1…16384, got \(v)") }
        }
        background = try params.doubles("background").map(Float.init)
        guard !background.isEmpty, background.allSatisfy(\.isFinite) else {
            throw OperatorError("param 'background' should be one number or one per channel, got \(params["background"]?.text ?? "nothing")")
        }
        isotropic = try params.bool("isotropic")
        near = Float(try params.double("near"))
        guard near.isFinite, near > 0 else { throw OperatorError("param 'near' should be a positive number, got \(near)") }
        let mode = try params.string("depth_mode")
        guard let depthMode = SplatDepthMode(rawValue: mode) else {
            throw OperatorError("param 'depth_mode' should be expected or accumulated, got \"\(mode)\"")
        }
        self.depthMode = depthMode
    }

    /// What the forward keeps for the VJP: the kernel's tape and how the input record was laid out.
    struct SavedState {
        var tape: SplatTape
        var hadQuats: Bool
    }

    public func forward(_ inputs: Inputs, frame: Int?, context: RunContext) throws -> (outputs: [String: Value], saved: Saved) {
        let (gaussians, hadQuats) = try Self.gaussians(try inputs.record("gaussians"), isotropic: isotropic)
        let camera = try self.camera(try inputs.record("camera"))
        let c = gaussians.channels
        let bg: [Float]
        if background.count == 1 { bg = [Float](repeating: background[0], count: c) } else {
            guard background.count == c else {
                throw OperatorError("param 'background' has \(background.count) values but the Gaussians have \(c) channels")
            }
            bg = background
        }
        let options = SplatOptions(background: bg, depthMode: depthMode, threads: context.threads)
        let (image, tape) = workspaces.with { SplatKernel.rasterize(gaussians, camera: camera, options: options, workspace: $0) }
        let h = camera.height, w = camera.width
        let outputs: [String: Value] = [
            "features": .tensor(Tensor(shape: [c, h, w], scalars: image.features)),
            "alpha": .tensor(Tensor(shape: [1, h, w], scalars: image.alpha)),
            "depth": .tensor(Tensor(shape: [1, h, w], scalars: image.depth)),
        ]
        return (outputs, Saved(SavedState(tape: tape, hadQuats: hadQuats)))
    }

    public func vjp(_ cotangents: [String: Value], saved: Saved, inputs: Inputs, frame: Int?,
                    context: RunContext) throws -> Gradients {
        let state = try saved.get(SavedState.self)
        let tape = state.tape
        let c = tape.gaussians.channels, h = tape.camera.height, w = tape.camera.width
        func cotangent(_ port: String, _ shape: [Int]) throws -> [Float]? {
            guard let v = cotangents[port] else { return nil }
            guard let t = v.tensor, t.shape == shape else {
                throw OperatorError("cotangent for '\(port)' should be a tensor \(shape), got \(v.summary)")
            }
            return t.scalars
        }
        let vFeatures = try cotangent("features", [c, h, w]) ?? [Float](repeating: 0, count: c * h * w)
        let vAlpha = try cotangent("alpha", [1, h, w])
        let vDepth = try cotangent("depth", [1, h, w])
        let g = workspaces.with {
            SplatKernel.rasterizeVJP(tape, vFeatures: vFeatures, vAlpha: vAlpha, vDepth: vDepth, workspace: $0)
        }
        let n = tape.gaussians.count
        var record: [String: Value] = [
            "means": .tensor(Tensor(shape: [n, 3], scalars: g.vMeans)),
            "log_scales": .tensor(Tensor(shape: [n, tape.gaussians.isotropic ? 1 : 3], scalars: g.vLogScales)),
            "opacity_logits": .tensor(Tensor(shape: [n], scalars: g.vOpacityLogits)),
            "features": .tensor(Tensor(shape: [n, c], scalars: g.vFeatures)),
        ]
        if state.hadQuats { record["quats"] = .tensor(Tensor(shape: [n, 4], scalars: g.vQuats)) }
        return Gradients(inputs: ["gaussians": .record(record)])
    }

    // MARK: records

    /// The kernel's view of a `Gaussians` record (layout in PGFlow's Value.swift). Log-scales of
    /// shape [N, 1] make the Gaussians isotropic (no rotation); `isotropic` insists on that.
    static func gaussians(_ r: [String: Value], isotropic: Bool) throws -> (SplatGaussians, hadQuats: Bool) {
        let g = try GaussianRecord(.record(r), what: "input 'gaussians'")
        let iso = g.logScales.count == g.count
        if isotropic && !iso {
            throw OperatorError("input 'gaussians': log_scales should be [\(g.count), 1] (param 'isotropic' is on), got [\(g.count), 3]")
        }
        guard (1...maxChannels).contains(g.channels) else {
            throw OperatorError("input 'gaussians': Splat renders 1 to \(maxChannels) feature channels, got \(g.channels)")
        }
        return (SplatGaussians(means: g.means, logScales: g.logScales, quats: iso ? [] : g.quats,
                               opacityLogits: g.opacityLogits, features: g.features, channels: g.channels, isotropic: iso),
                r["quats"] != nil)
    }

    /// The kernel's camera from a `Camera` record, resized to the node's width and height: the
    /// intrinsics scale with the image (given only one of them, the other keeps the aspect ratio).
    func camera(_ r: [String: Value]) throws -> SplatCamera {
        let c = try PinholeCamera(record: r, what: "input 'camera'")
        let cw = Double(c.width), ch = Double(c.height)
        let w = width ?? height.map { max(1, Int((Double($0) * cw / ch).rounded())) } ?? c.width
        let h = height ?? width.map { max(1, Int((Double($0) * ch / cw).rounded())) } ?? c.height
        let s = c.resized(width: w, height: h)
        return SplatCamera(fx: Float(s.fx), fy: Float(s.fy), cx: Float(s.cx), cy: Float(s.cy),
                           width: w, height: h, worldToCamera: s.worldToCamera, near: near)
    }
}

/// Kernel workspaces shared by the evaluations of one node, so frames evaluated one after another
/// reuse their scratch memory and concurrent evaluations each get their own.
final class WorkspacePool: Sendable {
    private let free = Mutex<[SplatWorkspace]>([])

    func with<R>(_ body: (SplatWorkspace) throws -> R) rethrows -> R {
        let ws = free.withLock { $0.popLast() } ?? SplatWorkspace()
        defer { free.withLock { if $0.count < 4 { $0.append(ws) } } }
        return try body(ws)
    }
}
