import PGTensor

/// A 3D colour lookup table, as colourists grade with (`.cube` files): `size`³ RGB entries with
/// red varying fastest, sampled over [domainMin, domainMax] per channel.
public struct ColorLUT: Sendable, Equatable {
    public var size: Int
    /// [size, size, size, 3] flattened, index ((b·size + g)·size + r)·3.
    public var table: [Float]
    public var domainMin: SIMD3<Float>
    public var domainMax: SIMD3<Float>

    public init(size: Int, table: [Float], domainMin: SIMD3<Float> = .zero, domainMax: SIMD3<Float> = .one) {
        precondition(size >= 2 && table.count == size * size * size * 3, "a 3D LUT needs size ≥ 2 and size³·3 values")
        self.size = size
        self.table = table
        self.domainMin = domainMin
        self.domainMax = domainMax
    }

    /// Grades an RGB image [3, H, W]: each pixel looked up with trilinear interpolation (values
    /// outside the domain take the nearest edge), then blended with the original by `strength`.
    public func apply(_ image: Tensor, strength: Float = 1) -> Tensor {
        precondition(image.rank == 3 && image.shape[0] == 3, "ColorLUT.apply takes [3, H, W]")
        let plane = image.shape[1] * image.shape[2]
        var out = image
        let n = size
        let scale = SIMD3<Float>(repeating: Float(n - 1)) / (domainMax - domainMin)
        let lo = domainMin
        table.withUnsafeBufferPointer { lut in
            image.withUnsafeBufferPointer { src in
                out.withUnsafeMutableBufferPointer { dst in
                    for i in 0..<plane {
                        let c = SIMD3(src[i], src[plane + i], src[2 * plane + i])
                        var p = (c - lo) * scale
                        p = p.clamped(lowerBound: .zero, upperBound: SIMD3(repeating: Float(n - 1)))
                        let i0 = SIMD3<Int>(Int(p.x), Int(p.y), Int(p.z))
                        let i1 = SIMD3<Int>(Swift.min(i0.x + 1, n - 1), Swift.min(i0.y + 1, n - 1), Swift.min(i0.z + 1, n - 1))
                        let f = p - SIMD3(Float(i0.x), Float(i0.y), Float(i0.z))
                        func at(_ r: Int, _ g: Int, _ b: Int) -> SIMD3<Float> {
                            let k = ((b * n + g) * n + r) * 3
                            return SIMD3(lut[k], lut[k + 1], lut[k + 2])
                        }
                        let c00 = at(i0.x, i0.y, i0.z) * (1 - f.x) + at(i1.x, i0.y, i0.z) * f.x
                        let c10 = at(i0.x, i1.y, i0.z) * (1 - f.x) + at(i1.x, i1.y, i0.z) * f.x
                        let c01 = at(i0.x, i0.y, i1.z) * (1 - f.x) + at(i1.x, i0.y, i1.z) * f.x
                        let c11 = at(i0.x, i1.y, i1.z) * (1 - f.x) + at(i1.x, i1.y, i1.z) * f.x
                        let graded = (c00 * (1 - f.y) + c10 * f.y) * (1 - f.z) + (c01 * (1 - f.y) + c11 * f.y) * f.z
                        let v = c + (graded - c) * strength
                        dst[i] = v.x; dst[plane + i] = v.y; dst[2 * plane + i] = v.z
                    }
                }
            }
        }
        return out
    }
}
