/// A picture size in pixels.
public struct ImageSize: Sendable, Equatable, Hashable, CustomStringConvertible {
    public var width: Int
    public var height: Int
    public init(width: Int, height: Int) {
        self.width = width
        self.height = height
    }
    public var description: String { "\(width)×\(height)" }
}

/// How a picture is brought to a requested output size.
///
/// - `stretch`: scale width and height independently to the output size (may distort).
/// - `crop`: keep the aspect ratio, scale until the output is covered, cut the overflow evenly from
///   both sides (a centre crop).
/// - `pad`: keep the aspect ratio, scale until the picture fits inside, fill the rest with black
///   bars evenly on both sides (letterbox / pillarbox); the bars have alpha 0.
///
/// The aspect ratio is the *display* aspect, so anamorphic video (non-square pixels) comes out right.
public enum FitMode: String, Sendable, CaseIterable {
    case stretch, crop, pad
}

/// Where the resampled source lands in the output: the source is scaled to `scaled`, and its
/// top-left pixel goes to (`offsetX`, `offsetY`) of the output. Offsets are negative for `crop`
/// (the part outside is cut), positive for `pad` (the part uncovered is a bar), zero for `stretch`.
public struct FitGeometry: Sendable, Equatable {
    public var output: ImageSize
    public var scaled: ImageSize
    public var offsetX: Int
    public var offsetY: Int

    public init(output: ImageSize, scaled: ImageSize, offsetX: Int, offsetY: Int) {
        self.output = output
        self.scaled = scaled
        self.offsetX = offsetX
        self.offsetY = offsetY
    }

    /// - Parameter pixelAspect: width of one source pixel relative to its height (1 for square pixels).
    public init(source: ImageSize, pixelAspect: Double = 1, output: ImageSize, fit: FitMode) {
        precondition(source.width > 0 && source.height > 0 && output.width > 0 && output.height > 0,
                     "fit from \(source) to \(output): sizes must be positive")
        let displayW = Double(source.width) * (pixelAspect > 0 && pixelAspect.isFinite ? pixelAspect : 1)
        let displayH = Double(source.height)
        let sx = Double(output.width) / displayW, sy = Double(output.height) / displayH
        var scaled = output
        switch fit {
        case .stretch:
            break
        case .crop:
            let s = max(sx, sy)
            scaled = ImageSize(width: max(output.width, Int((displayW * s).rounded())),
                               height: max(output.height, Int((displayH * s).rounded())))
        case .pad:
            let s = min(sx, sy)
            scaled = ImageSize(width: min(output.width, max(1, Int((displayW * s).rounded()))),
                               height: min(output.height, max(1, Int((displayH * s).rounded()))))
        }
        // Integer halves: an odd leftover puts the extra pixel on the right/bottom.
        self.init(output: output, scaled: scaled,
                  offsetX: (output.width - scaled.width) / 2, offsetY: (output.height - scaled.height) / 2)
    }

    /// True when the source is copied 1:1 into the output.
    public func isIdentity(for source: ImageSize) -> Bool {
        scaled == source && scaled == output && offsetX == 0 && offsetY == 0
    }
}
