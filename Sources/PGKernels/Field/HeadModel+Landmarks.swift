import Foundation

/// The 68 iBUG-300W landmarks of `builtin:head`, placed on the face by position and embedded as
/// (face, barycentric) pairs like FLAME's `landmark_embedding`.
enum HeadLandmarks {
    enum Row { case surface, upperLipEdge, lowerLipEdge }

    /// (x across the face, height y, which row family) per landmark, in iBUG order. The subject's
    /// right is −x, so point 0 (the right end of the jaw line) has x < 0.
    static let points: [(Double, Double, Row)] = {
        var p: [(Double, Double, Row)] = []
        // 0–16: jaw line, an arc from the right temple under the chin to the left.
        for k in 0...16 {
            let a = Double.pi * Double(k) / 16
            p.append((-0.070 * cos(a), -0.030 - 0.082 * sin(a), .surface))
        }
        // 17–21 right brow (outer to inner), 22–26 left brow (inner to outer).
        let brow: [(Double, Double)] = [(0.052, 0.004), (0.043, 0.010), (0.033, 0.012), (0.023, 0.011), (0.013, 0.008)]
        for (x, y) in brow { p.append((-x, y, .surface)) }
        for (x, y) in brow.reversed() { p.append((x, y, .surface)) }
        // 27–30 nose bridge to tip, 31–35 nostrils right to left.
        for y in [-0.008, -0.020, -0.032, -0.043] { p.append((0, y, .surface)) }
        for (x, y) in [(-0.012, -0.050), (-0.006, -0.053), (0.0, -0.055), (0.006, -0.053), (0.012, -0.050)] {
            p.append((x, y, .surface))
        }
        // 36–41 right eye from its outer corner, clockwise in the image; 42–47 left eye from its inner corner.
        let ex = HeadGeometry.eyeX, ey = HeadGeometry.eyeY
        let rightEye: [(Double, Double)] = [(-ex - 0.013, ey), (-ex - 0.005, ey + 0.0045), (-ex + 0.005, ey + 0.0045),
                                            (-ex + 0.013, ey), (-ex + 0.005, ey - 0.0045), (-ex - 0.005, ey - 0.0045)]
        let leftEye: [(Double, Double)] = [(ex - 0.013, ey), (ex - 0.005, ey + 0.0045), (ex + 0.005, ey + 0.0045),
                                           (ex + 0.013, ey), (ex + 0.005, ey - 0.0045), (ex - 0.005, ey - 0.0045)]
        for (x, y) in rightEye + leftEye { p.append((x, y, .surface)) }
        // 48–59 outer lips from the right corner over the upper lip and back under the lower lip.
        let my = HeadGeometry.mouthY
        let outer: [(Double, Double)] = [(-0.025, my), (-0.016, my + 0.006), (-0.006, my + 0.009), (0, my + 0.008),
                                         (0.006, my + 0.009), (0.016, my + 0.006), (0.025, my), (0.016, my - 0.008),
                                         (0.006, my - 0.011), (0, my - 0.012), (-0.006, my - 0.011), (-0.016, my - 0.008)]
        for (x, y) in outer { p.append((x, y, .surface)) }
        // 60–67 inner lips: corners and upper edge on the upper lip's edge row, lower on the lower's.
        for x in [-0.021, -0.008, 0.0, 0.008, 0.021] { p.append((x, my, .upperLipEdge)) }
        for x in [0.008, 0.0, -0.008] { p.append((x, my, .lowerLipEdge)) }
        return p
    }()

    /// Face indices and barycentric weights in the face order `HeadModelBuilder` writes.
    static func embed(_ g: HeadGeometry) -> ([Int32], [Float]) {
        let c = HeadGeometry.columns
        let y = { (row: Int) -> Double in g.ring(g.rows[row].t, shape: .zero).y }
        var faces: [Int32] = [], bary: [Float] = []
        for (x, ty, kind) in points {
            var row: Int, alpha: Double
            switch kind {
            case .upperLipEdge: row = g.mouthRow; alpha = 0
            case .lowerLipEdge: row = g.mouthRow + 3; alpha = 1
            case .surface:
                // Rows above the lips end at the upper lip's edge; rows below start at the lower's.
                let candidates = ty >= HeadGeometry.mouthY ? Array(1..<g.mouthRow) : Array((g.mouthRow + 4)..<(g.rows.count - 2))
                row = candidates.first { y($0) >= ty && y($0 + 1) <= ty } ?? candidates.last!
                alpha = min(1, max(0, (y(row) - ty) / (y(row) - y(row + 1))))
            }
            let t = g.rows[row].t + alpha * (g.rows[row + 1].t - g.rows[row].t)
            let rx = g.ring(t, shape: .zero).rx
            let phi = asin(min(1, max(-1, x / rx)))
            let w = HeadGeometry.column(ofPhi: phi) * Double(c)
            let j = min(c - 1, Int(w))
            let beta = w - Double(j)
            let quad = c + ((row - 1) * c + j) * 2
            if alpha >= beta {
                faces.append(Int32(quad))
                bary += [Float(1 - alpha), Float(alpha - beta), Float(beta)]
            } else {
                faces.append(Int32(quad + 1))
                bary += [Float(1 - beta), Float(alpha), Float(beta - alpha)]
            }
        }
        return (faces, bary)
    }
}
