/// Small image operations on channels-first Float32 buffers.
public enum ImageOps {
    /// Bilinear resize of a [C, H, W] image to [C, outH, outW], sampling pixel centres
    /// (x + 0.5) as docs/DESIGN.md §5 fixes, with edge clamping.
    public static func resizeBilinear(_ src: UnsafeBufferPointer<Float>, channels c: Int, height h: Int, width w: Int,
                                      into dst: UnsafeMutableBufferPointer<Float>, height oh: Int, width ow: Int) {
        precondition(src.count == c * h * w && dst.count == c * oh * ow, "resizeBilinear: buffer sizes do not match shapes")
        precondition(h > 0 && w > 0 && oh > 0 && ow > 0, "resizeBilinear: empty image")
        let sy = Double(h) / Double(oh), sx = Double(w) / Double(ow)
        for y in 0..<oh {
            let fy = max(0, min(Double(h - 1), (Double(y) + 0.5) * sy - 0.5))
            let y0 = Int(fy), y1 = min(y0 + 1, h - 1)
            let wy = Float(fy - Double(y0))
            for x in 0..<ow {
                let fx = max(0, min(Double(w - 1), (Double(x) + 0.5) * sx - 0.5))
                let x0 = Int(fx), x1 = min(x0 + 1, w - 1)
                let wx = Float(fx - Double(x0))
                for ch in 0..<c {
                    let base = ch * h * w
                    let top = src[base + y0 * w + x0] * (1 - wx) + src[base + y0 * w + x1] * wx
                    let bottom = src[base + y1 * w + x0] * (1 - wx) + src[base + y1 * w + x1] * wx
                    dst[ch * oh * ow + y * ow + x] = top * (1 - wy) + bottom * wy
                }
            }
        }
    }
}
