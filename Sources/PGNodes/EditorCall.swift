import Foundation
import PGFlow
import PGKernels
import PGTensor

/// Edits each frame with a catalogued 2D editor: a plugin worker (style transfer, OpenCV filters,
/// InstructPix2Pix; `Nodes/plugins/`) or an editor built into pgflow (`lut`). Frames go through the
/// run's worker pool, never a process per frame. See `Nodes/EditorCall.json`.
public struct EditorCall: Operator {
    public static let type = "EditorCall"
    public static let version = 1

    let call: PluginCall
    let seed: UInt64
    /// Built-in editors' per-run state (parsed LUTs); one per node, as operators are made per run.
    let builtins = BuiltinEditors()

    public init(params: Params) throws {
        call = try PluginCall(requiring: params)
        seed = UInt64(try params.int("seed"))
    }

    /// The seed a frame's edit gets: the node's seed and the frame mixed, below 2³¹ so that every
    /// framework takes it.
    static func frameSeed(_ seed: UInt64, frame: Int) -> Int {
        var g = SplitMix64(seed: seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(frame))
        return Int(g.next() >> 33)
    }

    public func evaluate(_ inputs: Inputs, frame: Int?, context: RunContext) throws -> [String: Value] {
        let host = try call.host(context)
        let manifest = try host.manifest(call.plugin)
        let image = try inputs.rgb("image")
        let (h, w) = (image.shape[1], image.shape[2])
        for port in ["source", "mask"] {
            guard let t = inputs[port]?.tensor else { continue }
            let c = port == "mask" ? 1 : 3
            guard t.shape == [c, h, w] else {
                throw OperatorError("input '\(port)' should be [\(c), \(h), \(w)] like the image, got \(t.shape)")
            }
        }
        if manifest.builtin {
            return ["image": .tensor(try builtins.edit(call.plugin, image: image, params: try call.params(host)))]
        }
        let t = frame ?? 0
        var files: [(port: String, bytes: Data)] = [("image", image.npyDataHWC())]
        for port in ["source", "mask"] {
            guard let tensor = inputs[port]?.tensor else { continue }
            // Per-frame editing feeds the same frame as image and source: encode it once.
            files.append((port, port == "source" && tensor == image ? files[0].bytes : tensor.npyDataHWC()))
        }
        var request = try call.request("edit", frame: t, host: host)
        request.append(("seed", .int(Int64(Self.frameSeed(seed, frame: t)))))
        // Boxes are [x0, y0, x1, y1] as a list of numbers (Tracker's head_box) or a tensor.
        if let box = inputs["box"] {
            let numbers = box.list?.compactMap(\.number) ?? box.tensor?.scalars.map(Double.init) ?? []
            request.append(("box", .array(numbers.map { .double($0) })))
        }
        let edited = try host.call(call.plugin, request, files: files, what: "the edit of frame \(t)") { _, output in
            try call.named { try ImageFile.read(output, height: h, width: w) }
        }
        return ["image": .tensor(edited)]
    }
}

/// An editor's answer as the plugin protocol carries it: `.npy` float32 `[H, W, 3]` (NumPy's
/// layout, so a plugin needs no transpose), read without loss.
enum ImageFile {
    /// Reads an editor's answer: `[H, W, C]` (C = 3, or 1 for a matte) at the input's size,
    /// finite; values just outside 0…1 are clamped.
    /// With `range` nil (a gradient, not an image) values are only checked to be finite.
    static func read(_ url: URL, height h: Int, width w: Int, channels c: Int = 3, range: ClosedRange<Float>? = 0...1) throws -> Tensor {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw OperatorError("it reported success but wrote no output file \(url.path) (expected .npy float32 [\(h), \(w), \(c)])")
        }
        let data: Data
        do { data = try Data(contentsOf: url, options: .alwaysMapped) } catch {
            throw OperatorError("its output \(url.path) cannot be read: \(error.localizedDescription)")
        }
        if data.starts(with: PluginHost.staleOutputMarker) {
            throw OperatorError("it reported success but wrote no output file \(url.path) (expected .npy float32 [\(h), \(w), \(c)])")
        }
        var t: Tensor
        do { t = try Tensor(npyHWC: data) } catch {
            throw OperatorError("its output \(url.path) is not a readable .npy image: \(error)")
        }
        if c == 1, t.shape == [h, w] { t = Tensor(shape: [1, h, w], scalars: t.scalars) }
        guard t.shape == [c, h, w] else {
            let got = t.shape.count == 3 ? [t.shape[1], t.shape[2], t.shape[0]] : t.shape
            throw OperatorError("its output has shape \(got), expected [\(h), \(w), \(c)] (the input image's size, \(c == 3 ? "RGB" : "one channel"))")
        }
        var bad = 0
        t.withUnsafeMutableBufferPointer { v in
            for i in v.indices {
                let x = v[i]
                if !x.isFinite { bad += 1 } else if let range { v[i] = min(max(x, range.lowerBound), range.upperBound) }
            }
        }
        if bad > 0 { throw OperatorError("its output holds \(bad) NaN or infinite values (expected finite values\(range == nil ? "" : " in 0…1"))") }
        return t
    }
}
