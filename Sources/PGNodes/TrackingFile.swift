import Foundation
import PGFlow
import PGTensor

/// pgflow's own tracking format, read by the Tracker and written by `TrackingFile.write` (the
/// TrackingExport node, tests, tools).
///
/// JSON (`*.json`):
/// ```
/// { "format": "pgflow-tracking", "version": 1,
///   "model": "builtin:head",           // or a model file, relative to the tracking file
///   "shape": [β…],                     // optional, zeros if absent
///   "frames": [ { "expression": [ψ…], "pose": [[x, y, z] × J] (optional), "rotation": [3],
///                 "translation": [3], "jaw": [3],
///                 "camera": { "fx", "fy", "cx", "cy", "width", "height",
///                             "world_to_camera": [[4 numbers] × 4] },
///                 "landmarks": [[x, y] × 68] (optional, pixels, centres at +½) }, … ] }
/// ```
/// NPZ (`*.npz`, same content, no model name): `shape [S]`, `expression [T, E]`, `pose [T, J, 3]`,
/// `rotation`, `translation`, `jaw [T, 3]`, `intrinsics [T, 4]` or `[4]` (fx fy cx cy),
/// `image_size [2]` (width height), `world_to_camera [T, 4, 4]` or `[4, 4]`, `landmarks [T, L, 2]`.
/// Absent expression / pose / rotation / translation / jaw are zeros.
public enum TrackingFile {
    public static let formatName = "pgflow-tracking"
    public static let version = 1

    /// Reads a `.json` or `.npz` tracking file. `model` is the model for an NPZ file (which does not
    /// name one) and for a JSON file without a "model" key; a JSON "model" that is a file path is
    /// resolved against the tracking file's folder. Every frame's `tracking.model` holds the result.
    public static func read(_ url: URL, model: String) throws -> TrackingSequence {
        switch url.pathExtension.lowercased() {
        case "json": return try readJSON(url, model: model)
        case "npz": return try readNPZ(url, model: model)
        default:
            throw OperatorError("Cannot import the tracking file '\(url.path)': a pgflow tracking file ends in .json or .npz")
        }
    }

    // MARK: JSON

    static func readJSON(_ url: URL, model defaultModel: String) throws -> TrackingSequence {
        let path = url.path
        func fail(_ what: String) -> OperatorError { OperatorError("Cannot import the tracking file '\(path)': \(what)") }
        let root = try parseJSON(url)
        guard root["format"]?.string == formatName else {
            throw fail("it is not a pgflow tracking file ('format' should be \"\(formatName)\", got \(root["format"]?.text ?? "nothing"))")
        }
        if let v = root["version"] {
            guard let n = v.int, n >= 1 else { throw fail("'version' should be a positive integer, got \(v.text)") }
            guard n <= version else { throw fail("it is version \(n) of the format; this pgflow reads version \(version)") }
        }
        var model = defaultModel
        if let m = root["model"] {
            guard let s = m.string, !s.isEmpty else { throw fail("'model' should be \"builtin:head\" or a model file, got \(m.text)") }
            model = s.hasPrefix("builtin:") ? s : Params.resolve(s, against: url.deletingLastPathComponent()).path
        }
        let shape = try root["shape"].map { try numbers($0, "'shape'", fail) } ?? []
        guard let frameList = root["frames"] else { throw fail("the key 'frames' is missing") }
        guard let frames = frameList.array else { throw fail("'frames' should be an array of frame objects, got \(frameList.kindName)") }
        guard !frames.isEmpty else { throw fail("'frames' is empty") }

        var out: [TrackedFrame] = []
        for (t, f) in frames.enumerated() {
            func frameFail(_ what: String) -> OperatorError { fail("frame \(t): \(what)") }
            guard f.objectMembers != nil else { throw frameFail("it should be an object, got \(f.kindName)") }
            func vector3(_ key: String) throws -> SIMD3<Float> {
                guard let v = f[key] else { return .zero }
                let n = try numbers(v, "'\(key)'", frameFail)
                guard n.count == 3 else { throw frameFail("'\(key)' should have 3 numbers, got \(n.count)") }
                return SIMD3(n[0], n[1], n[2])
            }
            let expression = try f["expression"].map { try numbers($0, "'expression'", frameFail) } ?? []
            var pose: [Float] = []
            if let p = f["pose"] {
                guard let rows = p.array else { throw frameFail("'pose' should be rows of [x, y, z], got \(p.kindName)") }
                for (j, row) in rows.enumerated() {
                    let r = try numbers(row, "'pose' row \(j)", frameFail)
                    guard r.count == 3 else { throw frameFail("'pose' row \(j) should have 3 numbers, got \(r.count)") }
                    pose += r
                }
            }
            guard let c = f["camera"] else { throw frameFail("the key 'camera' is missing") }
            let camera = try cameraFromJSON(c, frameFail)
            var landmarks: [Float]?
            if let l = f["landmarks"] {
                guard let rows = l.array else { throw frameFail("'landmarks' should be rows of [x, y], got \(l.kindName)") }
                var flat: [Float] = []
                for (k, row) in rows.enumerated() {
                    let r = try numbers(row, "'landmarks' row \(k)", frameFail)
                    guard r.count == 2 else { throw frameFail("'landmarks' row \(k) should have 2 numbers, got \(r.count)") }
                    flat += r
                }
                landmarks = flat
            }
            let tracking = Tracking(model: model, shape: shape, expression: expression, pose: pose,
                                    rotation: try vector3("rotation"), translation: try vector3("translation"), jaw: try vector3("jaw"))
            out.append(TrackedFrame(tracking: tracking, camera: camera, landmarks: landmarks))
        }
        return TrackingSequence(source: path, format: .pgflow, frames: out)
    }

    static func parseJSON(_ url: URL) throws -> JSON {
        let path = url.path
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw OperatorError("Cannot import the tracking file '\(path)': \(FileManager.default.fileExists(atPath: path) ? "it cannot be opened" : "no such file")")
        }
        let root: JSON
        do { root = try JSONDocument.parse(data, file: path).root } catch {
            throw OperatorError("Cannot import the tracking file '\(path)': it is not valid JSON (\(error))")
        }
        guard root.objectMembers != nil else { throw OperatorError("Cannot import the tracking file '\(path)': it should hold a JSON object") }
        return root
    }

    /// A JSON array of finite numbers.
    static func numbers(_ v: JSON, _ what: String, _ fail: (String) -> OperatorError) throws -> [Float] {
        guard let a = v.array else { throw fail("\(what) should be an array of numbers, got \(v.text.prefix(60))") }
        return try a.map {
            guard let d = $0.double, d.isFinite else { throw fail("\(what) should hold only numbers, got \($0.text.prefix(30))") }
            return Float(d)
        }
    }

    static func cameraFromJSON(_ c: JSON, _ fail: (String) -> OperatorError) throws -> PinholeCamera {
        guard c.objectMembers != nil else { throw fail("'camera' should be an object, got \(c.kindName)") }
        func number(_ key: String) throws -> Double {
            guard let v = c[key] else { throw fail("the camera key '\(key)' is missing") }
            guard let d = v.double, d.isFinite else { throw fail("camera '\(key)' should be a number, got \(v.text)") }
            return d
        }
        let fx = try number("fx"), fy = try number("fy"), cx = try number("cx"), cy = try number("cy")
        guard fx > 0, fy > 0 else { throw fail("camera fx and fy should be positive, got \(fx) and \(fy)") }
        let w = try number("width"), h = try number("height")
        guard w >= 1, h >= 1, w.rounded() == w, h.rounded() == h else {
            throw fail("camera width and height should be positive integers, got \(w) and \(h)")
        }
        guard let matrix = c["world_to_camera"] else { throw fail("the camera key 'world_to_camera' is missing") }
        guard let rows = matrix.array, rows.count == 4 else { throw fail("camera 'world_to_camera' should be four rows of four numbers") }
        var m: [Float] = []
        for row in rows {
            let r = try numbers(row, "camera 'world_to_camera'", fail)
            guard r.count == 4 else { throw fail("camera 'world_to_camera' should be four rows of four numbers") }
            m += r
        }
        try checkLastRow(m, fail)
        return PinholeCamera(fx: fx, fy: fy, cx: cx, cy: cy, width: Int(w), height: Int(h), worldToCamera: m)
    }

    static func checkLastRow(_ m: [Float], _ fail: (String) -> OperatorError) throws {
        guard abs(m[12]) < 1e-6, abs(m[13]) < 1e-6, abs(m[14]) < 1e-6, abs(m[15] - 1) < 1e-6 else {
            throw fail("the last row of 'world_to_camera' should be [0, 0, 0, 1], got \(Array(m[12...]))")
        }
    }

    // MARK: NPZ

    static func readNPZ(_ url: URL, model: String) throws -> TrackingSequence {
        let a = try ImportArrays(url)
        // The camera is required; a missing key is named before anything else.
        for key in ["intrinsics", "image_size", "world_to_camera"] { _ = try a.tensor(key) }
        // Which keys are per frame decides T; they must agree.
        var counts: [(key: String, frames: Int)] = []
        func leading(_ key: String, perFrameRank: Int) throws {
            guard a.has(key) else { return }
            let t = try a.tensor(key)
            if t.rank == perFrameRank { counts.append((key, t.shape[0])) }
        }
        for (key, rank) in [("expression", 2), ("pose", 3), ("rotation", 2), ("translation", 2), ("jaw", 2),
                            ("intrinsics", 2), ("world_to_camera", 3), ("landmarks", 3)] {
            try leading(key, perFrameRank: rank)
        }
        let n = try commonFrameCount(counts, file: a.path)
        guard n > 0 else { throw a.fail("it has no frames ('\(counts[0].key)' is empty)") }

        let shape = a.has("shape") ? try a.tensor("shape").scalars : []
        func perFrame(_ key: String, width: Int?, staticAllowed: Bool) throws -> [[Float]]? {
            guard a.has(key) else { return nil }
            let t = try a.tensor(key)
            if staticAllowed, let width, t.count == width, !counts.contains(where: { $0.key == key }) {
                return [[Float]](repeating: t.scalars, count: n)
            }
            guard let rows = try a.rows(key, width: width) else { return nil }
            return rows
        }
        let expression = try perFrame("expression", width: nil, staticAllowed: false)
        let pose = try perFrame("pose", width: nil, staticAllowed: false)
        if a.has("pose") {
            let p = try a.tensor("pose")
            guard p.rank == 3, p.shape[2] == 3 else { throw a.fail("'pose' should be [T, J, 3], got shape \(p.shape)") }
        }
        let rotation = try perFrame("rotation", width: 3, staticAllowed: false)
        let translation = try perFrame("translation", width: 3, staticAllowed: false)
        let jaw = try perFrame("jaw", width: 3, staticAllowed: false)
        let intrinsics = try perFrame("intrinsics", width: 4, staticAllowed: true)!
        let extrinsics = try perFrame("world_to_camera", width: 16, staticAllowed: true)!
        let size = try a.tensor("image_size")
        guard size.count == 2, size.scalars.allSatisfy({ $0 >= 1 && $0.rounded() == $0 }) else {
            throw a.fail("'image_size' should be [width, height] in whole pixels, got \(size.scalars)")
        }
        var landmarks: [[Float]]?
        if a.has("landmarks") {
            let l = try a.tensor("landmarks")
            guard l.rank == 3, l.shape[2] == 2 else { throw a.fail("'landmarks' should be [T, L, 2], got shape \(l.shape)") }
            landmarks = try a.rows("landmarks", width: nil)
        }

        var frames: [TrackedFrame] = []
        for t in 0..<n {
            func vec(_ rows: [[Float]]?) -> SIMD3<Float> { rows.map { SIMD3($0[t][0], $0[t][1], $0[t][2]) } ?? .zero }
            let k = intrinsics[t]
            guard k[0] > 0, k[1] > 0 else { throw a.fail("frame \(t): 'intrinsics' fx and fy should be positive, got \(k[0]) and \(k[1])") }
            try checkLastRow(extrinsics[t]) { a.fail("frame \(t): \($0)") }
            let camera = PinholeCamera(fx: Double(k[0]), fy: Double(k[1]), cx: Double(k[2]), cy: Double(k[3]),
                                        width: Int(size.scalars[0]), height: Int(size.scalars[1]), worldToCamera: extrinsics[t])
            let tracking = Tracking(model: model, shape: shape, expression: expression?[t] ?? [], pose: pose?[t] ?? [],
                                    rotation: vec(rotation), translation: vec(translation), jaw: vec(jaw))
            frames.append(TrackedFrame(tracking: tracking, camera: camera, landmarks: landmarks?[t]))
        }
        return TrackingSequence(source: a.path, format: .pgflow, frames: frames)
    }

    // MARK: writing

    /// Writes frames in the format, as JSON or NPZ by the file's extension (atomically). `model` is
    /// written into JSON as given ("builtin:head" or a path, best relative to the file); NPZ does not
    /// store it. The format holds one shape β for the clip, so every frame must have the same one.
    public static func write(_ frames: [TrackedFrame], model: String, to url: URL) throws {
        let bytes = try data(frames, model: model, for: url)
        do { try AtomicFile.write(bytes, to: url) } catch {
            throw OperatorError("Cannot write the tracking file '\(url.path)': \(error)")
        }
    }

    /// The bytes `write` would put in `url` (JSON or NPZ by its extension).
    public static func data(_ frames: [TrackedFrame], model: String, for url: URL) throws -> Data {
        func fail(_ what: String) -> OperatorError { OperatorError("Cannot write the tracking file '\(url.path)': \(what)") }
        guard !frames.isEmpty else { throw fail("there are no frames") }
        let shape = frames[0].tracking.shape
        for (t, f) in frames.enumerated() where f.tracking.shape != shape {
            throw fail("frame \(t) has a different shape β than frame 0; the format stores one shape for the clip")
        }
        for (t, f) in frames.enumerated() {
            let values = f.tracking.shape + f.tracking.expression + f.tracking.pose + (f.landmarks ?? []) + f.camera.worldToCamera
                + [f.tracking.rotation.x, f.tracking.rotation.y, f.tracking.rotation.z, f.tracking.translation.x,
                   f.tracking.translation.y, f.tracking.translation.z, f.tracking.jaw.x, f.tracking.jaw.y, f.tracking.jaw.z]
            guard values.allSatisfy(\.isFinite), [f.camera.fx, f.camera.fy, f.camera.cx, f.camera.cy].allSatisfy(\.isFinite) else {
                throw fail("frame \(t) holds a value that is not finite")
            }
        }
        switch url.pathExtension.lowercased() {
        case "json": return Data(jsonText(frames, model: model, shape: shape).utf8)
        case "npz": return try npzData(frames, shape: shape, fail: fail)
        default: throw fail("a pgflow tracking file ends in .json or .npz")
        }
    }

    static func jsonText(_ frames: [TrackedFrame], model: String, shape: [Float]) -> String {
        func num(_ f: Float) -> String { f == 0 ? "0" : "\(f)" }
        func num(_ d: Double) -> String { d.rounded() == d && abs(d) < 1e15 ? String(Int64(d)) : "\(d)" }
        func list(_ v: [Float]) -> String { "[" + v.map(num).joined(separator: ", ") + "]" }
        func rows(_ v: [Float], _ width: Int) -> String {
            "[" + stride(from: 0, to: v.count, by: width).map { list(Array(v[$0..<($0 + width)])) }.joined(separator: ", ") + "]"
        }
        func vec(_ v: SIMD3<Float>) -> String { list([v.x, v.y, v.z]) }
        var out = "{\n  \"format\": \"\(formatName)\",\n  \"version\": \(version),\n  \"model\": \(JSON.quote(model)),\n"
        out += "  \"shape\": \(list(shape)),\n  \"frames\": [\n"
        out += frames.map { f in
            let c = f.camera
            var fields = ["\"expression\": \(list(f.tracking.expression))"]
            if !f.tracking.pose.isEmpty { fields.append("\"pose\": \(rows(f.tracking.pose, 3))") }
            fields += ["\"rotation\": \(vec(f.tracking.rotation))", "\"translation\": \(vec(f.tracking.translation))",
                       "\"jaw\": \(vec(f.tracking.jaw))",
                       "\"camera\": {\"fx\": \(num(c.fx)), \"fy\": \(num(c.fy)), \"cx\": \(num(c.cx)), \"cy\": \(num(c.cy)), "
                       + "\"width\": \(c.width), \"height\": \(c.height), \"world_to_camera\": \(rows(c.worldToCamera, 4))}"]
            if let l = f.landmarks { fields.append("\"landmarks\": \(rows(l, 2))") }
            return "    {" + fields.joined(separator: ", ") + "}"
        }.joined(separator: ",\n")
        return out + "\n  ]\n}\n"
    }

    static func npzData(_ frames: [TrackedFrame], shape: [Float], fail: (String) -> OperatorError) throws -> Data {
        let n = frames.count
        let first = frames[0].camera
        for (t, f) in frames.enumerated() where f.camera.width != first.width || f.camera.height != first.height {
            throw fail("frame \(t)'s camera is \(f.camera.width)×\(f.camera.height) but frame 0's is \(first.width)×\(first.height); the NPZ layout has one image_size (use .json)")
        }
        // Expressions may differ in length (absent = zeros): pad to the longest.
        let e = frames.map(\.tracking.expression.count).max() ?? 0
        let joints = frames.map { $0.tracking.pose.count / 3 }.max() ?? 0
        for (t, f) in frames.enumerated() where !f.tracking.pose.isEmpty && f.tracking.pose.count != 3 * joints {
            throw fail("frame \(t) has \(f.tracking.pose.count / 3) pose rows but another frame has \(joints)")
        }
        var arrays: [(String, Tensor)] = [("shape", Tensor(shape: [shape.count], scalars: shape))]
        arrays.append(("expression", Tensor(shape: [n, e], scalars: frames.flatMap {
            $0.tracking.expression + [Float](repeating: 0, count: e - $0.tracking.expression.count)
        })))
        if joints > 0 {
            arrays.append(("pose", Tensor(shape: [n, joints, 3], scalars: frames.flatMap {
                $0.tracking.pose.isEmpty ? [Float](repeating: 0, count: 3 * joints) : $0.tracking.pose
            })))
        }
        for (key, get) in [("rotation", \Tracking.rotation), ("translation", \Tracking.translation), ("jaw", \Tracking.jaw)] {
            arrays.append((key, Tensor(shape: [n, 3], scalars: frames.flatMap { f -> [Float] in
                let v = f.tracking[keyPath: get]
                return [v.x, v.y, v.z]
            })))
        }
        arrays.append(("intrinsics", Tensor(shape: [n, 4], scalars: frames.flatMap {
            [Float($0.camera.fx), Float($0.camera.fy), Float($0.camera.cx), Float($0.camera.cy)]
        })))
        arrays.append(("image_size", Tensor(shape: [2], scalars: [Float(first.width), Float(first.height)])))
        arrays.append(("world_to_camera", Tensor(shape: [n, 4, 4], scalars: frames.flatMap(\.camera.worldToCamera))))
        if let l0 = frames[0].landmarks, frames.allSatisfy({ $0.landmarks?.count == l0.count }) {
            arrays.append(("landmarks", Tensor(shape: [n, l0.count / 2, 2], scalars: frames.flatMap { $0.landmarks! })))
        }
        return try NPZ.data(arrays)
    }
}
