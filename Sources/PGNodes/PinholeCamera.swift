import PGFlow
import PGTensor

/// A pinhole camera as pgflow's `Camera` record holds it: OpenCV axes (x right, y down, z
/// forward), p_cam = R·p + t, intrinsics in pixels with pixel centres at (x + ½, y + ½).
public struct PinholeCamera: Sendable, Equatable {
    public var fx: Double, fy: Double, cx: Double, cy: Double
    public var width: Int, height: Int
    /// Row-major 4×4 world → camera.
    public var worldToCamera: [Float]

    public init(fx: Double, fy: Double, cx: Double, cy: Double, width: Int, height: Int, worldToCamera: [Float]) {
        precondition(worldToCamera.count == 16, "world_to_camera should have 16 values")
        self.fx = fx; self.fy = fy; self.cx = cx; self.cy = cy
        self.width = width; self.height = height
        self.worldToCamera = worldToCamera
    }

    /// A camera from a rotation (rows) and translation: p_cam = R·p + t.
    init(fx: Double, fy: Double, cx: Double, cy: Double, width: Int, height: Int, rotation r: Matrix3, translation t: SIMD3<Double>) {
        var m = [Float](repeating: 0, count: 16)
        for (i, row) in [r.r0, r.r1, r.r2].enumerated() {
            m[4 * i] = Float(row.x); m[4 * i + 1] = Float(row.y); m[4 * i + 2] = Float(row.z); m[4 * i + 3] = Float(t[i])
        }
        m[15] = 1
        self.init(fx: fx, fy: fy, cx: cx, cy: cy, width: width, height: height, worldToCamera: m)
    }

    /// Reads a `Camera` record; `what` names it in errors.
    public init(record r: [String: Value], what: String) throws {
        func number(_ key: String) throws -> Double {
            guard let v = r[key]?.number, v.isFinite else {
                throw OperatorError("\(what) should have a number '\(key)', got \(r[key]?.summary ?? "nothing")")
            }
            return v
        }
        let fx = try number("fx"), fy = try number("fy"), cx = try number("cx"), cy = try number("cy")
        let w = try number("width"), h = try number("height")
        guard fx > 0, fy > 0 else { throw OperatorError("\(what): fx and fy should be positive, got \(fx), \(fy)") }
        guard w >= 1, h >= 1 else { throw OperatorError("\(what): width and height should be at least 1, got \(w), \(h)") }
        guard let m = r["world_to_camera"]?.tensor, m.shape == [4, 4], m.scalars.allSatisfy(\.isFinite) else {
            throw OperatorError("\(what) should have a finite world_to_camera tensor [4, 4], got \(r["world_to_camera"]?.summary ?? "nothing")")
        }
        self.init(fx: fx, fy: fy, cx: cx, cy: cy, width: Int(w.rounded()), height: Int(h.rounded()), worldToCamera: m.scalars)
    }

    /// The `Camera` record.
    public var value: Value {
        .record(["fx": .number(fx), "fy": .number(fy), "cx": .number(cx), "cy": .number(cy),
                 "width": .number(Double(width)), "height": .number(Double(height)),
                 "world_to_camera": .tensor(Tensor(shape: [4, 4], scalars: worldToCamera))])
    }

    /// The same camera for an image of `width` × `height`: fx and cx scale by width / self.width,
    /// fy and cy by height / self.height (as Splat resizes).
    public func resized(width w: Int, height h: Int) -> PinholeCamera {
        let sx = Double(w) / Double(width), sy = Double(h) / Double(height)
        return PinholeCamera(fx: fx * sx, fy: fy * sy, cx: cx * sx, cy: cy * sy, width: w, height: h, worldToCamera: worldToCamera)
    }

    /// Pixel position of a world point in front of the camera, nil behind it.
    public func pixel(_ p: SIMD3<Double>) -> SIMD2<Double>? {
        let q = project(p)
        return q.z > 1e-9 ? SIMD2(q.x, q.y) : nil
    }

    /// Pixel position and camera depth of a world point.
    public func project(_ p: SIMD3<Double>) -> (x: Double, y: Double, z: Double) {
        let m = worldToCamera.map(Double.init)
        let x = m[0] * p.x + m[1] * p.y + m[2] * p.z + m[3]
        let y = m[4] * p.x + m[5] * p.y + m[6] * p.z + m[7]
        let z = m[8] * p.x + m[9] * p.y + m[10] * p.z + m[11]
        return (fx * x / z + cx, fy * y / z + cy, z)
    }
}
