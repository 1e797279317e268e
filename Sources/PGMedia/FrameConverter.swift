internal import CFFmpeg
import PGTensor

/// Turns decoded pictures (any FFmpeg pixel format, or packed 16-bit RGB(A) from PNG files) into
/// pgflow images: RGB `[3, H, W]` and alpha `[1, H, W]` at the output size, through swscale.
///
/// swscale resamples and converts colour into packed 16-bit RGB(A) at the scaled size (16 bits
/// keep the precision that 8-bit YUV → RGB conversion would otherwise round away); a Swift loop
/// then places that into planar Float with the crop or pad offsets.
final class FrameConverter {
    let output: ImageSize
    let fit: FitMode
    let path: String

    private struct Key: Equatable {
        var width: Int32, height: Int32, format: Int32, fullRange: Bool, colorspace: Int32, pixelAspect: Double
    }
    private var key: Key?
    private var sws: OpaquePointer?
    private var geometry: FitGeometry?
    private var scaledFrame: UnsafeMutablePointer<AVFrame>?
    private var packedFrame: UnsafeMutablePointer<AVFrame>?
    private var withAlpha = false

    // Bicubic with accurate rounding; the FULL_CHR flags interpolate chroma to full resolution
    // instead of reusing one chroma sample for two pixels, which matters for 4:2:0 sources.
    static let quality = SWS_BICUBIC | SWS_ACCURATE_RND | SWS_FULL_CHR_H_INT | SWS_FULL_CHR_H_INP

    init(output: ImageSize, fit: FitMode, path: String) {
        self.output = output
        self.fit = fit
        self.path = path
    }

    deinit {
        sws_freeContext(sws)
        av_frame_free(&scaledFrame)
        av_frame_free(&packedFrame)
    }

    /// Converts a decoder's frame.
    func convert(_ frame: UnsafeMutablePointer<AVFrame>, pixelAspect: Double) throws -> (rgb: Tensor, alpha: Tensor) {
        var format = frame.pointee.format
        var fullRange = frame.pointee.color_range == AVCOL_RANGE_JPEG
        // The deprecated "J" formats are ordinary YUV with full range; say so explicitly.
        switch AVPixelFormat(rawValue: format) {
        case AV_PIX_FMT_YUVJ420P: format = AV_PIX_FMT_YUV420P.rawValue; fullRange = true
        case AV_PIX_FMT_YUVJ422P: format = AV_PIX_FMT_YUV422P.rawValue; fullRange = true
        case AV_PIX_FMT_YUVJ444P: format = AV_PIX_FMT_YUV444P.rawValue; fullRange = true
        case AV_PIX_FMT_YUVJ440P: format = AV_PIX_FMT_YUV440P.rawValue; fullRange = true
        case AV_PIX_FMT_YUVJ411P: format = AV_PIX_FMT_YUV411P.rawValue; fullRange = true
        default: break
        }
        var colorspace = Int32(frame.pointee.colorspace.rawValue)
        if frame.pointee.colorspace == AVCOL_SPC_UNSPECIFIED || frame.pointee.colorspace == AVCOL_SPC_RESERVED {
            // Untagged video: players assume BT.709 for HD and BT.601 below it; so does pgflow's encoder.
            colorspace = frame.pointee.height >= 720 ? Int32(AVCOL_SPC_BT709.rawValue) : Int32(AVCOL_SPC_BT470BG.rawValue)
        }
        let k = Key(width: frame.pointee.width, height: frame.pointee.height, format: format,
                    fullRange: fullRange, colorspace: colorspace, pixelAspect: pixelAspect)
        try configure(k)
        let src = (0..<4).map { UnsafePointer(pg_frame_plane(frame, Int32($0))) }
        let strides = (0..<4).map { pg_frame_linesize(frame, Int32($0)) }
        return try scaleAndPlace(source: src, strides: strides, height: k.height)
    }

    /// Converts packed 16-bit RGB (3 channels) or RGBA (4) samples, e.g. from a PNG file.
    func convert(packed: [UInt16], channels: Int, width: Int, height: Int) throws -> (rgb: Tensor, alpha: Tensor) {
        let source = ImageSize(width: width, height: height)
        let geometry = FitGeometry(source: source, output: output, fit: fit)
        if geometry.isIdentity(for: source) {
            // No resampling needed: skip swscale entirely.
            return packed.withUnsafeBufferPointer {
                PixelLayout.place(packed16: $0.baseAddress!, channels: channels, rowStride: width * channels,
                                  geometry: geometry)
            }
        }
        let format = channels == 4 ? pg_pix_fmt_rgba64() : pg_pix_fmt_rgb48()
        try configure(Key(width: Int32(width), height: Int32(height), format: format.rawValue,
                          fullRange: true, colorspace: Int32(AVCOL_SPC_RGB.rawValue), pixelAspect: 1))
        // Copy into an FFmpeg-allocated frame: swscale's SIMD paths may read past a row's end,
        // which its own padded buffers allow and a Swift array does not.
        if packedFrame == nil || packedFrame!.pointee.width != Int32(width) || packedFrame!.pointee.height != Int32(height)
            || packedFrame!.pointee.format != format.rawValue {
            av_frame_free(&packedFrame)
            packedFrame = try Self.allocateFrame(width: width, height: height, format: format, path: path)
        }
        let frame = packedFrame!
        try ffCheck(av_frame_make_writable(frame), path, .decode)
        let rowBytes = width * channels * 2
        let base = pg_frame_plane(frame, 0)!
        let stride = Int(pg_frame_linesize(frame, 0))
        packed.withUnsafeBytes { raw in
            for y in 0..<height {
                (base + y * stride).update(from: raw.baseAddress!.assumingMemoryBound(to: UInt8.self) + y * rowBytes,
                                           count: rowBytes)
            }
        }
        let src = (0..<4).map { UnsafePointer(pg_frame_plane(frame, Int32($0))) }
        let strides = (0..<4).map { pg_frame_linesize(frame, Int32($0)) }
        return try scaleAndPlace(source: src, strides: strides, height: Int32(height))
    }

    private func configure(_ k: Key) throws {
        if k == key { return }
        sws_freeContext(sws)
        sws = nil
        av_frame_free(&scaledFrame)
        guard let format = Optional(AVPixelFormat(rawValue: k.format)), sws_isSupportedInput(format) != 0 else {
            let name = av_get_pix_fmt_name(AVPixelFormat(rawValue: k.format)).map { String(cString: $0) } ?? "#\(k.format)"
            throw MediaError(.unsupportedPixelFormat, path: path,
                             "Cannot read '\(path)': its pixel format '\(name)' cannot be converted to RGB")
        }
        let desc = av_pix_fmt_desc_get(format)
        withAlpha = desc.map { $0.pointee.flags & UInt64(AV_PIX_FMT_FLAG_ALPHA) != 0 } ?? false
        let source = ImageSize(width: Int(k.width), height: Int(k.height))
        let geometry = FitGeometry(source: source, pixelAspect: k.pixelAspect, output: output, fit: fit)
        let outFormat = withAlpha ? pg_pix_fmt_rgba64() : pg_pix_fmt_rgb48()
        guard let ctx = sws_getContext(k.width, k.height, format,
                                       Int32(geometry.scaled.width), Int32(geometry.scaled.height), outFormat,
                                       Self.quality, nil, nil, nil) else {
            throw MediaError(.unsupportedPixelFormat, path: path,
                             "Cannot read '\(path)': swscale cannot convert \(source) pictures to \(geometry.scaled) RGB")
        }
        // Tell swscale which YUV matrix and range the source uses; RGB output is always full range.
        let coefficients = sws_getCoefficients(k.colorspace)
        sws_setColorspaceDetails(ctx, coefficients, k.fullRange ? 1 : 0, sws_getCoefficients(SWS_CS_DEFAULT), 1,
                                 0, 1 << 16, 1 << 16)
        sws = ctx
        scaledFrame = try Self.allocateFrame(width: geometry.scaled.width, height: geometry.scaled.height,
                                             format: outFormat, path: path)
        self.geometry = geometry
        key = k
    }

    private func scaleAndPlace(source: [UnsafePointer<UInt8>?], strides: [Int32], height: Int32) throws
        -> (rgb: Tensor, alpha: Tensor) {
        let dst = scaledFrame!
        try ffCheck(av_frame_make_writable(dst), path, .decode)
        let dstPlanes: [UnsafeMutablePointer<UInt8>?] = [pg_frame_plane(dst, 0), nil, nil, nil]
        let dstStrides: [Int32] = [pg_frame_linesize(dst, 0), 0, 0, 0]
        let rows = sws_scale(sws, source, strides, 0, height, dstPlanes, dstStrides)
        try ffCheck(rows, path, .decode, detail: "the colour conversion")
        let channels = withAlpha ? 4 : 3
        let stride = Int(pg_frame_linesize(dst, 0)) / 2
        let base = UnsafeRawPointer(pg_frame_plane(dst, 0)!).assumingMemoryBound(to: UInt16.self)
        return PixelLayout.place(packed16: base, channels: channels, rowStride: stride, geometry: geometry!)
    }

    static func allocateFrame(width: Int, height: Int, format: AVPixelFormat, path: String) throws
        -> UnsafeMutablePointer<AVFrame> {
        guard let frame = av_frame_alloc() else {
            throw MediaError(.failed, path: path, "Cannot process '\(path)': out of memory for a \(width)×\(height) frame")
        }
        frame.pointee.width = Int32(width)
        frame.pointee.height = Int32(height)
        frame.pointee.format = format.rawValue
        let rc = av_frame_get_buffer(frame, 0)
        if rc < 0 {
            var f: UnsafeMutablePointer<AVFrame>? = frame
            av_frame_free(&f)
            try ffCheck(rc, path, .decode, detail: "allocating a \(width)×\(height) frame")
        }
        return frame
    }
}

extension PixelLayout {
    /// Packed 16-bit RGB(A) at `geometry.scaled` → planar RGB `[3, H, W]` and alpha `[1, H, W]` at
    /// `geometry.output`, shifted by the geometry's offsets. Uncovered pixels (pad bars) are black
    /// with alpha 0; without an alpha channel the picture itself has alpha 1.
    static func place(packed16 src: UnsafePointer<UInt16>, channels c: Int, rowStride: Int,
                      geometry g: FitGeometry) -> (rgb: Tensor, alpha: Tensor) {
        let (w, h) = (g.output.width, g.output.height)
        let n = w * h
        var rgb = Tensor(zeros: [3, h, w])
        var alpha = Tensor(zeros: [1, h, w])
        let scale: Float = 1 / 65535
        // Output columns covered by the scaled picture.
        let x0 = max(0, g.offsetX), x1 = min(w, g.offsetX + g.scaled.width)
        rgb.withUnsafeMutableBufferPointer { out in
            alpha.withUnsafeMutableBufferPointer { a in
                for y in 0..<h {
                    let sy = y - g.offsetY
                    guard sy >= 0 && sy < g.scaled.height, x0 < x1 else { continue }
                    let row = src + sy * rowStride
                    for x in x0..<x1 {
                        let p = row + (x - g.offsetX) * c
                        let i = y * w + x
                        out[i] = Float(p[0]) * scale
                        out[n + i] = Float(p[1]) * scale
                        out[2 * n + i] = Float(p[2]) * scale
                        a[i] = c == 4 ? Float(p[3]) * scale : 1
                    }
                }
            }
        }
        return (rgb, alpha)
    }
}
