import Foundation

/// A folder of PNG files read as a video: frames in natural name order (`frame2.png` before
/// `frame10.png`), hidden files and other extensions ignored. A folder has no frame rate, so it
/// plays at `VideoInfo.defaultFPS`. A single `.png` file is a one-frame sequence.
final class PNGSequence {
    let path: String
    let files: [URL]
    let info: VideoInfo
    private let first: PNGHeader

    convenience init(folder: URL) throws {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: folder.path)
        } catch {
            throw MediaError(.notMedia, path: folder.path, "Cannot read '\(folder.path)': the folder cannot be listed",
                             cause: (error as NSError).localizedDescription)
        }
        let pngs = names.filter { !$0.hasPrefix(".") && $0.lowercased().hasSuffix(".png") }
            .sorted { PNGSequence.naturalOrder($0, $1) }
        guard !pngs.isEmpty else {
            throw MediaError.noFrames(folder.path, "the folder contains no PNG frames (*.png)")
        }
        try self.init(path: folder.path, files: pngs.map { folder.appendingPathComponent($0) })
    }

    convenience init(file: URL) throws {
        try self.init(path: file.path, files: [file])
    }

    private init(path: String, files: [URL]) throws {
        self.path = path
        self.files = files
        first = try PNGImage.header(files[0])
        let names = [1: "gray", 2: "ya8", 3: "rgb24", 4: "rgba"]
        let names16 = [1: "gray16", 2: "ya16", 3: "rgb48", 4: "rgba64"]
        info = VideoInfo(path: path, width: first.width, height: first.height, fps: VideoInfo.defaultFPS,
                         frameCount: files.count, duration: Double(files.count) / VideoInfo.defaultFPS, codec: "png",
                         pixelFormat: (first.bitDepth == 16 ? names16 : names)[first.channels] ?? "unknown",
                         hasAlpha: first.hasAlpha, pixelAspect: 1, isImageSequence: true)
    }

    /// Frame `index` as packed 16-bit RGB or RGBA, checked to match the first frame's size.
    func packedFrame(_ index: Int) throws -> (samples: [UInt16], channels: Int, width: Int, height: Int) {
        let file = files[index]
        let s = try PNGImage.readSamples(file)
        guard s.header.width == first.width && s.header.height == first.height else {
            throw MediaError(.badSize, path: file.path,
                             "Cannot read '\(file.path)': it is \(s.header.width)×\(s.header.height) pixels but the "
                             + "sequence's first frame \(files[0].lastPathComponent) is \(first.width)×\(first.height)")
        }
        let (packed, channels) = PixelLayout.expandToRGB16(s)
        return (packed, channels, s.header.width, s.header.height)
    }

    /// Compares names with digit runs as numbers, so `f2.png` < `f10.png`.
    static func naturalOrder(_ a: String, _ b: String) -> Bool {
        var i = a.unicodeScalars.makeIterator(), j = b.unicodeScalars.makeIterator()
        var ca = i.next(), cb = j.next()
        func isDigit(_ c: Unicode.Scalar?) -> Bool { c.map { $0.value >= 48 && $0.value <= 57 } ?? false }
        while let x = ca, let y = cb {
            if isDigit(x) && isDigit(y) {
                var na = "", nb = ""
                while isDigit(ca) { na.unicodeScalars.append(ca!); ca = i.next() }
                while isDigit(cb) { nb.unicodeScalars.append(cb!); cb = j.next() }
                let ta = na.drop { $0 == "0" }, tb = nb.drop { $0 == "0" }
                if ta.count != tb.count { return ta.count < tb.count }
                if ta != tb { return ta < tb }
                if na.count != nb.count { return na.count > nb.count }   // more leading zeros first, for a total order
                continue
            }
            if x != y { return x.value < y.value }
            ca = i.next(); cb = j.next()
        }
        return ca == nil && cb != nil
    }
}

extension PixelLayout {
    /// PNG samples (gray, gray+alpha, RGB, RGBA; 8 or 16 bits) → packed 16-bit RGB or RGBA.
    static func expandToRGB16(_ s: PNGImage.Samples) -> ([UInt16], Int) {
        let c = s.header.channels
        let outC = s.header.hasAlpha ? 4 : 3
        let n = s.header.width * s.header.height
        var out = [UInt16](repeating: 0, count: n * outC)
        func expand<T: BinaryInteger>(_ src: UnsafeBufferPointer<T>, _ scale: UInt16, _ dst: UnsafeMutableBufferPointer<UInt16>) {
            for i in 0..<n {
                let p = i * c, q = i * outC
                if c <= 2 {
                    let g = UInt16(src[p]) &* scale
                    dst[q] = g; dst[q + 1] = g; dst[q + 2] = g
                    if c == 2 { dst[q + 3] = UInt16(src[p + 1]) &* scale }
                } else {
                    for k in 0..<c { dst[q + k] = UInt16(src[p + k]) &* scale }
                }
            }
        }
        out.withUnsafeMutableBufferPointer { dst in
            if s.header.bitDepth == 16 {
                s.words16.withUnsafeBufferPointer { expand($0, 1, dst) }
            } else {
                // 8 → 16 bits by ×257, which maps 255 to 65535 exactly.
                s.bytes8.withUnsafeBufferPointer { expand($0, 257, dst) }
            }
        }
        return (out, outC)
    }
}
