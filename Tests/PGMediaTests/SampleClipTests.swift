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
            #expect(abs(f.time - Double(frames) / 30) < 1e-3)
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

    @Test(.enabled(if: Fixtures.sampleClip != nil, "run Scripts/fetch-sample.sh to fetch data/single_face.mp4"),
          arguments: FitMode.allCases)
    func decodesResizedTo256(fit: FitMode) throws {
        let url = try #require(Fixtures.sampleClip)
        let frames = try decodeAll(url, size: ImageSize(width: 256, height: 256), fit: fit)
        #expect(frames.count == 72)
        #expect(frames.allSatisfy { $0.rgb.shape == [3, 256, 256] })
        // Only pad leaves uncovered (alpha 0) rows: 640×360 → 256×144 with 56-row bars.
        let covered = frames[0].alpha.scalars.reduce(0, +)
        #expect(covered == Float(fit == .pad ? 256 * 144 : 256 * 256))
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
