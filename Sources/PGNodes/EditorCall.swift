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

    let plugin: String
    let given: JSON?
    let seed: UInt64
    let base: URL

    public init(params: Params) throws {
        plugin = try params.string("plugin")
        given = params["params"]
        seed = UInt64(try params.int("seed"))
        base = params.baseDirectory
    }

    /// The seed a frame's edit gets: the node's seed and the frame mixed, below 2³¹ so that every
    /// framework takes it.
    static func frameSeed(_ seed: UInt64, frame: Int) -> Int {
        var g = SplitMix64(seed: seed &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(frame))
        return Int(g.next() >> 33)
    }

    public func evaluate(_ inputs: Inputs, frame: Int?, context: RunContext) throws -> [String: Value] {
        guard let host = context.plugins else { throw OperatorError("EditorCall needs a run's plugin host (run it in a graph)") }
        let manifest = try host.manifest(plugin)
        let params = manifest.completeParams(given, base: base)
        let image = try inputs.tensor("image")
        guard image.rank == 3, image.shape[0] == 3 else {
            throw OperatorError("input 'image' should be an RGB image [3, H, W], got \(image.shape)")
        }
        let (h, w) = (image.shape[1], image.shape[2])
        for port in ["source", "mask"] {
            guard let t = inputs[port]?.tensor else { continue }
            let c = port == "mask" ? 1 : 3
            guard t.shape == [c, h, w] else {
                throw OperatorError("input '\(port)' should be [\(c), \(h), \(w)] like the image, got \(t.shape)")
            }
        }
        if manifest.builtin {
            return ["image": .tensor(try BuiltinEditors.edit(plugin, image: image, params: params))]
        }
        let t = frame ?? 0
        var files: [(key: String, value: JSON)] = []
        for port in ["image", "source", "mask"] {
            guard let tensor = inputs[port]?.tensor else { continue }
            let url = try host.scratchFile("\(port)")
            try ImageFile.write(tensor, to: url)
            files.append((key: port, value: .string(url.path)))
        }
        let output = try host.scratchFile("edited")
        defer {
            for (_, v) in files { try? FileManager.default.removeItem(atPath: v.string!) }
            try? FileManager.default.removeItem(at: output)
        }
        var request: [(key: String, value: JSON)] = [
            ("op", .string("edit")), ("frame", .int(Int64(t))), ("seed", .int(Int64(Self.frameSeed(seed, frame: t)))),
            ("params", .object(params.sorted { $0.key < $1.key }.map { (key: $0.key, value: $0.value) })),
            ("inputs", .object(files)), ("output", .string(output.path)),
        ]
        // Boxes are [x0, y0, x1, y1] as a list of numbers (Tracker's head_box) or a tensor.
        if let box = inputs["box"] {
            let numbers = box.list?.compactMap(\.number) ?? box.tensor?.scalars.map(Double.init) ?? []
            request.append(("box", .array(numbers.map { .double($0) })))
        }
        let reply = try host.call(plugin, request, what: "the edit of frame \(t)")
        let written = reply["output"]?.string.map { URL(fileURLWithPath: $0) } ?? output
        do {
            return ["image": .tensor(try ImageFile.read(written, height: h, width: w))]
        } catch let e as OperatorError {
            throw OperatorError("plugin \"\(plugin)\": \(e.message)")
        }
    }
}

/// Images as the plugin protocol carries them: `.npy` float32 `[H, W, C]` (NumPy's layout, so a
/// plugin needs no transpose), written and read without loss.
enum ImageFile {
    static func write(_ image: Tensor, to url: URL) throws {
        let (c, h, w) = (image.shape[0], image.shape[1], image.shape[2])
        var hwc = [Float](repeating: 0, count: image.count)
        image.withUnsafeBufferPointer { src in
            hwc.withUnsafeMutableBufferPointer { dst in
                for ch in 0..<c { for i in 0..<(h * w) { dst[i * c + ch] = src[ch * h * w + i] } }
            }
        }
        do { try Tensor(shape: [h, w, c], scalars: hwc).npyData().write(to: url) } catch {
            throw OperatorError("cannot write the image for the plugin to \(url.path): \(error.localizedDescription)")
        }
    }

    /// Reads an editor's answer: `[H, W, 3]` at the input's size, finite; values just outside
    /// 0…1 are clamped.
    static func read(_ url: URL, height h: Int, width w: Int) throws -> Tensor {
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw OperatorError("it reported success but wrote no output file \(url.path) (expected .npy float32 [\(h), \(w), 3])")
        }
        let t: Tensor
        do { t = try Tensor(npyFile: url) } catch {
            throw OperatorError("its output \(url.path) is not a readable .npy array: \(error)")
        }
        guard t.shape == [h, w, 3] else {
            throw OperatorError("its output has shape \(t.shape), expected [\(h), \(w), 3] (the input image's size, RGB)")
        }
        var chw = [Float](repeating: 0, count: t.count)
        var bad = 0
        t.withUnsafeBufferPointer { src in
            chw.withUnsafeMutableBufferPointer { dst in
                for i in 0..<(h * w) {
                    for ch in 0..<3 {
                        let v = src[i * 3 + ch]
                        if !v.isFinite { bad += 1; continue }
                        dst[ch * h * w + i] = min(max(v, 0), 1)
                    }
                }
            }
        }
        if bad > 0 { throw OperatorError("its output holds \(bad) NaN or infinite values (expected finite values in 0…1)") }
        return Tensor(shape: [3, h, w], scalars: chw)
    }
}
