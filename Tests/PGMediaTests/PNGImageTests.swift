import Foundation
import PGTensor
import Testing
@testable import PGMedia

@Suite struct PNGImageTests {
    /// A pattern whose values are exact samples at the given depth, so a round trip must be exact.
    static func pattern(channels c: Int, bits: Int, width w: Int = 7, height h: Int = 5) -> Tensor {
        let top = Float(bits == 8 ? 255 : 65535)
        var t = Tensor(zeros: [c, h, w])
        for ch in 0..<c {
            for y in 0..<h {
                for x in 0..<w {
                    let k = (x * 37 + y * 101 + ch * 53) % Int(top + 1)
                    t[ch, y, x] = Float(k) / top
                }
            }
        }
        if c == 2 || c == 4 {   // opaque alpha keeps 16-bit colour exact (libpng premultiplies it)
            for y in 0..<h { for x in 0..<w { t[c - 1, y, x] = 1 } }
        }
        return t
    }

    @Test(arguments: [1, 2, 3, 4], [8, 16])
    func roundTripIsExact(channels: Int, bits: Int) throws {
        let dir = TempFolder()
        defer { dir.remove() }
        let url = dir.file("image.png")
        let image = Self.pattern(channels: channels, bits: bits)
        try PNGImage.write(image, to: url, bits: bits)
        let header = try PNGImage.header(url)
        #expect(header == PNGHeader(width: 7, height: 5, channels: channels, bitDepth: bits))
        let (back, h2) = try PNGImage.read(url)
        #expect(h2 == header)
        #expect(back.shape == image.shape)
        let worst = zip(back.scalars, image.scalars).map { abs($0 - $1) }.max()!
        #expect(worst < 1e-6)
    }

    @Test func sixteenBitAlphaIsStraightNotPremultiplied() throws {
        let dir = TempFolder()
        defer { dir.remove() }
        let url = dir.file("alpha16.png")
        var image = Tensor(zeros: [4, 1, 3])
        for x in 0..<3 {
            image[0, 0, x] = 0.8; image[1, 0, x] = 0.4; image[2, 0, x] = 0.1
            image[3, 0, x] = [1, 0.5, 0.25][x]
        }
        try PNGImage.write(image, to: url, bits: 16)
        let (back, _) = try PNGImage.read(url)
        for x in 0..<3 {
            #expect(abs(back[0, 0, x] - 0.8) < 1e-3)
            #expect(abs(back[1, 0, x] - 0.4) < 1e-3)
            #expect(abs(back[3, 0, x] - image[3, 0, x]) < 1e-4)
        }
    }

    @Test func valuesOutsideZeroToOneAreClamped() throws {
        let dir = TempFolder()
        defer { dir.remove() }
        let url = dir.file("clamp.png")
        let image = Tensor(shape: [1, 1, 4], scalars: [-0.5, 1.5, .nan, 0.5])
        try PNGImage.write(image, to: url)
        let (back, _) = try PNGImage.read(url)
        #expect(back.scalars == [0, 1, 0, Float(128) / 255])
    }

    @Test func missingNotPNGAndTruncatedFilesSayWhich() throws {
        let dir = TempFolder()
        defer { dir.remove() }
        let missing = dir.file("missing.png")
        let e1 = mediaError { _ = try PNGImage.read(missing) }
        #expect(e1?.code == .fileNotFound)
        #expect(e1?.description == "Cannot read '\(missing.path)': no such file or folder.")

        let text = dir.file("text.png")
        try "not an image".write(to: text, atomically: true, encoding: .utf8)
        let e2 = mediaError { _ = try PNGImage.read(text) }
        #expect(e2?.code == .notMedia)
        #expect(e2?.description.hasPrefix("Cannot read '\(text.path)': it is not a PNG file") == true)

        let good = dir.file("good.png")
        try PNGImage.write(Synthetic.frame(0, width: 64, height: 64), to: good)
        let data = try Data(contentsOf: good)
        let cut = dir.file("cut.png")
        try data.prefix(data.count / 2).write(to: cut)
        let e3 = mediaError { _ = try PNGImage.read(cut) }
        #expect(e3?.code == .truncated)
        #expect(e3?.description.hasPrefix("Cannot read '\(cut.path)': the PNG file is truncated") == true)
    }

    @Test func writeRejectsBadShapesAndDepths() throws {
        let dir = TempFolder()
        defer { dir.remove() }
        let url = dir.file("bad.png")
        let e1 = mediaError { try PNGImage.write(Tensor(zeros: [5, 2, 2]), to: url) }
        #expect(e1?.code == .unsupportedPixelFormat)
        #expect(e1?.description == "Cannot write '\(url.path)': a PNG holds images of shape [C, H, W] with C = 1, 2, 3 or 4 channels, got a tensor of shape [5, 2, 2].")
        let e2 = mediaError { try PNGImage.write(Tensor(zeros: [3, 2, 2]), to: url, bits: 12) }
        #expect(e2?.code == .invalidSetting)
        let e3 = mediaError { try PNGImage.write(Tensor(zeros: [3, 0, 2]), to: url) }
        #expect(e3?.code == .badSize)
        #expect(dir.contents().isEmpty)
    }
}
