import Foundation
import PGFlow
import PGTensor

/// PortraitGen's SMPL-X track (`body_track/smplx_track.pth`, saved as NPZ with the same keys).
///
/// Keys (T frames): `body_pose [T, 63]` (21 body joints), `jaw_pose [T, 3]`, `expr [T, E]` (E = 100),
/// `shape [S]` or `[1, S]` (S = 300), `cam_angle [T, 3]`, `cam_trans [T, 3]`, `cam_para [T, 4]` or
/// `[4]` (fx fy cx cy); optional `lhand_pose` / `rhand_pose [T, 45]`, `leye_pose` / `reye_pose [T, 3]`,
/// `global_orient`, `transl [T, 3]` (PortraitGen leaves these zero: its camera carries the head
/// motion) and pgflow's `image_size [2]` (width height; without it the image is 2·cx × 2·cy, as
/// PortraitGen itself assumes for driving tracks).
///
/// The camera (PortraitGen's `GaussianScene.load_smplx_track` with 3DGS's `getWorld2View`): in a
/// camera frame with Y and Z flipped against OpenCV (y up, looking down −z), a world point p
/// lands at E(cam_angle)ᵀ·p + cam_trans — pytorch3d's row-vector `p @ so3_exp_map(cam_angle)` —
/// and projects to (−fx·X/Z + cx, fy·Y/Z + cy). In OpenCV axes that is
/// R = F·E(cam_angle)ᵀ, t = F·cam_trans with F = diag(1, −1, −1).
///
/// The Tracking record uses SMPL-X's 55-joint kintree: 0 pelvis (global_orient goes to
/// `rotation`), 1–21 body, 22 jaw (jaw_pose goes to `jaw`), 23–24 eyes, 25–39 left hand,
/// 40–54 right hand.
extension TrackingImport {
    static let smplxJointCount = 55

    static func portraitGen(_ url: URL, model: String) throws -> TrackingSequence {
        let a = try ImportArrays(url)
        for key in ["body_pose", "jaw_pose", "expr", "shape", "cam_angle", "cam_trans", "cam_para"] { _ = try a.tensor(key) }
        let body = try a.rows("body_pose", width: 63)!
        let jaw = try a.rows("jaw_pose", width: 3)!
        let expr = try a.rows("expr", width: nil)!
        let angle = try a.rows("cam_angle", width: 3)!
        let trans = try a.rows("cam_trans", width: 3)!
        var counts: [(key: String, frames: Int)] = [("body_pose", body.count), ("jaw_pose", jaw.count), ("expr", expr.count),
                                                     ("cam_angle", angle.count), ("cam_trans", trans.count)]
        var optional: [String: [[Float]]] = [:]
        for (key, width) in [("lhand_pose", 45), ("rhand_pose", 45), ("leye_pose", 3), ("reye_pose", 3), ("global_orient", 3), ("transl", 3)] {
            guard a.has(key) else { continue }
            let t = try a.tensor(key)
            if key.hasSuffix("hand_pose"), t.rank == 2, t.shape[1] != 45 {
                throw a.fail("'\(key)' has \(t.shape[1]) values per frame: PCA hand poses are not supported; save the 45-value full hand pose (smplx use_pca=False)")
            }
            optional[key] = try a.rows(key, width: width)
            counts.append((key, optional[key]!.count))
        }
        let camPara = try a.tensor("cam_para")
        let intrinsics: [[Float]]
        if camPara.count == 4 {
            intrinsics = [camPara.scalars]
        } else {
            intrinsics = try a.rows("cam_para", width: 4)!
            counts.append(("cam_para", intrinsics.count))
        }
        let n = try commonFrameCount(counts, file: a.path)
        guard n > 0 else { throw a.fail("it has no frames ('body_pose' is empty)") }
        let shapeTensor = try a.tensor("shape")
        guard shapeTensor.rank == 1 || shapeTensor.shape[0] == 1 else {
            throw a.fail("'shape' should be one β for the clip, [S] or [1, S], got shape \(shapeTensor.shape)")
        }
        var size: (Int, Int)?
        if a.has("image_size") {
            let s = try a.tensor("image_size")
            guard s.count == 2, s.scalars.allSatisfy({ $0 >= 1 && $0.rounded() == $0 }) else {
                throw a.fail("'image_size' should be [width, height] in whole pixels, got \(s.scalars)")
            }
            size = (Int(s.scalars[0]), Int(s.scalars[1]))
        }

        var frames: [TrackedFrame] = []
        for t in 0..<n {
            let k = intrinsics[intrinsics.count == 1 ? 0 : t]
            guard k[0] > 0, k[1] > 0, k[2] > 0, k[3] > 0 else {
                throw a.fail("frame \(t): 'cam_para' should be positive fx fy cx cy, got \(k)")
            }
            let (w, h) = size ?? (Int((2 * k[2]).rounded()), Int((2 * k[3]).rounded()))
            let e = Matrix3(axisAngle: SIMD3(Double(angle[t][0]), Double(angle[t][1]), Double(angle[t][2])))
            let camT = SIMD3(Double(trans[t][0]), Double(trans[t][1]), Double(trans[t][2]))
            let camera = PinholeCamera(fx: Double(k[0]), fy: Double(k[1]), cx: Double(k[2]), cy: Double(k[3]), width: w, height: h,
                                        rotation: Matrix3.flipYZ * e.transposed, translation: Matrix3.flipYZ * camT)

            var pose = [Float](repeating: 0, count: 3 * smplxJointCount)
            pose.replaceSubrange(3..<66, with: body[t])
            for (key, joint) in [("leye_pose", 23), ("reye_pose", 24), ("lhand_pose", 25), ("rhand_pose", 40)] {
                if let rows = optional[key] { pose.replaceSubrange((3 * joint)..<(3 * joint + rows[t].count), with: rows[t]) }
            }
            func vec(_ key: String) -> SIMD3<Float> { optional[key].map { SIMD3($0[t][0], $0[t][1], $0[t][2]) } ?? .zero }
            let tracking = Tracking(model: model, shape: shapeTensor.scalars, expression: expr[t], pose: pose,
                                    rotation: vec("global_orient"), translation: vec("transl"),
                                    jaw: SIMD3(jaw[t][0], jaw[t][1], jaw[t][2]))
            frames.append(TrackedFrame(tracking: tracking, camera: camera))
        }
        return TrackingSequence(source: a.path, format: .portraitgen, frames: frames)
    }
}
