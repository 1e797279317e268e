import Foundation
import PGTensor
import Testing
@testable import PGMedia

@Suite struct ResizeTests {
    @Test func fitGeometryForAWideClipIntoASquare() {
        let src = ImageSize(width: 640, height: 360), out = ImageSize(width: 256, height: 256)
        #expect(FitGeometry(source: src, output: out, fit: .stretch)
                == FitGeometry(output: out, scaled: out, offsetX: 0, offsetY: 0))
        // crop: height fills 256, width 640·256/360 = 455.1 → 455, centred: 99 columns cut on the left.
        #expect(FitGeometry(source: src, output: out, fit: .crop)
                == FitGeometry(output: out, scaled: ImageSize(width: 455, height: 256), offsetX: -99, offsetY: 0))
        // pad: width fills 256, height 360·256/640 = 144, bars of 56 rows above and below.
        #expect(FitGeometry(source: src, output: out, fit: .pad)
                == FitGeometry(output: out, scaled: ImageSize(width: 256, height: 144), offsetX: 0, offsetY: 56))
    }

    @Test func fitGeometryUsesDisplayAspect() {
        // 720×576 PAL with 16:15 pixels displays as 768×576 (4:3).
        let g = FitGeometry(source: ImageSize(width: 720, height: 576), pixelAspect: 16.0 / 15,
                            output: ImageSize(width: 400, height: 300), fit: .pad)
        #expect(g.scaled == ImageSize(width: 400, height: 300))
    }

    /// A 200×100 picture: left half red, right half blue, written as a one-file PNG sequence.
    func halves(_ dir: TempFolder) throws -> URL {
        var t = Tensor(zeros: [3, 100, 200])
        for y in 0..<100 { for x in 0..<200 { if x < 100 { t[0, y, x] = 1 } else { t[2, y, x] = 1 } } }
        let url = dir.file("halves.png")
        try PNGImage.write(t, to: url)
        return url
    }

    @Test func cropKeepsTheCentre() throws {
        let dir = TempFolder()
        defer { dir.remove() }
        let f = try #require(try decodeAll(try halves(dir), size: ImageSize(width: 50, height: 50), fit: .crop).first)
        #expect(f.rgb.shape == [3, 50, 50])
        #expect(f.rgb[0, 25, 5] > 0.95 && f.rgb[2, 25, 5] < 0.05)    // left quarter of the output: red
        #expect(f.rgb[2, 25, 45] > 0.95 && f.rgb[0, 25, 45] < 0.05)  // right quarter: blue
        #expect(f.alpha.scalars.allSatisfy { $0 == 1 })
    }

    @Test func padLetterboxesWithTransparentBlackBars() throws {
        let dir = TempFolder()
        defer { dir.remove() }
        let f = try #require(try decodeAll(try halves(dir), size: ImageSize(width: 40, height: 40), fit: .pad).first)
        // 200×100 into 40×40: picture 40×20 at rows 10..<30.
        for y in [0, 9, 30, 39] {
            #expect(f.alpha[0, y, 20] == 0)
            #expect(f.rgb[0, y, 20] == 0 && f.rgb[1, y, 20] == 0 && f.rgb[2, y, 20] == 0)
        }
        for y in [10, 20, 29] { #expect(f.alpha[0, y, 20] == 1) }
        #expect(f.rgb[0, 20, 5] > 0.95)
        #expect(f.rgb[2, 20, 35] > 0.95)
    }

    @Test func stretchFillsTheWholeFrame() throws {
        let dir = TempFolder()
        defer { dir.remove() }
        let f = try #require(try decodeAll(try halves(dir), size: ImageSize(width: 30, height: 60), fit: .stretch).first)
        #expect(f.rgb.shape == [3, 60, 30])
        #expect(f.rgb[0, 30, 3] > 0.95)
        #expect(f.rgb[2, 30, 27] > 0.95)
        #expect(f.alpha.scalars.allSatisfy { $0 == 1 })
    }

    @Test func videoResizeMatchesDirectRendering() throws {
        let dir = TempFolder()
        defer { dir.remove() }
        let url = dir.file("big.mp4")
        try encode(Synthetic.frames(3, width: 128, height: 96), to: url, EncoderSettings(crf: 10, chroma: .yuv444p))
        let small = try decodeAll(url, size: ImageSize(width: 64, height: 48), fit: .stretch)
        #expect(small.count == 3)
        // Halving a smooth picture ≈ rendering it at half size.
        let direct = Synthetic.frame(1, width: 64, height: 48)
        #expect(psnr(small[1].rgb, direct) > 28)
    }

    @Test func grayAndRGBAPNGFolders() throws {
        let dir = TempFolder()
        defer { dir.remove() }
        let folder = dir.file("seq")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let rgba = Synthetic.frame(0, width: 16, height: 8, channels: 4)
        // Natural order: 2 before 10.
        try PNGImage.write(rgba, to: folder.appendingPathComponent("f10.png"))
        try PNGImage.write(Tensor(repeating: 0.5, shape: [4, 8, 16]), to: folder.appendingPathComponent("f2.png"))
        try "ignored".write(to: folder.appendingPathComponent("notes.txt"), atomically: true, encoding: .utf8)
        let frames = try decodeAll(folder)
        #expect(frames.count == 2)
        #expect(abs(frames[0].rgb[0, 3, 3] - 0.5) < 0.003)
        // Alpha comes from the PNG's fourth channel.
        let alpha = Tensor(shape: [1, 8, 16], scalars: Array(rgba.scalars[(3 * 128)...]))
        #expect(zip(frames[1].alpha.scalars, alpha.scalars).allSatisfy { abs($0 - $1) < 0.003 })

        let gray = dir.file("gray.png")
        try PNGImage.write(Tensor(repeating: 0.25, shape: [1, 4, 4]), to: gray, bits: 16)
        let g = try #require(try decodeAll(gray, size: ImageSize(width: 8, height: 8)).first)
        #expect(g.rgb.scalars.allSatisfy { abs($0 - 0.25) < 1e-3 })
    }

    @Test func naturalOrder() {
        let names = ["f10.png", "f2.png", "f1.png", "g.png", "f02.png"]
        #expect(names.sorted(by: PNGSequence.naturalOrder) == ["f1.png", "f02.png", "f2.png", "f10.png", "g.png"])
    }
}
