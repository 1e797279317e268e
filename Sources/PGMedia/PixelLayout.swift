import PGTensor

/// Conversions between pgflow's planar Float images `[C, H, W]` in 0…1 and the interleaved 8/16-bit
/// samples that libpng and swscale use. These are the per-pixel hot loops of media I/O; they run on
/// raw buffers and stay single-threaded because the codec work around them costs far more.
enum PixelLayout {
    /// Float → 16-bit sample, clamping to 0…1 (NaN becomes 0, so a bad render cannot crash encoding).
    @inline(__always)
    static func quantize16(_ v: Float) -> UInt16 {
        let c: Float = v > 0 ? (v < 1 ? v : 1) : 0
        return UInt16(c * 65535 + 0.5)
    }

    @inline(__always)
    static func quantize8(_ v: Float) -> UInt8 {
        let c: Float = v > 0 ? (v < 1 ? v : 1) : 0
        return UInt8(c * 255 + 0.5)
    }

    /// `[C, H, W]` → interleaved 8-bit samples, C per pixel.
    static func interleave8(_ t: Tensor) -> [UInt8] {
        let (c, n) = (t.shape[0], t.shape[1] * t.shape[2])
        var out = [UInt8](repeating: 0, count: c * n)
        t.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for ch in 0..<c {
                    let plane = ch * n
                    for i in 0..<n { dst[i * c + ch] = quantize8(src[plane + i]) }
                }
            }
        }
        return out
    }

    /// `[C, H, W]` → interleaved 16-bit samples. With `premultiplyAlpha` the colour samples are
    /// multiplied by the last channel, which is what libpng's 16-bit simplified API expects.
    static func interleave16(_ t: Tensor, premultiplyAlpha: Bool) -> [UInt16] {
        let (c, n) = (t.shape[0], t.shape[1] * t.shape[2])
        var out = [UInt16](repeating: 0, count: c * n)
        t.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                if premultiplyAlpha {
                    let alphaPlane = (c - 1) * n
                    for i in 0..<n {
                        let a: Float = src[alphaPlane + i] > 0 ? min(src[alphaPlane + i], 1) : 0
                        for ch in 0..<(c - 1) { dst[i * c + ch] = quantize16(src[ch * n + i] * a) }
                        dst[i * c + c - 1] = quantize16(a)
                    }
                } else {
                    for ch in 0..<c {
                        let plane = ch * n
                        for i in 0..<n { dst[i * c + ch] = quantize16(src[plane + i]) }
                    }
                }
            }
        }
        return out
    }

    /// Interleaved 8-bit samples → `[C, H, W]`.
    static func planar(_ samples: [UInt8], channels c: Int, height h: Int, width w: Int) -> Tensor {
        let n = h * w
        var out = Tensor(zeros: [c, h, w])
        out.withUnsafeMutableBufferPointer { dst in
            samples.withUnsafeBufferPointer { src in
                let scale: Float = 1 / 255
                for ch in 0..<c {
                    let plane = ch * n
                    for i in 0..<n { dst[plane + i] = Float(src[i * c + ch]) * scale }
                }
            }
        }
        return out
    }

    /// Interleaved 16-bit samples → `[C, H, W]`.
    static func planar(_ samples: [UInt16], channels c: Int, height h: Int, width w: Int) -> Tensor {
        let n = h * w
        var out = Tensor(zeros: [c, h, w])
        out.withUnsafeMutableBufferPointer { dst in
            samples.withUnsafeBufferPointer { src in
                let scale: Float = 1 / 65535
                for ch in 0..<c {
                    let plane = ch * n
                    for i in 0..<n { dst[plane + i] = Float(src[i * c + ch]) * scale }
                }
            }
        }
        return out
    }

    /// Undoes libpng's premultiplied 16-bit alpha in place (last channel is alpha).
    static func unpremultiply(_ samples: inout [UInt16], channels c: Int) {
        samples.withUnsafeMutableBufferPointer { s in
            var i = 0
            while i < s.count {
                let a = UInt32(s[i + c - 1])
                for ch in 0..<(c - 1) {
                    // Round to nearest; a zero alpha leaves no colour to recover.
                    s[i + ch] = a == 0 ? 0 : UInt16(min(65535, (UInt32(s[i + ch]) * 65535 + a / 2) / a))
                }
                i += c
            }
        }
    }
}
