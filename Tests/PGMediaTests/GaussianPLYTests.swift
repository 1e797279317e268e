import Foundation
import PGTensor
import Testing
@testable import PGMedia

@Suite("3DGS .ply")
struct GaussianPLYTests {
    /// A cloud with every optional part, values that are not round in binary or decimal.
    static func cloud(count n: Int, seed: UInt64, isotropic: Bool = false, rest: Int = 9, features: Int = 4) -> GaussianPLY {
        var state = seed
        func next() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state >> 11) % 2_000_001) / 1_000_000 * 1.37 - 0.013
        }
        func t(_ shape: [Int]) -> Tensor { Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in next() }) }
        return GaussianPLY(means: t([n, 3]), normals: t([n, 3]), sphericalHarmonicsDC: t([n, 3]),
                           sphericalHarmonicsRest: rest > 0 ? t([n, rest]) : nil, opacityLogits: t([n]),
                           logScales: t([n, isotropic ? 1 : 3]), quats: isotropic ? nil : t([n, 4]),
                           features: features > 0 ? t([n, features]) : nil)
    }

    @Test(arguments: GaussianPLY.Format.allCases)
    func roundTrip(_ format: GaussianPLY.Format) throws {
        let dir = TempFolder()
        defer { dir.remove() }
        for (i, c) in [Self.cloud(count: 57, seed: 1), Self.cloud(count: 20, seed: 2, isotropic: true, rest: 0, features: 32),
                       Self.cloud(count: 0, seed: 3), Self.cloud(count: 5, seed: 4, rest: 45, features: 0)].enumerated() {
            let url = dir.file("cloud\(i).ply")
            try c.write(to: url, format: format)
            let back = try GaussianPLY.read(url)
            #expect(back == c, "\(format) round trip of cloud \(i) changed it")
        }
        #expect(dir.contents().allSatisfy { !$0.hasPrefix(".") }, "no temporary files left: \(dir.contents())")
    }

    @Test func readsHandWrittenASCIIWithOtherTypesAndElements() throws {
        let text = """
        ply
        format ascii 1.0
        comment made by hand
        element camera 1
        property float fx
        property float fy
        element vertex 2
        property double x
        property double y
        property double z
        property uchar red
        property float opacity
        property float scale_0
        property short f_feat_1
        property int f_feat_0
        end_header
        500 500
        1.5 -2 3e-1 255 0.25 -4.5 7 -8
        0 0 0 0 -1 -3 1 2
        """
        let c = try GaussianPLY.parse(Data(text.utf8), path: "hand.ply")
        #expect(c.count == 2 && c.isotropic && c.quats == nil && c.sphericalHarmonicsDC == nil)
        #expect(c.means.scalars == [1.5, -2, 0.3, 0, 0, 0])
        #expect(c.opacityLogits.scalars == [0.25, -1])
        #expect(c.logScales.shape == [2, 1] && c.logScales.scalars == [-4.5, -3])
        #expect(c.features?.scalars == [-8, 7, 2, 1], "f_feat columns go by their number, not file order")
    }

    @Test func readsBigEndianAndMixedBinaryTypes() throws {
        var data = Data("""
        ply
        format binary_big_endian 1.0
        element vertex 1
        property float x
        property double y
        property int16 z
        property float opacity
        property float scale_0
        property float scale_1
        property float scale_2
        end_header\n
        """.utf8)
        func be<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.bigEndian) { data.append(contentsOf: $0) } }
        be(Float(1.25).bitPattern); be(Double(-2.5).bitPattern); be(Int16(-7))
        be(Float(0.5).bitPattern); be(Float(-1).bitPattern); be(Float(-2).bitPattern); be(Float(-3).bitPattern)
        let c = try GaussianPLY.parse(data, path: "be.ply")
        #expect(c.means.scalars == [1.25, -2.5, -7])
        #expect(c.logScales.scalars == [-1, -2, -3] && c.opacityLogits.scalars == [0.5])
    }

    @Test func rgbFromSphericalHarmonics() {
        let c = GaussianPLY(means: Tensor(zeros: [1, 3]), sphericalHarmonicsDC: Tensor(shape: [1, 3], scalars: [0, 1, -3]),
                            opacityLogits: Tensor(zeros: [1]), logScales: Tensor(zeros: [1, 3]))
        let rgb = c.rgb!.scalars
        #expect(rgb[0] == 0.5 && abs(rgb[1] - 0.78209479) < 1e-6 && rgb[2] == 0)
    }

    /// Each malformed file fails with a MediaError whose message names the file and the problem.
    @Test func malformedFilesGiveClearErrors() throws {
        let good = Self.cloud(count: 3, seed: 9).encoded()
        let header = "ply\nformat binary_little_endian 1.0\nelement vertex 1\n"
        let cases: [(String, Data, MediaError.Code, String)] = [
            ("not a ply", Data("hello world\n".utf8), .notMedia, "not a PLY file"),
            ("no end_header", Data("ply\nformat ascii 1.0\nelement vertex 1\n".utf8), .corrupt, "end_header"),
            ("unknown format", Data("ply\nformat binary_middle_endian 1.0\nend_header\n".utf8), .corrupt, "unknown format"),
            ("no vertex", Data("ply\nformat ascii 1.0\nelement face 0\nend_header\n".utf8), .corrupt, "no 'vertex' element"),
            ("missing opacity", Data((header + "property float x\nproperty float y\nproperty float z\nproperty float scale_0\nend_header\n").utf8)
                + Data(count: 16), .corrupt, "'opacity'"),
            ("two scales", Data((header + "property float x\nproperty float y\nproperty float z\nproperty float opacity\n"
                                 + "property float scale_0\nproperty float scale_1\nend_header\n").utf8) + Data(count: 24),
             .corrupt, "scale_0..2"),
            ("partial rotation", Data((header + "property float x\nproperty float y\nproperty float z\nproperty float opacity\n"
                                       + "property float scale_0\nproperty float rot_0\nend_header\n").utf8) + Data(count: 24),
             .corrupt, "rot_1"),
            ("gap in f_rest", Data((header + "property float x\nproperty float y\nproperty float z\nproperty float opacity\n"
                                    + "property float scale_0\nproperty float f_rest_0\nproperty float f_rest_2\nend_header\n").utf8)
                + Data(count: 28), .corrupt, "f_rest_1"),
            ("list property", Data((header + "property list uchar int x\nend_header\n").utf8), .invalidSetting, "list"),
            ("truncated binary", good.prefix(good.count - 5), .truncated, "truncated"),
            ("bad ascii number", Data("ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nproperty float z\nproperty float opacity\nproperty float scale_0\nend_header\n1 2 three 4 5\n".utf8),
             .corrupt, "'three' is not a number"),
            ("short ascii", Data("ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\nproperty float opacity\nproperty float scale_0\nend_header\n1 2 3 4 5\n1 2\n".utf8),
             .truncated, "vertex 1"),
            ("duplicate property", Data((header + "property float x\nproperty float x\nend_header\n").utf8), .corrupt, "twice"),
        ]
        for (label, data, code, phrase) in cases {
            do {
                _ = try GaussianPLY.parse(data, path: "/tmp/\(label.replacingOccurrences(of: " ", with: "-")).ply")
                Issue.record("\(label): parsed without an error")
            } catch let e as MediaError {
                #expect(e.code == code, "\(label): code \(e.code), expected \(code) — \(e)")
                #expect(e.description.contains(phrase), "\(label): '\(e)' should mention \(phrase)")
                #expect(e.description.contains(".ply"), "\(label): '\(e)' should name the file")
            }
        }
        #expect(throws: MediaError.self) { try GaussianPLY.read(URL(fileURLWithPath: "/nonexistent/cloud.ply")) }
    }
}
