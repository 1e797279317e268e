import Foundation
import PGFlow
import PGTensor

/// The tracking-file layouts the Tracker imports (see `Nodes/Tracker.json`).
public enum TrackingFormat: String, Sendable, CaseIterable {
    /// pgflow's own JSON/NPZ format (`TrackingFile`).
    case pgflow
    /// PortraitGen's SMPL-X track (`smplx_track.pth` saved as NPZ).
    case portraitgen
    /// metrical-tracker's per-frame checkpoints (`*.frame` saved as NPZ or JSON).
    case metrical
}

/// One tracked frame: the model parameters, the camera, and 2D landmarks where the file has them.
public struct TrackedFrame: Sendable, Equatable {
    public var tracking: Tracking
    public var camera: PinholeCamera
    /// `[L, 2]` pixel positions in `camera`'s image (pixel centres at +½), when the file has them.
    public var landmarks: [Float]?
    /// Per-frame values with no place in `Tracking` that are kept in the record under their own key
    /// (metrical-tracker's `eyelids`).
    public var extras: [String: Tensor]

    public init(tracking: Tracking, camera: PinholeCamera, landmarks: [Float]? = nil, extras: [String: Tensor] = [:]) {
        self.tracking = tracking
        self.camera = camera
        self.landmarks = landmarks
        self.extras = extras
    }

    /// A frame from a `Tracking` and a `Camera` record (what a node holds per frame).
    public init(tracking: Value, camera: Value, landmarks: [Float]? = nil) throws {
        guard let c = camera.record else { throw OperatorError("a Camera value should be a record, got \(camera.summary)") }
        self.init(tracking: try Tracking(value: tracking), camera: try PinholeCamera(record: c, what: "the camera"),
                  landmarks: landmarks)
    }

    /// The `Tracking` record with the extras added.
    public var trackingValue: Value {
        guard case .record(var r) = tracking.value else { return tracking.value }
        for (k, t) in extras { r[k] = .tensor(t) }
        return .record(r)
    }
}

/// What an import yields: every frame, in order.
public struct TrackingSequence: Sendable, Equatable {
    /// The file or folder it was read from.
    public var source: String
    public var format: TrackingFormat
    public var frames: [TrackedFrame]

    public init(source: String, format: TrackingFormat, frames: [TrackedFrame]) {
        self.source = source
        self.format = format
        self.frames = frames
    }
}


// MARK: - Reading arrays with errors that name the file and key

/// An NPZ file read for import: every failure names the file and the key.
struct ImportArrays {
    let path: String
    let archive: NPZArchive

    init(_ url: URL) throws {
        path = url.path
        do { archive = try NPZArchive(url: url) } catch {
            throw OperatorError("Cannot import the tracking file '\(url.path)': \(FileManager.default.fileExists(atPath: url.path) ? "it is not a readable .npz archive (\(error))" : "no such file")")
        }
    }

    func fail(_ what: String) -> OperatorError { OperatorError("Cannot import the tracking file '\(path)': \(what)") }

    /// The first of `keys` the archive holds.
    func find(_ keys: [String]) -> String? { keys.first { archive.contains($0) } }

    func has(_ key: String) -> Bool { archive.contains(key) }

    func tensor(_ key: String) throws -> Tensor {
        guard archive.contains(key) else {
            throw fail("the key '\(key)' is missing (it has: \(archive.names.sorted().joined(separator: ", ")))")
        }
        let t: Tensor
        do { t = try archive.tensor(key) } catch { throw fail("'\(key)' cannot be read (\(error))") }
        guard t.scalars.allSatisfy(\.isFinite) else { throw fail("'\(key)' holds a value that is not finite") }
        return t
    }

    /// The first of `keys` that is present, as a tensor; a missing one names them all.
    func tensor(anyOf keys: [String]) throws -> Tensor {
        guard let k = find(keys) else {
            throw fail("the key '\(keys[0])' is missing\(keys.count > 1 ? " (also looked for \(keys.dropFirst().map { "'\($0)'" }.joined(separator: ", ")))" : "") (it has: \(archive.names.sorted().joined(separator: ", ")))")
        }
        return try tensor(k)
    }

    /// A per-frame array `[T, …]` with `width` values per frame, as T rows; a static `[width]` or
    /// `[1, …]` array (when `broadcast`) is one row that the caller repeats.
    func rows(_ key: String, width: Int?, broadcast: Bool = false) throws -> [[Float]]? {
        guard has(key) else { return nil }
        let t = try tensor(key)
        if let width, broadcast, t.count == width, t.rank <= 2 { return [t.scalars] }
        guard t.rank >= 2 || (t.rank == 1 && width == 1) else {
            throw fail("'\(key)' should be per frame, [T\(width.map { ", \($0)" } ?? ", …")], got shape \(t.shape)")
        }
        let frames = t.shape[0]
        let per = frames == 0 ? 0 : t.count / frames
        if let width, per != width {
            throw fail("'\(key)' should have \(width) values per frame, got shape \(t.shape)")
        }
        return (0..<frames).map { Array(t.scalars[($0 * per)..<(($0 + 1) * per)]) }
    }
}

/// Checks that every per-frame array has the same number of frames; names the disagreeing keys.
func commonFrameCount(_ counts: [(key: String, frames: Int)], file: String) throws -> Int {
    guard let first = counts.first else { return 1 }
    for c in counts.dropFirst() where c.frames != first.frames {
        throw OperatorError("Cannot import the tracking file '\(file)': '\(first.key)' has \(first.frames) frames but '\(c.key)' has \(c.frames)")
    }
    return first.frames
}

// MARK: - Rotations

/// A 3×3 matrix as rows, in Double: the importers convert rotations between conventions.
struct Matrix3: Equatable, Sendable {
    var r0: SIMD3<Double>, r1: SIMD3<Double>, r2: SIMD3<Double>

    init(_ r0: SIMD3<Double>, _ r1: SIMD3<Double>, _ r2: SIMD3<Double>) { self.r0 = r0; self.r1 = r1; self.r2 = r2 }
    /// From nine row-major values.
    init(rowMajor m: [Float]) {
        precondition(m.count == 9, "a 3×3 matrix needs 9 values")
        let d = m.map(Double.init)
        self.init(SIMD3(d[0], d[1], d[2]), SIMD3(d[3], d[4], d[5]), SIMD3(d[6], d[7], d[8]))
    }

    static let identity = Matrix3(SIMD3(1, 0, 0), SIMD3(0, 1, 0), SIMD3(0, 0, 1))
    /// diag(1, −1, −1): the flip of Y and Z between OpenCV and OpenGL-style camera axes.
    static let flipYZ = Matrix3(SIMD3(1, 0, 0), SIMD3(0, -1, 0), SIMD3(0, 0, -1))

    subscript(row: Int) -> SIMD3<Double> { [r0, r1, r2][row] }
    var transposed: Matrix3 { Matrix3(SIMD3(r0.x, r1.x, r2.x), SIMD3(r0.y, r1.y, r2.y), SIMD3(r0.z, r1.z, r2.z)) }
    var trace: Double { r0.x + r1.y + r2.z }

    static func * (a: Matrix3, b: Matrix3) -> Matrix3 {
        let bt = b.transposed
        func row(_ r: SIMD3<Double>) -> SIMD3<Double> { SIMD3((r * bt.r0).sum(), (r * bt.r1).sum(), (r * bt.r2).sum()) }
        return Matrix3(row(a.r0), row(a.r1), row(a.r2))
    }
    static func * (a: Matrix3, v: SIMD3<Double>) -> SIMD3<Double> { SIMD3((a.r0 * v).sum(), (a.r1 * v).sum(), (a.r2 * v).sum()) }

    /// Rodrigues' formula: the rotation by |ω| about ω (column-vector convention, as smplx and
    /// pytorch3d's `so3_exp_map` build it).
    init(axisAngle w: SIMD3<Double>) {
        let theta = (w * w).sum().squareRoot()
        let k = Matrix3(SIMD3(0, -w.z, w.y), SIMD3(w.z, 0, -w.x), SIMD3(-w.y, w.x, 0))
        let a = theta < 1e-6 ? 1 - theta * theta / 6 : sin(theta) / theta
        let b = theta < 1e-6 ? 0.5 - theta * theta / 24 : (1 - cos(theta)) / (theta * theta)
        let kk = k * k
        self.init(SIMD3(1, 0, 0) + a * k.r0 + b * kk.r0, SIMD3(0, 1, 0) + a * k.r1 + b * kk.r1,
                  SIMD3(0, 0, 1) + a * k.r2 + b * kk.r2)
    }

    /// pytorch3d's `rotation_6d_to_matrix`: the first two rows by Gram–Schmidt, the third their
    /// cross product (metrical-tracker stores jaw and eye rotations this way).
    init?(sixD d: [Float]) {
        guard d.count == 6 else { return nil }
        let a1 = SIMD3(Double(d[0]), Double(d[1]), Double(d[2])), a2 = SIMD3(Double(d[3]), Double(d[4]), Double(d[5]))
        let n1 = (a1 * a1).sum().squareRoot()
        guard n1 > 1e-12 else { return nil }
        let b1 = a1 / n1
        let o = a2 - (b1 * a2).sum() * b1
        let n2 = (o * o).sum().squareRoot()
        guard n2 > 1e-12 else { return nil }
        let b2 = o / n2
        let b3 = SIMD3(b1.y * b2.z - b1.z * b2.y, b1.z * b2.x - b1.x * b2.z, b1.x * b2.y - b1.y * b2.x)
        self.init(b1, b2, b3)
    }

    /// The axis-angle vector of a rotation matrix (angle in [0, π]).
    var axisAngle: SIMD3<Double> {
        let vee = SIMD3(r2.y - r1.z, r0.z - r2.x, r1.x - r0.y)   // 2 sin θ · axis
        // atan2 of sin and cos stays accurate where acos of the trace alone loses digits (near π).
        let cosTheta = min(1, max(-1, (trace - 1) / 2))
        let theta = atan2(0.5 * (vee * vee).sum().squareRoot(), cosTheta)
        if theta < 1e-6 { return 0.5 * vee }
        if theta < 0.75 * Double.pi { return theta / (2 * sin(theta)) * vee }
        // Near π, sin θ is small: read the axis from the symmetric part, (M + Mᵀ)/2 − cos θ·I =
        // (1 − cos θ)·k·kᵀ (its largest row is the best conditioned), and its sign from the skew part.
        let t = transposed
        let b = Matrix3(0.5 * (r0 + t.r0) - SIMD3(cosTheta, 0, 0), 0.5 * (r1 + t.r1) - SIMD3(0, cosTheta, 0),
                        0.5 * (r2 + t.r2) - SIMD3(0, 0, cosTheta))
        let i = b.r0.x >= b.r1.y && b.r0.x >= b.r2.z ? 0 : (b.r1.y >= b.r2.z ? 1 : 2)
        var axis = b[i] / max(1e-300, (b[i] * b[i]).sum().squareRoot())
        if (axis * vee).sum() < 0 { axis = -axis }
        return theta * axis
    }
}

// MARK: - Format detection and dispatch

/// Reads tracking files in the formats the Tracker imports.
enum TrackingImport {
    /// How to turn a PyTorch file into something pgflow reads, for error messages.
    static let conversionHint = "pgflow reads NPZ or JSON, not PyTorch pickles; convert it first: for PortraitGen's track, "
        + "np.savez('smplx_track.npz', **torch.load('smplx_track.pth')); for a metrical-tracker frame f = torch.load('00000.frame'), "
        + "np.savez('00000.npz', img_size=f['img_size'], **{g + '/' + k: v for g in ('flame', 'opencv') for k, v in f[g].items()})"

    /// The format of a file or folder from its extension and keys.
    static func detect(_ url: URL) throws -> TrackingFormat {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw OperatorError("Cannot import the tracking file '\(url.path)': no such file or folder")
        }
        if isDirectory.boolValue { return .metrical }
        switch url.pathExtension.lowercased() {
        case "json":
            let root = try TrackingFile.parseJSON(url)
            if root["format"] != nil { return .pgflow }
            if root["flame"] != nil || root["opencv"] != nil || root["flame/exp"] != nil { return .metrical }
            throw OperatorError("Cannot import the tracking file '\(url.path)': it is neither a pgflow tracking file "
                                + "(no \"format\": \"\(TrackingFile.formatName)\") nor a metrical-tracker frame (no 'flame' and 'opencv' objects)")
        case "npz":
            let a = try ImportArrays(url)
            let names = a.archive.names
            if a.has("cam_angle") || a.has("body_pose") { return .portraitgen }
            if names.contains(where: { $0.hasPrefix("flame") || $0.hasPrefix("opencv") }) { return .metrical }
            if a.has("world_to_camera") || a.has("intrinsics") { return .pgflow }
            throw OperatorError("Cannot import the tracking file '\(url.path)': its keys (\(names.sorted().joined(separator: ", "))) "
                                + "match no known layout: pgflow has 'world_to_camera', PortraitGen 'cam_angle' and 'body_pose', "
                                + "metrical-tracker 'flame/exp' and 'opencv/R'")
        case "pth", "pt", "frame", "pkl", "tar":
            throw OperatorError("Cannot import the tracking file '\(url.path)': \(conversionHint)")
        default:
            throw OperatorError("Cannot import the tracking file '\(url.path)': expected a .json or .npz file or a folder of metrical-tracker frames")
        }
    }

    /// Every frame of `url` in `format`. `model` is the pgflow format's model when the file does not
    /// name one, and the label written into the other formats' tracking records.
    static func read(_ url: URL, format: TrackingFormat, model: String) throws -> TrackingSequence {
        switch format {
        case .pgflow:
            if FileManager.default.fileExists(atPath: url.path), url.hasDirectoryPath || isDirectory(url) {
                throw OperatorError("Cannot import the tracking file '\(url.path)': it is a folder; the pgflow format is one .json or .npz file")
            }
            return try TrackingFile.read(url, model: model)
        case .portraitgen:
            return try portraitGen(url, model: model)
        case .metrical:
            return try metrical(url, model: model)
        }
    }

    static func isDirectory(_ url: URL) -> Bool {
        var d: ObjCBool = false
        return FileManager.default.fileExists(atPath: url.path, isDirectory: &d) && d.boolValue
    }
}
