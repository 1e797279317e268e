import Crypto
import Foundation
import PGFlow
import PGTensor

/// Writes per-frame tracking, cameras and (optionally) 2D landmarks as a pgflow tracking file
/// (`"format": "pgflow-tracking"`, version 1), JSON or NPZ by the path's extension, the format the
/// Tracker node imports. See `Nodes/TrackingExport.json` for the layout.
public struct TrackingExport: FrameSink {
    public static let type = "TrackingExport"
    public static let version = 1

    enum Format { case json, npz }
    let url: URL
    let format: Format

    public init(params: Params) throws {
        url = try params.url("path").standardizedFileURL
        switch url.pathExtension.lowercased() {
        case "json": format = .json
        case "npz": format = .npz
        default: throw OperatorError("param 'path' should end in .json or .npz, got '\(url.lastPathComponent)'")
        }
    }

    /// One frame as the file stores it.
    struct Frame {
        var tracking: Tracking
        var camera: PinholeCamera
        var worldToCamera: [Float]   // [16]
        var landmarks: Tensor?       // [L, 2]
    }

    public func consume(_ frames: FrameStream, inputs: Inputs, context: RunContext) throws -> [String: Value] {
        var collected: [Frame] = []
        while let (t, frameInputs) = try frames.next() {
            try context.checkCancelled()
            func at(_ error: Error) -> OperatorError { OperatorError("frame \(t): \(error)") }
            do {
                let tracking = try Tracking(value: try frameInputs.value("tracking"))
                let cameraRecord = try frameInputs.record("camera")
                let camera = try PinholeCamera(record: cameraRecord, what: "input 'camera'")
                let w2c = cameraRecord["world_to_camera"]!.tensor!.scalars
                var landmarks: Tensor?
                if let value = frameInputs["landmarks"] {
                    guard let l = value.tensor, l.rank == 2, l.shape[1] == 2 else {
                        throw OperatorError("input 'landmarks' should be a [L, 2] tensor, got \(value.summary)")
                    }
                    landmarks = l
                }
                collected.append(Frame(tracking: tracking, camera: camera, worldToCamera: w2c, landmarks: landmarks))
            } catch { throw at(error) }
            context.progress(collected.count, of: frames.count)
        }
        guard !collected.isEmpty else { throw OperatorError("no frames to write to '\(url.path)'") }
        let table = try Table(collected)
        let data: Data
        switch format {
        case .json: data = Data(try table.json(modelName: relativeModelName(table.model)).utf8)
        case .npz:
            do { data = try NPZ.data(table.npzArrays()) } catch { throw OperatorError("Cannot encode '\(url.path)': \(error)") }
        }
        try Self.writeAtomically(data, to: url)
        let digest = SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
        return ["file": .record(["path": .string(url.path), "sha256": .string(digest)])]
    }

    /// A model file named by an absolute path is written relative to the tracking file's folder, as
    /// the format says; `builtin:` names and relative paths stay as they are.
    func relativeModelName(_ model: String) -> String {
        guard model.hasPrefix("/") else { return model }
        let from = url.deletingLastPathComponent().pathComponents, to = URL(fileURLWithPath: model).standardizedFileURL.pathComponents
        var common = 0
        while common < min(from.count, to.count) && from[common] == to[common] { common += 1 }
        return (Array(repeating: "..", count: from.count - common) + to[common...]).joined(separator: "/")
    }

    /// Writes under a hidden temporary name in the destination's folder, flushes, then renames, so a
    /// failed run never leaves a file that looks finished.
    static func writeAtomically(_ data: Data, to url: URL) throws {
        let fm = FileManager.default
        let path = url.path
        let folder = url.deletingLastPathComponent()
        var isDir: ObjCBool = false
        if fm.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue {
            throw OperatorError("Cannot write '\(path)': it is an existing folder, not a file")
        }
        do { try fm.createDirectory(at: folder, withIntermediateDirectories: true) } catch {
            throw OperatorError("Cannot write '\(path)': its folder cannot be created (\(error.localizedDescription))")
        }
        let staging = folder.appendingPathComponent(".\(url.lastPathComponent).partial-\(String(UInt64.random(in: 0...UInt64.max), radix: 16))")
        guard fm.createFile(atPath: staging.path, contents: data) else {
            throw OperatorError("Cannot write '\(path)': a file cannot be created in '\(folder.path)'")
        }
        let fd = open(staging.path, O_RDONLY)
        if fd >= 0 { _ = fsync(fd); close(fd) }
        if rename(staging.path, path) != 0 {
            let cause = String(cString: strerror(errno))
            try? fm.removeItem(at: staging)
            throw OperatorError("Cannot write '\(path)': the finished file cannot be moved into place (\(cause))")
        }
        let dirFD = open(folder.path, O_RDONLY)
        if dirFD >= 0 { _ = fsync(dirFD); close(dirFD) }
    }
}

extension TrackingExport {
    /// The frames checked for what one file can hold: one model, one shape, one image size, one
    /// landmark count; expressions zero-padded to the longest, missing poses zero-filled.
    struct Table {
        let model: String
        let shape: [Float]
        let expressionCount: Int
        let jointCount: Int          // 0: no pose stored
        let landmarkCount: Int?      // nil: no landmarks stored
        let frames: [Frame]

        init(_ frames: [Frame]) throws {
            let first = frames[0]
            model = first.tracking.model
            shape = first.tracking.shape
            expressionCount = frames.map(\.tracking.expression.count).max()!
            jointCount = frames.map { $0.tracking.pose.count / 3 }.max()!
            landmarkCount = first.landmarks?.shape[0]
            for (t, f) in frames.enumerated() {
                func fail(_ what: String) -> OperatorError { OperatorError("frame \(t): \(what)") }
                guard f.tracking.model == model else { throw fail("tracking model \"\(f.tracking.model)\" differs from frame 0's \"\(model)\"; a tracking file holds one model") }
                guard f.tracking.shape == shape else { throw fail("tracking shape differs from frame 0's; a tracking file holds one shape") }
                guard f.tracking.pose.isEmpty || f.tracking.pose.count == 3 * jointCount else {
                    throw fail("tracking pose has \(f.tracking.pose.count / 3) joints, other frames \(jointCount)")
                }
                guard f.camera.width == first.camera.width && f.camera.height == first.camera.height else {
                    throw fail("the camera is \(f.camera.width)×\(f.camera.height), frame 0's \(first.camera.width)×\(first.camera.height); a tracking file holds one image size")
                }
                guard f.landmarks?.shape[0] == landmarkCount else {
                    throw fail("\(f.landmarks.map { "\($0.shape[0])" } ?? "no") landmarks, frame 0 has \(landmarkCount.map(String.init) ?? "none")")
                }
                let numbers = f.tracking.shape + f.tracking.expression + f.tracking.pose + f.worldToCamera + (f.landmarks?.scalars ?? [])
                    + [f.tracking.rotation, f.tracking.translation, f.tracking.jaw].flatMap { [$0.x, $0.y, $0.z] }
                guard numbers.allSatisfy(\.isFinite) else { throw fail("the tracking, camera or landmarks hold a non-finite number") }
            }
            self.frames = frames
        }

        func expression(_ f: Frame) -> [Float] {
            f.tracking.expression + [Float](repeating: 0, count: expressionCount - f.tracking.expression.count)
        }

        func pose(_ f: Frame) -> [Float] {
            f.tracking.pose.isEmpty ? [Float](repeating: 0, count: 3 * jointCount) : f.tracking.pose
        }

        // MARK: JSON

        func json(modelName: String) throws -> String {
            func num(_ x: Float) -> String { x.rounded() == x && abs(x) < 1e7 ? String(Int(x)) : "\(x)" }
            func num(_ x: Double) -> String { x.rounded() == x && abs(x) < 1e15 ? String(Int64(x)) : "\(x)" }
            func list(_ xs: [Float]) -> String { "[" + xs.map(num).joined(separator: ", ") + "]" }
            func rows(_ xs: [Float], _ width: Int) -> String {
                "[" + stride(from: 0, to: xs.count, by: width).map { list(Array(xs[$0..<($0 + width)])) }.joined(separator: ", ") + "]"
            }
            func vec(_ v: SIMD3<Float>) -> String { list([v.x, v.y, v.z]) }
            func string(_ s: String) -> String {
                var out = "\""
                for u in s.unicodeScalars {
                    switch u {
                    case "\"": out += "\\\""
                    case "\\": out += "\\\\"
                    case _ where u.value < 0x20: out += String(format: "\\u%04x", u.value)
                    default: out.unicodeScalars.append(u)
                    }
                }
                return out + "\""
            }
            var lines = ["{", "  \"format\": \"pgflow-tracking\",", "  \"version\": 1,",
                         "  \"model\": \(string(modelName)),", "  \"shape\": \(list(shape)),", "  \"frames\": ["]
            for (t, f) in frames.enumerated() {
                let c = f.camera
                var members = ["\"expression\": \(list(expression(f)))"]
                if jointCount > 0 { members.append("\"pose\": \(rows(pose(f), 3))") }
                members += ["\"rotation\": \(vec(f.tracking.rotation))", "\"translation\": \(vec(f.tracking.translation))",
                            "\"jaw\": \(vec(f.tracking.jaw))",
                            "\"camera\": {\"fx\": \(num(c.fx)), \"fy\": \(num(c.fy)), \"cx\": \(num(c.cx)), \"cy\": \(num(c.cy)), "
                                + "\"width\": \(c.width), \"height\": \(c.height), \"world_to_camera\": \(rows(f.worldToCamera, 4))}"]
                if let l = f.landmarks { members.append("\"landmarks\": \(rows(l.scalars, 2))") }
                lines.append("    {" + members.joined(separator: ", ") + "}" + (t + 1 < frames.count ? "," : ""))
            }
            lines += ["  ]", "}", ""]
            return lines.joined(separator: "\n")
        }

        // MARK: NPZ

        func npzArrays() -> [(String, Tensor)] {
            let n = frames.count
            func stack(_ shape: [Int], _ values: (Frame) -> [Float]) -> Tensor {
                Tensor(shape: [n] + shape, scalars: frames.flatMap(values))
            }
            func vec(_ v: SIMD3<Float>) -> [Float] { [v.x, v.y, v.z] }
            var arrays: [(String, Tensor)] = [
                ("shape", Tensor(shape: [shape.count], scalars: shape)),
                ("expression", stack([expressionCount], expression)),
            ]
            if jointCount > 0 { arrays.append(("pose", stack([jointCount, 3], pose))) }
            arrays += [
                ("rotation", stack([3]) { vec($0.tracking.rotation) }),
                ("translation", stack([3]) { vec($0.tracking.translation) }),
                ("jaw", stack([3]) { vec($0.tracking.jaw) }),
                ("intrinsics", stack([4]) { [Float($0.camera.fx), Float($0.camera.fy), Float($0.camera.cx), Float($0.camera.cy)] }),
                ("image_size", Tensor(shape: [2], scalars: [Float(frames[0].camera.width), Float(frames[0].camera.height)])),
                ("world_to_camera", stack([4, 4]) { $0.worldToCamera }),
            ]
            if let l = landmarkCount { arrays.append(("landmarks", stack([l, 2]) { $0.landmarks!.scalars })) }
            return arrays
        }
    }
}
