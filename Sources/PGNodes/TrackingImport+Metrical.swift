import Foundation
import PGFlow
import PGTensor

/// metrical-tracker's per-frame checkpoints (`checkpoint/00000.frame`, …, saved as NPZ or JSON):
/// one file per frame, a folder read in natural name order.
///
/// Keys: `flame` {`exp [1, E]`, `shape [1, S]`, `jaw [1, 6]`, `eyes [1, 12]`, `eyelids [1, 2]`,
/// `tex`, `sh` (ignored)} and `opencv` {`R [1, 3, 3]`, `t [1, 3]`, `K [1, 3, 3]`}, plus `img_size`
/// [height, width]. In NPZ the groups are flattened as `flame/exp` (also `flame.exp`, `flame_exp`);
/// in JSON they may be nested objects or flattened the same way. jaw and eyes are pytorch3d 6D
/// rotations (the first two rows of the matrix); 3 values per joint are read as axis-angle.
///
/// The camera is OpenCV already (pytorch3d's `opencv_from_cameras_projection`, whose principal
/// point puts pixel centres at +½ like pgflow): p_cam = R·p + t, pixel = K·p_cam / z. Without
/// `img_size` the image is 2·cx × 2·cy.
///
/// The Tracking record uses FLAME's joints: 0 root (metrical keeps it at identity), 1 neck, 2 jaw
/// (`jaw`), 3–4 eyes. `eyelids` has no FLAME blendshape, so it is kept in the record under its own
/// key and does not move the mesh.
extension TrackingImport {
    static let flameJointCount = 5

    static func metrical(_ url: URL, model: String) throws -> TrackingSequence {
        let files: [URL]
        if isDirectory(url) {
            let names: [String]
            do { names = try FileManager.default.contentsOfDirectory(atPath: url.path) } catch {
                throw OperatorError("Cannot import the tracking folder '\(url.path)': it cannot be listed (\(error.localizedDescription))")
            }
            let frames = names.filter { ["npz", "json"].contains(($0 as NSString).pathExtension.lowercased()) }
                .sorted { $0.compare($1, options: [.numeric]) == .orderedAscending }
            guard !frames.isEmpty else {
                let pickles = names.filter { ["frame", "pth", "pt"].contains(($0 as NSString).pathExtension.lowercased()) }
                throw OperatorError("Cannot import the tracking folder '\(url.path)': it holds no .npz or .json metrical-tracker frames"
                                    + (pickles.isEmpty ? "" : " (it has \(pickles.count) PyTorch files such as '\(pickles.sorted()[0])'; \(conversionHint))"))
            }
            files = frames.map { url.appendingPathComponent($0) }
        } else {
            files = [url]
        }
        let frames = try files.map { try metricalFrame($0, model: model) }
        return TrackingSequence(source: url.path, format: .metrical, frames: frames)
    }

    /// One metrical-tracker frame file.
    static func metricalFrame(_ url: URL, model: String) throws -> TrackedFrame {
        let fields = try MetricalFields(url)
        let exp = try fields.require("flame", "exp")
        let shape = try fields.require("flame", "shape")
        let jaw = try fields.rotations("flame", "jaw", joints: 1, required: true)
        let eyes = try fields.rotations("flame", "eyes", joints: 2, required: false)
        let r = try fields.require("opencv", "R")
        let t = try fields.require("opencv", "t")
        let k = try fields.require("opencv", "K")
        guard r.count == 9 else { throw fields.fail("'opencv/R' should be a 3×3 matrix, got \(r.count) values") }
        guard t.count == 3 else { throw fields.fail("'opencv/t' should have 3 values, got \(t.count)") }
        guard k.count == 9 else { throw fields.fail("'opencv/K' should be a 3×3 matrix, got \(k.count) values") }
        let fx = Double(k[0]), fy = Double(k[4]), cx = Double(k[2]), cy = Double(k[5])
        guard fx > 0, fy > 0 else { throw fields.fail("'opencv/K' should have positive fx and fy, got \(fx) and \(fy)") }
        var (width, height) = (Int((2 * cx).rounded()), Int((2 * cy).rounded()))
        if let size = try fields.values("img_size") {
            guard size.count == 2, size.allSatisfy({ $0 >= 1 && $0.rounded() == $0 }) else {
                throw fields.fail("'img_size' should be [height, width] in whole pixels, got \(size)")
            }
            (width, height) = (Int(size[1]), Int(size[0]))
        }
        guard width >= 1, height >= 1 else { throw fields.fail("without 'img_size' the image is 2·cx × 2·cy, which is empty here") }
        let camera = PinholeCamera(fx: fx, fy: fy, cx: cx, cy: cy, width: width, height: height,
                                    rotation: Matrix3(rowMajor: r), translation: SIMD3(Double(t[0]), Double(t[1]), Double(t[2])))

        var pose = [Float](repeating: 0, count: 3 * flameJointCount)
        if let eyes { pose.replaceSubrange(9..<15, with: eyes) }
        var extras: [String: Tensor] = [:]
        if let lids = try fields.values("flame", "eyelids") { extras["eyelids"] = Tensor(shape: [lids.count], scalars: lids) }
        let tracking = Tracking(model: model, shape: shape, expression: exp, pose: pose, jaw: SIMD3(jaw![0], jaw![1], jaw![2]))
        return TrackedFrame(tracking: tracking, camera: camera, extras: extras)
    }
}

/// The arrays of one metrical-tracker frame, from NPZ (flattened keys) or JSON (nested or flattened).
struct MetricalFields {
    let path: String
    private let lookup: (String) throws -> [Float]?
    private let names: [String]

    init(_ url: URL) throws {
        path = url.path
        switch url.pathExtension.lowercased() {
        case "npz":
            let a = try ImportArrays(url)
            names = a.archive.names.sorted()
            lookup = { a.has($0) ? try a.tensor($0).scalars : nil }
        case "json":
            let root = try TrackingFile.parseJSON(url)
            names = root.objectMembers!.map(\.key).sorted()
            let file = url.path
            lookup = { key in
                var node: JSON? = root[key]
                if node == nil, let slash = key.firstIndex(of: "/") {
                    node = root[String(key[..<slash])]?[String(key[key.index(after: slash)...])]
                }
                guard let node else { return nil }
                var out: [Float] = []
                func flatten(_ v: JSON) throws {
                    if let a = v.array { for e in a { try flatten(e) } } else if let d = v.double, d.isFinite { out.append(Float(d)) } else {
                        throw OperatorError("Cannot import the tracking file '\(file)': '\(key)' should hold only numbers, got \(v.text.prefix(30))")
                    }
                }
                try flatten(node)
                return out
            }
        default:
            throw OperatorError("Cannot import the tracking file '\(url.path)': a metrical-tracker frame should be .npz or .json; \(TrackingImport.conversionHint)")
        }
    }

    func fail(_ what: String) -> OperatorError { OperatorError("Cannot import the tracking file '\(path)': \(what)") }

    /// `group/key` under any of its spellings (or `key` alone when `group` is empty).
    func values(_ group: String, _ key: String) throws -> [Float]? {
        for k in ["\(group)/\(key)", "\(group).\(key)", "\(group)_\(key)"] {
            if let v = try lookup(k) { return v }
        }
        return nil
    }

    func values(_ key: String) throws -> [Float]? { try lookup(key) }

    func require(_ group: String, _ key: String) throws -> [Float] {
        guard let v = try values(group, key) else {
            throw fail("the key '\(group)/\(key)' is missing (it has: \(names.joined(separator: ", ")))")
        }
        return v
    }

    /// Rotations of `joints` joints as axis-angle: 6 values each (pytorch3d 6D) or 3 (axis-angle).
    func rotations(_ group: String, _ key: String, joints: Int, required: Bool) throws -> [Float]? {
        guard let v = required ? try require(group, key) : try values(group, key) else { return nil }
        if v.count == 3 * joints { return v }
        guard v.count == 6 * joints else {
            throw fail("'\(group)/\(key)' should hold \(joints) rotation\(joints == 1 ? "" : "s") as 6D (\(6 * joints) values) or axis-angle (\(3 * joints)), got \(v.count) values")
        }
        var out: [Float] = []
        for j in 0..<joints {
            guard let m = Matrix3(sixD: Array(v[(6 * j)..<(6 * j + 6)])) else {
                throw fail("'\(group)/\(key)' holds a degenerate 6D rotation (its two rows are parallel or zero)")
            }
            let w = m.axisAngle
            out += [Float(w.x), Float(w.y), Float(w.z)]
        }
        return out
    }
}
