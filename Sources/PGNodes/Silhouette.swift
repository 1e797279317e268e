import PGTensor

/// The silhouette of a triangle mesh seen through a pinhole camera: 1 where a pixel centre
/// (x + ½, y + ½) falls inside some projected triangle, else 0. Triangles are filled whichever way
/// they wind (a silhouette has no back faces); a triangle with a corner at or behind `near` (camera
/// z) is skipped rather than clipped, which for a head in front of the camera drops nothing.
enum Silhouette {
    static func mask(vertices: [Float],   // [V, 3] world
                     faces: [Int32],      // [F, 3]
                     camera: PinholeCamera, near: Double = 1e-4) -> Tensor {
        let w = camera.width, h = camera.height
        var out = [Float](repeating: 0, count: w * h)
        let v = vertices.count / 3
        var px = [Double](repeating: 0, count: v), py = px, pz = px
        for i in 0..<v {
            let p = camera.project(SIMD3(Double(vertices[3 * i]), Double(vertices[3 * i + 1]), Double(vertices[3 * i + 2])))
            px[i] = p.x; py[i] = p.y; pz[i] = p.z
        }
        for f in 0..<(faces.count / 3) {
            let a = Int(faces[3 * f]), b = Int(faces[3 * f + 1]), c = Int(faces[3 * f + 2])
            guard pz[a] > near, pz[b] > near, pz[c] > near else { continue }
            let area = (px[b] - px[a]) * (py[c] - py[a]) - (py[b] - py[a]) * (px[c] - px[a])
            guard abs(area) > 1e-12 else { continue }
            let sign: Double = area > 0 ? 1 : -1
            // Pixels whose centres lie in the triangle's bounding box.
            let x0 = max(0, Int((min(px[a], px[b], px[c]) - 0.5).rounded(.up)))
            let x1 = min(w - 1, Int((max(px[a], px[b], px[c]) - 0.5).rounded(.down)))
            let y0 = max(0, Int((min(py[a], py[b], py[c]) - 0.5).rounded(.up)))
            let y1 = min(h - 1, Int((max(py[a], py[b], py[c]) - 0.5).rounded(.down)))
            guard x0 <= x1, y0 <= y1 else { continue }
            for y in y0...y1 {
                let cy = Double(y) + 0.5
                for x in x0...x1 where out[y * w + x] == 0 {
                    let cx = Double(x) + 0.5
                    let e0 = ((px[c] - px[b]) * (cy - py[b]) - (py[c] - py[b]) * (cx - px[b])) * sign
                    let e1 = ((px[a] - px[c]) * (cy - py[c]) - (py[a] - py[c]) * (cx - px[c])) * sign
                    let e2 = ((px[b] - px[a]) * (cy - py[a]) - (py[b] - py[a]) * (cx - px[a])) * sign
                    if e0 >= 0, e1 >= 0, e2 >= 0 { out[y * w + x] = 1 }
                }
            }
        }
        return Tensor(shape: [1, h, w], scalars: out)
    }
}

extension Silhouette {
    /// `mask` grown by `radius` pixels (a square max filter, separable), for blending a pasted
    /// head over its surroundings with some margin.
    static func dilated(_ mask: Tensor, radius: Int) -> Tensor {
        guard radius > 0 else { return mask }
        let h = mask.shape[1], w = mask.shape[2]
        var rows = [Float](repeating: 0, count: w * h), out = rows
        mask.withUnsafeBufferPointer { m in
            for y in 0..<h { for x in 0..<w {
                var best: Float = 0
                for k in max(0, x - radius)...min(w - 1, x + radius) { best = max(best, m[y * w + k]) }
                rows[y * w + x] = best
            } }
        }
        for y in 0..<h { for x in 0..<w {
            var best: Float = 0
            for k in max(0, y - radius)...min(h - 1, y + radius) { best = max(best, rows[k * w + x]) }
            out[y * w + x] = best
        } }
        return Tensor(shape: mask.shape, scalars: out)
    }
}
