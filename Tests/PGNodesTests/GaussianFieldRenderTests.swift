import Foundation
import PGFlow
import PGKernels
import PGMedia
@testable import PGNodes
import PGTensor
import Testing

/// builtin:head rendered through Splat at a neutral and an expressive pose, compared with stored
/// reference PNGs; each run's renders are left in the temporary folder to look at. Set
/// PGFLOW_UPDATE_FIXTURES=1 to rewrite the references after a deliberate change (and look at
/// them: they must show a head, and the expressive one an open mouth).
@Suite struct GaussianFieldRenderTests {
    static let size = 96
    static let references = ["neutral": FieldFixtures.directory.appendingPathComponent("field-head-neutral.png"),
                             "expressive": FieldFixtures.directory.appendingPathComponent("field-head-expressive.png")]

    /// A camera 0.8 m in front of the face, looking along −z (OpenCV axes: x right, y down).
    static func camera() -> Value {
        let s = Double(size)
        let w2c: [Float] = [1, 0, 0, 0,
                            0, -1, 0, -0.06,
                            0, 0, -1, 0.8,
                            0, 0, 0, 1]
        return .record(["fx": .number(160), "fy": .number(160), "cx": .number(s / 2), "cy": .number(s / 2),
                        "width": .number(s), "height": .number(s), "world_to_camera": .tensor(Tensor(shape: [4, 4], scalars: w2c))])
    }

    static func expressive() -> Tracking {
        let m = HeadModel.model
        var psi = [Float](repeating: 0, count: m.expressionCount)
        psi[HeadModel.expression("smile")!] = 0.8
        psi[HeadModel.expression("brow_raise")!] = 1
        psi[HeadModel.expression("blink_left")!] = 1
        var pose = [Float](repeating: 0, count: 3 * m.jointCount)
        pose[3 * 2] = 0.08      // head: a slight nod …
        pose[3 * 2 + 1] = 0.35  // … and a turn to the subject's left
        pose[3 * 1 + 2] = 0.06  // neck: a slight tilt
        return Tracking(model: HeadModel.name, expression: psi, pose: pose, jaw: SIMD3(0.4, 0, 0))
    }

    /// Renders both poses: RGB [3, H, W] in 0…1 on a white background, and alpha.
    static func render() throws -> [String: (rgb: Tensor, alpha: Tensor)] {
        let uv = 128
        let field = try FieldFixtures.field(["uv": .int(Int64(uv)), "features": .int(3), "init_opacity": .double(0.9)])
        let ctx = RunContext.standalone()
        let texture = Tensor(shape: [3, uv, uv], scalars: HeadModel.texture(resolution: uv))
        let p = try field.initialParameters(Inputs(["texture": .tensor(texture)]), context: ctx)
        let splat = try Splat(params: params(["background": .double(1)]))
        var out: [String: (rgb: Tensor, alpha: Tensor)] = [:]
        for (name, tracking) in [("neutral", Tracking(model: HeadModel.name)), ("expressive", expressive())] {
            let g = try field.evaluate(Inputs(["tracking": tracking.value], parameters: p), frame: 0, context: ctx)["gaussians"]!
            let image = try splat.evaluate(Inputs(["gaussians": g, "camera": camera()]), frame: 0, context: ctx)
            out[name] = (image["features"]!.tensor!, image["alpha"]!.tensor!)
        }
        return out
    }

    /// Mean of channel c over a pixel box.
    static func mean(_ t: Tensor, channel c: Int, rows: Range<Int>, cols: Range<Int>) -> Float {
        var s: Float = 0
        for y in rows { for x in cols { s += t[c, y, x] } }
        return s / Float(rows.count * cols.count)
    }

    @Test func theHeadRendersAndMatchesTheReferenceImages() throws {
        let images = try Self.render()
        let update = ProcessInfo.processInfo.environment["PGFLOW_UPDATE_FIXTURES"] == "1"
        let size = Self.size
        for (name, url) in Self.references.sorted(by: { $0.key < $1.key }) {
            let rgb = images[name]!.rgb
            #expect(rgb.shape == [3, size, size])
            if update {
                // Comparing a render with the file just written from it would prove nothing.
                try PNGImage.write(rgb, to: url)
                Issue.record("\(name): reference rewritten (PGFLOW_UPDATE_FIXTURES=1); look at it, then run again without the variable to check")
                continue
            }
            // Always left where a person can look at this run's render next to the reference.
            let render = FileManager.default.temporaryDirectory.appendingPathComponent("pgflow-field-head-\(name).png")
            try PNGImage.write(rgb, to: render)
            print("GaussianField render (\(name)): \(render.path), reference \(url.path)")
            let reference = try PNGImage.read(url).pixels
            #expect(reference.shape == [3, size, size])
            // 8-bit quantisation plus Float32 differences between machines: small on average, and
            // no pixel far off.
            var sum: Float = 0, worst: Float = 0
            for i in 0..<rgb.count {
                let d = abs(min(1, max(0, rgb.scalars[i])) - reference.scalars[i])
                sum += d
                worst = max(worst, d)
            }
            #expect(sum / Float(rgb.count) < 2.0 / 255 && worst < 0.25, "\(name): mean difference \(sum / Float(rgb.count) * 255)/255, worst \(worst)")
        }

        // What a head looks like from the front, independent of the references: an opaque
        // silhouette narrower at the neck than at the head and the shoulders, skin on the cheeks,
        // a dark-haired crown and a white background around.
        let neutral = images["neutral"]!
        func width(_ row: Int) -> Int { (0..<size).filter { neutral.alpha[0, row, $0] > 0.5 }.count }
        // Rows: crown ~12, eyes ~38, mouth ~52, chin ~60, neck ~68, shoulders from ~78.
        let headWidth = width(38), neckWidth = width(68), shoulderWidth = width(90)
        #expect(headWidth > 25 && headWidth < 45, "head \(headWidth) px wide")
        #expect(neckWidth < headWidth - 5 && shoulderWidth > 2 * headWidth, "neck \(neckWidth), shoulders \(shoulderWidth) px")
        #expect(neutral.alpha[0, 2, 2] < 0.01 && neutral.rgb[0, 2, 2] == 1, "background")
        let cheek = (0..<3).map { Self.mean(neutral.rgb, channel: $0, rows: 42..<46, cols: 38..<42) }
        #expect(cheek[0] > cheek[1] && cheek[1] > cheek[2] && cheek[0] > 0.5, "skin colour \(cheek)")
        let crown = (0..<3).map { Self.mean(neutral.rgb, channel: $0, rows: 14..<18, cols: 44..<52) }
        #expect(crown[0] < 0.35 && crown[0] > crown[2], "hair colour \(crown)")

        // The jaw opens: the darkest pixel around the mouth is the dark inside, and the lower face darkens.
        let expressive = images["expressive"]!
        func darkest(_ t: Tensor, rows: Range<Int>, cols: Range<Int>) -> Float {
            var best: Float = 3
            for y in rows { for x in cols { best = min(best, t[0, y, x] + t[1, y, x] + t[2, y, x]) } }
            return best
        }
        let closed = darkest(neutral.rgb, rows: 48..<58, cols: 38..<58), open = darkest(expressive.rgb, rows: 48..<60, cols: 38..<62)
        #expect(open < 0.6 * closed, "darkest mouth pixel: closed \(closed), open \(open)")
        let lipsClosed = Self.mean(neutral.rgb, channel: 1, rows: 49..<56, cols: 42..<54)
        let lipsOpen = Self.mean(expressive.rgb, channel: 1, rows: 49..<56, cols: 44..<58)
        #expect(lipsOpen < lipsClosed, "the open mouth should darken the lower face: \(lipsClosed) → \(lipsOpen)")
    }
}
