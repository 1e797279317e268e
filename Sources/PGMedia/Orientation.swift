import PGTensor

/// How a stored picture is turned to be shown upright: one of the eight rotations and mirror
/// images of a rectangle. Phones store portrait video as landscape frames and say so in the
/// stream's display matrix; players (and pgflow, by default) apply it.
public enum Orientation: String, Sendable, Equatable, CaseIterable {
    case upright
    /// Rotate 90° clockwise (FFmpeg's transpose=clock).
    case clockwise
    case upsideDown
    /// Rotate 90° counter-clockwise (transpose=cclock).
    case counterClockwise
    case mirrored            // left–right
    case flipped             // top–bottom
    /// Rows become columns: out(x, y) = in(y, x) (transpose=cclock_flip).
    case transposed
    /// The other diagonal (transpose=clock_flip).
    case antiTransposed

    /// The clockwise rotation in degrees a user would name, and whether a mirror image is involved.
    public var degrees: Int {
        switch self {
        case .upright, .mirrored, .flipped: return self == .flipped ? 180 : 0
        case .clockwise, .antiTransposed: return 90
        case .upsideDown: return 180
        case .counterClockwise, .transposed: return 270
        }
    }
    public var isMirror: Bool { [.mirrored, .flipped, .transposed, .antiTransposed].contains(self) }
    public var swapsAxes: Bool { [.clockwise, .counterClockwise, .transposed, .antiTransposed].contains(self) }

    /// From a stream's 3×3 display matrix (16.16 fixed point, row-major), as FFmpeg's own tools
    /// decide it (fftools: get_rotation, then transpose/hflip/vflip): `rotation` is
    /// `av_display_rotation_get`'s counter-clockwise angle. Angles that are not a multiple of 90°
    /// are rounded to the nearest one.
    public init(displayMatrix m: [Int32], rotation: Double) {
        var theta = -rotation.rounded()
        theta -= 360 * (theta / 360 + 0.9 / 360).rounded(.down)
        let quarter = Int(((theta / 90).rounded())) % 4
        switch quarter {
        case 1: self = m[3] > 0 ? .transposed : .clockwise
        case 2:
            switch (m[0] < 0, m[4] < 0) {
            case (true, true): self = .upsideDown
            case (true, false): self = .mirrored
            case (false, true): self = .flipped
            case (false, false): self = .upright
            }
        case 3: self = m[3] < 0 ? .antiTransposed : .counterClockwise
        default: self = m[4] < 0 ? .flipped : .upright
        }
    }

    /// Applies the orientation to an image `[C, H, W]`.
    public func apply(_ image: Tensor) -> Tensor {
        guard self != .upright else { return image }
        let (c, h, w) = (image.shape[0], image.shape[1], image.shape[2])
        let (oh, ow) = swapsAxes ? (w, h) : (h, w)
        var out = Tensor(zeros: [c, oh, ow])
        let mapping = self
        image.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for ch in 0..<c {
                    let s = ch * h * w, d = ch * oh * ow
                    for y in 0..<oh {
                        for x in 0..<ow {
                            // (sy, sx): where output pixel (y, x) comes from.
                            let (sy, sx): (Int, Int)
                            switch mapping {
                            case .upright: (sy, sx) = (y, x)
                            case .clockwise: (sy, sx) = (h - 1 - x, y)
                            case .upsideDown: (sy, sx) = (h - 1 - y, w - 1 - x)
                            case .counterClockwise: (sy, sx) = (x, w - 1 - y)
                            case .mirrored: (sy, sx) = (y, w - 1 - x)
                            case .flipped: (sy, sx) = (h - 1 - y, x)
                            case .transposed: (sy, sx) = (x, y)
                            case .antiTransposed: (sy, sx) = (h - 1 - x, w - 1 - y)
                            }
                            dst[d + y * ow + x] = src[s + sy * w + sx]
                        }
                    }
                }
            }
        }
        return out
    }
}
