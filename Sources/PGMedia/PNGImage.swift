internal import CPNG
import Foundation
import PGTensor

/// A PNG file's size and sample layout, read from its header only.
public struct PNGHeader: Sendable, Equatable {
    public var width: Int
    public var height: Int
    /// 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA (palette files report what their palette expands to).
    public var channels: Int
    /// 8 or 16 bits per sample as decoded (files with 1, 2 or 4 bits are expanded to 8).
    public var bitDepth: Int
    public var hasAlpha: Bool { channels == 2 || channels == 4 }
}

/// PNG read and write through libpng's simplified `png_image` API.
///
/// Values are the file's samples divided by 255 or 65535 ("sRGB treated as data"). Two rules come
/// from the simplified API and are kept visible here: 16-bit files are taken as linear, so a
/// 16-bit file that is explicitly tagged sRGB or with a non-linear gAMA is converted to linear
/// values on read (untagged 16-bit files, and those pgflow writes, pass through unchanged); and
/// 16-bit samples with alpha travel premultiplied through libpng, which pgflow undoes, so colour
/// under very small alpha loses precision.
public enum PNGImage {
    /// Reads the header without decoding pixels.
    public static func header(_ url: URL) throws -> PNGHeader {
        let path = url.path
        var image = png_image()
        image.version = pg_png_image_version()
        guard png_image_begin_read_from_file(&image, path) != 0 else {
            throw MediaError.libpng(image, path: path, writing: false)
        }
        defer { png_image_free(&image) }
        return headerOf(image)
    }

    /// Reads the whole image as `[C, H, W]` with C = 1, 2, 3 or 4 (see `PNGHeader.channels`).
    public static func read(_ url: URL) throws -> (pixels: Tensor, header: PNGHeader) {
        let samples = try readSamples(url)
        return (samples.tensor(), samples.header)
    }

    /// Writes `[C, H, W]` (C = 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA; values clamped to 0…1) as an
    /// 8- or 16-bit PNG. libpng tags 8-bit files sRGB and 16-bit files linear (gAMA 1.0); the samples
    /// are the values either way, so `read` gives them back. Writes directly to `url`; callers
    /// wanting atomicity write to a temporary name.
    public static func write(_ pixels: Tensor, to url: URL, bits: Int = 8) throws {
        let path = url.path
        guard pixels.rank == 3, (1...4).contains(pixels.shape[0]) else {
            throw MediaError.badOutput(.unsupportedPixelFormat, path,
                                       "a PNG holds images of shape [C, H, W] with C = 1, 2, 3 or 4 channels, "
                                       + "got a tensor of shape \(pixels.shape)")
        }
        guard bits == 8 || bits == 16 else {
            throw MediaError.badOutput(.invalidSetting, path, "PNG samples have 8 or 16 bits, not \(bits)")
        }
        let (c, h, w) = (pixels.shape[0], pixels.shape[1], pixels.shape[2])
        guard w > 0, h > 0 else {
            throw MediaError.badOutput(.badSize, path, "an image of \(w)×\(h) pixels has no pixels to write")
        }
        var image = png_image()
        image.version = pg_png_image_version()
        image.width = UInt32(w)
        image.height = UInt32(h)
        image.format = formatFlags(channels: c, sixteenBit: bits == 16)
        let ok: Int32
        if bits == 16 {
            let buffer = PixelLayout.interleave16(pixels, premultiplyAlpha: c == 2 || c == 4)
            ok = buffer.withUnsafeBytes { png_image_write_to_file(&image, path, 0, $0.baseAddress, 0, nil) }
        } else {
            let buffer = PixelLayout.interleave8(pixels)
            ok = buffer.withUnsafeBytes { png_image_write_to_file(&image, path, 0, $0.baseAddress, 0, nil) }
        }
        if ok == 0 || pg_png_image_failed(&image) != 0 {
            throw MediaError.libpng(image, path: path, writing: true)
        }
    }

    /// The decoded samples before conversion to Float, for callers that hand them to swscale.
    struct Samples {
        var header: PNGHeader
        var bytes8: [UInt8] = []    // interleaved, when bitDepth == 8
        var words16: [UInt16] = []  // interleaved, straight (not premultiplied) alpha, when bitDepth == 16

        func tensor() -> Tensor {
            let (c, h, w) = (header.channels, header.height, header.width)
            return header.bitDepth == 16
                ? PixelLayout.planar(words16, channels: c, height: h, width: w)
                : PixelLayout.planar(bytes8, channels: c, height: h, width: w)
        }
    }

    static func readSamples(_ url: URL) throws -> Samples {
        let path = url.path
        var image = png_image()
        image.version = pg_png_image_version()
        guard png_image_begin_read_from_file(&image, path) != 0 else {
            throw MediaError.libpng(image, path: path, writing: false)
        }
        var header = headerOf(image)
        // Ask for exactly the file's own layout so libpng converts nothing but palettes.
        image.format = formatFlags(channels: header.channels, sixteenBit: header.bitDepth == 16)
        let count = header.width * header.height * header.channels
        var samples = Samples(header: header)
        let ok: Int32
        if header.bitDepth == 16 {
            var words = [UInt16](repeating: 0, count: count)
            ok = words.withUnsafeMutableBytes { png_image_finish_read(&image, nil, $0.baseAddress, 0, nil) }
            if header.hasAlpha { PixelLayout.unpremultiply(&words, channels: header.channels) }
            samples.words16 = words
        } else {
            var bytes = [UInt8](repeating: 0, count: count)
            ok = bytes.withUnsafeMutableBytes { png_image_finish_read(&image, nil, $0.baseAddress, 0, nil) }
            samples.bytes8 = bytes
        }
        // finish_read frees the png_image's internals on success and on failure.
        if ok == 0 || pg_png_image_failed(&image) != 0 {
            throw MediaError.libpng(image, path: path, writing: false)
        }
        header.bitDepth = header.bitDepth == 16 ? 16 : 8
        samples.header = header
        return samples
    }

    private static func headerOf(_ image: png_image) -> PNGHeader {
        let f = image.format
        let color = f & pg_png_format_flag_color() != 0
        let alpha = f & pg_png_format_flag_alpha() != 0
        let sixteen = f & pg_png_format_flag_linear() != 0 && f & pg_png_format_flag_colormap() == 0
        return PNGHeader(width: Int(image.width), height: Int(image.height),
                         channels: (color ? 3 : 1) + (alpha ? 1 : 0), bitDepth: sixteen ? 16 : 8)
    }

    private static func formatFlags(channels: Int, sixteenBit: Bool) -> UInt32 {
        let base: UInt32
        switch channels {
        case 1: base = pg_png_format_gray()
        case 2: base = pg_png_format_ga()
        case 3: base = pg_png_format_rgb()
        default: base = pg_png_format_rgba()
        }
        return sixteenBit ? base | pg_png_format_flag_linear() : base
    }
}

extension MediaError {
    /// The one place where libpng's failures (a message in the png_image) become `MediaError`s.
    static func libpng(_ image: png_image, path: String, writing: Bool) -> MediaError {
        let message = withUnsafeBytes(of: image.message) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        let cause = "libpng: " + message
        let lower = message.lowercased()
        if writing {
            return .unwritable(path, "the PNG file cannot be written", cause: cause)
        }
        if lower.contains("no such file") || !FileManager.default.fileExists(atPath: path) {
            return .notFound(path)
        }
        if lower.contains("is a directory") {
            return MediaError(.notMedia, path: path, "Cannot read '\(path)': it is a folder, not a PNG file", cause: cause)
        }
        let signature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        let head = FileHandle(forReadingAtPath: path).map { h in defer { try? h.close() }; return [UInt8](h.readData(ofLength: 8)) }
        if lower.contains("not a png") || lower.contains("signature") || (head.map { $0 != signature } ?? false) {
            return MediaError(.notMedia, path: path, "Cannot read '\(path)': it is not a PNG file", cause: cause)
        }
        if lower.contains("read error") || lower.contains("end of") || lower.contains("too short")
            || lower.contains("truncated") || lower.contains("not enough") {
            return MediaError(.truncated, path: path, "Cannot read '\(path)': the PNG file is truncated", cause: cause)
        }
        return MediaError(.corrupt, path: path, "Cannot read '\(path)': the PNG file is damaged", cause: cause)
    }
}
