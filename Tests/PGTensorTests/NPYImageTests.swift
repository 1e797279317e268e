import Foundation
import PGTensor
import Testing

/// Images as plugins see them: [C, H, W] in pgflow, [H, W, C] in the .npy file.
struct NPYImageTests {
    @Test func aCHWImageIsWrittenAsHWCAndReadBackExactly() throws {
        for c in [1, 3, 4] {
            let (h, w) = (3, 5)
            let image = Tensor(shape: [c, h, w], scalars: (0..<(c * h * w)).map { Float($0) * 0.25 - 1 })
            let data = image.npyDataHWC()
            // Through the general reader: the file holds [H, W, C] with pixel-interleaved channels.
            let hwc = try Tensor(npy: data)
            #expect(hwc.shape == [h, w, c])
            for y in 0..<h { for x in 0..<w { for ch in 0..<c { #expect(hwc[y, x, ch] == image[ch, y, x]) } } }
            #expect(try Tensor(npyHWC: data) == image)
        }
    }

    @Test func otherDTypesAndTwoDimensionalMasksAreConverted() throws {
        // [2, 2] float64 as NumPy writes it: read as a one-channel image.
        let header = "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }"
        let text: [UInt8] = [0x93] + Array("NUMPY".utf8) + [1, 0]
        let padded = header + String(repeating: " ", count: 64 - (10 + header.count + 1) % 64) + "\n"
        var data = Data(text) + withUnsafeBytes(of: UInt16(padded.utf8.count).littleEndian) { Data($0) } + Data(padded.utf8)
        for v in [0.5, 1.0, 0.0, 0.25] { data += withUnsafeBytes(of: v.bitPattern.littleEndian) { Data($0) } }
        let mask = try Tensor(npyHWC: data)
        #expect(mask.shape == [1, 2, 2] && mask.scalars == [0.5, 1, 0, 0.25])
    }
}
