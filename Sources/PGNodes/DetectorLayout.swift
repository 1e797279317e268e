/// How a landmark detector numbers its points, and the map to the iBUG-300W 68-point layout that
/// pgflow's head models embed (builtin:head and FLAME: jaw line 0–16 from the subject's right,
/// brows 17–26, nose 27–35, eyes 36–47, outer lips 48–59, inner lips 60–67).
enum DetectorLayout: String, CaseIterable {
    /// dlib's predictor: already iBUG-68.
    case ibug68
    /// MediaPipe's face mesh (468 points, + 10 iris points in the face landmarker).
    case mediapipe478

    var pointCount: Int {
        switch self {
        case .ibug68: return 68
        case .mediapipe478: return 468
        }
    }

    /// MediaPipe face-mesh index per iBUG-68 point: the mesh vertex at (or, for the jaw line, the
    /// mesh's face-oval vertex nearest) each iBUG point. The face oval runs a little outside the
    /// iBUG jaw contour, which is why Tracker's fit weighs the jaw line low.
    static let mediapipeToIBUG: [Int] = [
        162, 234, 93, 58, 172, 136, 149, 148, 152, 377, 378, 365, 397, 288, 323, 454, 389,   // jaw line 0–16
        71, 63, 105, 66, 107,                                                             // right brow 17–21
        336, 296, 334, 293, 301,                                                          // left brow 22–26
        168, 197, 5, 4,                                                                   // nose bridge 27–30
        75, 97, 2, 326, 305,                                                              // nostrils 31–35
        33, 160, 158, 133, 153, 144,                                                      // right eye 36–41
        362, 385, 387, 263, 373, 380,                                                     // left eye 42–47
        61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,                              // outer lips 48–59
        78, 82, 13, 312, 308, 317, 14, 87,                                                // inner lips 60–67
    ]

    func ibug68(_ points: [SIMD2<Float>]) -> [SIMD2<Float>] {
        switch self {
        case .ibug68: return Array(points.prefix(68))
        case .mediapipe478: return Self.mediapipeToIBUG.map { points[$0] }
        }
    }
}
