import Foundation
import PGTensor
import Testing
@testable import PGMedia

/// Tests on the real clip fetched by Scripts/fetch-sample.sh; skipped when it is not there.
@Suite struct SampleClipTests {
    @Test(.enabled(if: Fixtures.sampleClip != nil, "run Scripts/fetch-sample.sh to fetch data/single_face.mp4"))
    func decodesAllFramesAtNativeSize() throws {
        let url = try #require(Fixtures.sampleClip)
        let reader = try VideoReader(url)
        #expect(reader.info.width == 640)
        #expect(reader.info.height == 360)
        #expect(reader.info.frameCount == 72)
        #expect(reader.info.codec == "h264")
        var frames = 0
        var meanLuma: Float = 0
        while let f = try reader.next() {
            #expect(f.index == frames)
            #expect(f.rgb.shape == [3, 360, 640])
            #expect(f.alpha.shape == [1, 360, 640])
            if frames == 0 {
                meanLuma = f.rgb.scalars.reduce(0, +) / Float(f.rgb.count)
                #expect(f.alpha.scalars.allSatisfy { $0 == 1 })
            }
            frames += 1
        }
        #expect(frames == 72)
        // A real picture, not black or white: mid-range mean and values inside 0…1.
        #expect(meanLuma > 0.1 && meanLuma < 0.9)
        print("single_face.mp4: \(reader.info)")
    }
}

enum Fixtures {
    /// Repository root, found from this file's path (Tests/PGMediaTests/…).
    static let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    static var sampleClip: URL? {
        let url = repoRoot.appendingPathComponent("data/single_face.mp4")
        return FileManager.default.fileExists(atPath: url.path) ? url : nil
    }
}
