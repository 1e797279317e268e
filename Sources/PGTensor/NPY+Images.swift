import Foundation

// Images cross to Python plugins as NumPy's image layout, [H, W, C] float32, while pgflow keeps
// [C, H, W]. These convert in one pass straight between the two, without an intermediate tensor:
// at 512² every extra copy of a frame is a measurable share of a plugin request.

extension Tensor {
    /// This `[C, H, W]` image as the bytes of a `.npy` file holding `[H, W, C]` float32.
    public func npyDataHWC() -> Data {
        precondition(rank == 3, "npyDataHWC takes [C, H, W], got \(shape)")
        let (c, h, w) = (shape[0], shape[1], shape[2])
        let header = NPYHeader.encode(shape: [h, w, c])
        var out = Data(count: header.count + count * 4)
        out.replaceSubrange(0..<header.count, with: header)
        let offset = header.count
        out.withUnsafeMutableBytes { raw in
            let dst = (raw.baseAddress! + offset).assumingMemoryBound(to: UInt32.self)
            withUnsafeBufferPointer { src in
                let plane = h * w
                let p = src.baseAddress!
                if c == 3 {   // the common case: one sequential write stream, three read streams
                    for i in 0..<plane {
                        dst[3 * i] = p[i].bitPattern.littleEndian
                        dst[3 * i + 1] = p[plane + i].bitPattern.littleEndian
                        dst[3 * i + 2] = p[2 * plane + i].bitPattern.littleEndian
                    }
                } else {
                    for i in 0..<plane { for ch in 0..<c { dst[i * c + ch] = p[ch * plane + i].bitPattern.littleEndian } }
                }
            }
        }
        return out
    }

    /// Reads the bytes of a `.npy` file holding an `[H, W, C]` image (or `[H, W]`, one channel)
    /// as `[C, H, W]`. Little-endian float32 is converted in one pass; other dtypes go through the
    /// general reader first.
    public init(npyHWC data: Data) throws {
        let header = try NPYHeader.parse(data)
        let dims = header.shape
        guard dims.count == 3 || dims.count == 2 else {
            throw ArrayFileError(.badHeader, "it has shape \(dims), not an image [H, W, C]")
        }
        let (h, w, c) = (dims[0], dims[1], dims.count == 3 ? dims[2] : 1)
        let plane = h * w
        var scalars = [Float](repeating: 0, count: plane * c)
        if header.kind == .float, header.itemSize == 4, !header.bigEndian {
            let needed = header.dataOffset + plane * c * 4
            guard data.count >= needed else {
                throw ArrayFileError(.truncated, "it holds \(data.count) bytes, but shape \(dims) needs \(needed)")
            }
            data.withUnsafeBytes { raw in
                let src = raw.baseAddress! + header.dataOffset
                scalars.withUnsafeMutableBufferPointer { dst in
                    let d = dst.baseAddress!
                    func at(_ k: Int) -> Float {
                        Float(bitPattern: UInt32(littleEndian: src.loadUnaligned(fromByteOffset: k * 4, as: UInt32.self)))
                    }
                    if c == 3 {
                        for i in 0..<plane { d[i] = at(3 * i); d[plane + i] = at(3 * i + 1); d[2 * plane + i] = at(3 * i + 2) }
                    } else {
                        for i in 0..<plane { for ch in 0..<c { d[ch * plane + i] = at(i * c + ch) } }
                    }
                }
            }
        } else {
            let hwc = try Tensor(npy: data)
            for i in 0..<plane { for ch in 0..<c { scalars[ch * plane + i] = hwc.scalars[i * c + ch] } }
        }
        self.init(shape: [c, h, w], scalars: scalars)
    }
}
