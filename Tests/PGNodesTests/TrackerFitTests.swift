import Foundation
import Synchronization
import PGFlow
import PGKernels
@testable import PGNodes
import PGTensor
import Testing

/// Tracker mode fit on the synthetic performance, whose truth is known: the observations are the
/// true projected landmarks plus seeded noise (the detector cannot be used on the synthetic head,
/// issue 14), some frames lose the face, and the fit must find the truth, flag the lost frames and
/// give finite, interpolated tracking there.
@Suite struct TrackerFitTests {
    static let size = 128

    /// The performance's frames: tracking, camera and the true landmarks (pixels).
    static func performance(frames: Int) throws -> [(Value, Value, [SIMD2<Double>])] {
        guard let spec = try Catalog.load(shippedCatalog)["Performance"] else { throw OperatorError("no Performance") }
        var values: [String: JSON] = [:]
        for p in spec.params { if let d = p.defaultValue { values[p.name] = d } }
        values["frames"] = .int(Int64(frames)); values["width"] = .int(Int64(size)); values["height"] = .int(Int64(size))
        let actor = try Performance(params: Params(values, baseDirectory: shippedCatalog))
        let project = try Landmarks(params: Params(["model": .string(HeadModel.name)], baseDirectory: shippedCatalog))
        let ctx = RunContext.standalone()
        return try (0..<frames).map { t in
            let out = try actor.evaluate(Inputs([:]), frame: t, context: ctx)
            let points = try project.evaluate(Inputs(["tracking": out["tracking"]!, "camera": out["camera"]!]), frame: t, context: ctx)["points"]!.tensor!
            return (out["tracking"]!, out["camera"]!, (0..<68).map { SIMD2(Double(points.scalars[2 * $0]), Double(points.scalars[2 * $0 + 1])) })
        }
    }

    static func detections(_ truth: [[SIMD2<Double>]], noise: Double, missing: Set<Int>, seed: UInt64) -> Tensor {
        var rng = SplitMix64(seed: seed)
        func normal() -> Double { rng.boxMuller().0 }
        var scalars: [Float] = []
        for (t, points) in truth.enumerated() {
            for p in points {
                scalars += missing.contains(t) ? [0, 0, 0] : [Float(p.x + noise * normal()), Float(p.y + noise * normal()), 1]
            }
        }
        return Tensor(shape: [truth.count, 68, 3], scalars: scalars)
    }

    static func meta(frames: Int) -> Value {
        .record(["width": .number(Double(size)), "height": .number(Double(size)), "frame_count": .number(Double(frames))])
    }

    @Test func theFitFindsTheTruthAndInterpolatesLostFrames() throws {
        let frames = 16
        let truth = try Self.performance(frames: frames)
        let missing: Set<Int> = [6, 7]
        let op = try TrackerFixtures.tracker(["mode": .string("fit"), "iterations": .int(150)], base: shippedCatalog)
        let inputs = Inputs(["meta": Self.meta(frames: frames),
                             "landmarks": .tensor(Self.detections(truth.map(\.2), noise: 0.75, missing: missing, seed: 3))])
        let warnings = Mutex<[String]>([])
        let ctx = RunContext(nodeID: "track", nodeType: "Tracker", graphDirectory: shippedCatalog, onWarning: { w in warnings.withLock { $0.append(w) } })
        #expect(try op.frameCount(inputs, context: ctx) == frames)
        let report = try #require(try op.evaluate(inputs, frame: nil, context: ctx)["fit"]?.record)
        #expect(report["detected"]?.number == Double(frames - missing.count))
        #expect(report["interpolated"]?.list?.compactMap(\.number) == [6, 7])
        let said = warnings.withLock { $0 }
        #expect(said.contains { $0.contains("no face in 2 of 16 frames (6–7)") }, "\(said)")
        // At 128² with 0.75 px noise (1.5 px at 256²), the landmarks land on the truth.
        let project = try Landmarks(params: Params(["model": .string(HeadModel.name)], baseDirectory: shippedCatalog))
        var worst = 0.0
        for t in 0..<frames {
            let out = try op.evaluate(inputs, frame: t, context: ctx)
            #expect(out["tracking"]?["detected"]?.number == (missing.contains(t) ? 0 : 1))
            let points = try project.evaluate(Inputs(["tracking": out["tracking"]!, "camera": out["camera"]!]), frame: t, context: ctx)["points"]!.tensor!
            var sum = 0.0
            for k in 0..<68 {
                let d = SIMD2<Double>(Double(points.scalars[2 * k]), Double(points.scalars[2 * k + 1])) - truth[t].2[k]
                sum += (d * d).sum().squareRoot()
            }
            let error = sum / 68
            worst = max(worst, missing.contains(t) ? 0 : error)
            // A lost frame lies between its neighbours: finite and near the truth of a slow clip.
            #expect(error.isFinite && error < (missing.contains(t) ? 3 : 0.75), "frame \(t): mean landmark error \(error) px")
            let mask = try #require(out["mask"]?.tensor)
            #expect(mask.scalars.reduce(0, +) > 500, "frame \(t): the fitted head covers the image")
        }
        #expect(worst > 0, "the errors were measured")
    }

    @Test func aClipWithoutAnyFaceIsAnErrorNotAGarbageFit() throws {
        let op = try TrackerFixtures.tracker(["mode": .string("fit")], base: shippedCatalog)
        let inputs = Inputs(["meta": Self.meta(frames: 3), "landmarks": .tensor(Tensor(zeros: [3, 68, 3]))])
        #expect(throws: OperatorError.self) { try op.evaluate(inputs, frame: 0, context: .standalone()) }
        do { _ = try op.evaluate(inputs, frame: 0, context: .standalone()) } catch let e as OperatorError {
            #expect(e.message.contains("no face was detected in any of the 3 frames"), "\(e.message)")
        }
    }

    @Test func fitModeSaysWhatItNeeds() throws {
        let op = try TrackerFixtures.tracker(["mode": .string("fit")], base: shippedCatalog)
        do { _ = try op.frameCount(Inputs([:]), context: .standalone()); Issue.record("no error without landmarks") } catch let e as OperatorError {
            #expect(e.message.contains("needs input 'landmarks'"), "\(e.message)")
        }
        let noSize = Inputs(["landmarks": .tensor(Tensor(zeros: [2, 68, 3]))])
        do { _ = try op.evaluate(noSize, frame: 0, context: .standalone()); Issue.record("no error without a size") } catch let e as OperatorError {
            #expect(e.message.contains("image size"), "\(e.message)")
        }
        #expect(throws: OperatorError.self) { try TrackerFixtures.tracker([:], base: shippedCatalog) }   // import needs path
    }
}
