import Foundation
import PGFlow
import PGKernels
import PGMedia
@testable import PGNodes
import PGTensor
import Testing

/// Helpers for the GaussianField tests.
enum FieldFixtures {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    static let tinySMPLX = directory.appendingPathComponent("tiny-smplx.npz")

    /// GaussianField params completed with the shipped catalog's defaults, as validation does.
    static func params(_ values: [String: JSON]) throws -> Params {
        guard let spec = try Catalog.load(shippedCatalog)["GaussianField"] else { throw OperatorError("no GaussianField in the catalog") }
        var all: [String: JSON] = [:]
        for p in spec.params { if let d = p.defaultValue { all[p.name] = d } }
        for (k, v) in values { all[k] = v }
        return Params(all, baseDirectory: directory)
    }

    static func field(_ values: [String: JSON]) throws -> GaussianField { try GaussianField(params: try params(values)) }

    /// A seeded tracking record for a model: shape, expression, joint rotations, rotation, translation (and jaw).
    static func tracking(for model: ParametricModel, seed: UInt64, scale: Float = 1) -> Tracking {
        var rng = SplitMix64(seed: seed)
        func r(_ a: Float) -> Float { scale * a * (Float(rng.next() % 2001) / 1000 - 1) }
        return Tracking(model: model.name,
                        shape: (0..<min(5, model.shapeCount)).map { _ in r(1) },
                        expression: (0..<model.expressionCount).map { _ in r(0.7) },
                        pose: (0..<(3 * model.jointCount)).map { _ in r(0.3) },
                        rotation: SIMD3(r(0.3), r(0.3), r(0.3)), translation: SIMD3(r(0.1), r(0.1), r(0.1)),
                        jaw: model.jawJoint == nil ? .zero : SIMD3(abs(r(0.3)), 0, 0))
    }

    /// Parameters moved off their initial values (offsets, rotations, opacities, features), with
    /// log-scales kept at least 5 % away from the scale bound so no finite-difference step
    /// crosses the hinge.
    static func perturbed(_ p: [String: Tensor], seed: UInt64, bound: Float) -> [String: Tensor] {
        var rng = SplitMix64(seed: seed)
        func u() -> Float { Float(rng.next() % 2001) / 1000 - 1 }
        var out = p
        for (name, t) in p {
            var s = t.scalars
            switch name {
            case "offset", "displacement": s = s.map { $0 + 0.004 * u() }
            case "rotation": s = s.map { $0 + 0.3 * u() }
            case "opacity": s = s.map { _ in 2 * u() }
            case "features": s = s.map { $0 + u() }
            case "log_scale":
                s = s.map { x in
                    var y = x + 0.8 * u()
                    if abs(y - log(bound)) < 0.05 { y += 0.1 }
                    return y
                }
            default: break
            }
            out[name] = Tensor(shape: t.shape, scalars: s)
        }
        return out
    }

    static let outputs = ["gaussians", "reg_laplacian", "reg_offset", "reg_scale", "reg_opacity"]

    /// L = Σ r·outputs for seeded cotangents r, its VJP, and central differences of L along a
    /// seeded random direction in every parameter group: one check that covers every element.
    static func directionalMismatches(_ op: GaussianField, _ inputs: Inputs, seed: UInt64) throws -> [String] {
        var rng = SplitMix64(seed: seed)
        func u() -> Float { Float(rng.next() % 2001) / 1000 - 1 }
        let ctx = RunContext.standalone()
        let (outs, saved) = try op.forward(inputs, frame: 0, context: ctx)
        var cot: [String: Value] = [:]
        for name in outputs {
            switch outs[name]! {
            case .record(let r):
                // Keys in sorted order: a dictionary's own order changes from process to process,
                // and the draws must not, or the seed would not reproduce a failure.
                var c: [String: Value] = [:]
                for (k, v) in r.sorted(by: { $0.key < $1.key }) {
                    c[k] = .tensor(Tensor(shape: v.tensor!.shape, scalars: v.tensor!.scalars.map { _ in u() }))
                }
                cot[name] = .record(c)
            default: cot[name] = .number(Double(u()))
            }
        }
        let grads = try op.vjp(cot, saved: saved, inputs: inputs, frame: 0, context: ctx)
        func loss(_ i: Inputs) throws -> Double {
            let o = try op.forward(i, frame: 0, context: ctx).outputs
            var total = 0.0
            for (name, c) in cot {
                if let r = c.record {
                    for (k, v) in r { total += zip(o[name]![k]!.tensor!.scalars, v.tensor!.scalars).reduce(0.0) { $0 + Double($1.0) * Double($1.1) } }
                } else {
                    total += o[name]!.number! * c.number!
                }
            }
            return total
        }
        var problems: [String] = []
        for (group, t) in inputs.parameters.sorted(by: { $0.key < $1.key }) {
            let d = (0..<t.count).map { _ in u() }
            guard let grad = grads.parameters[group] else { problems.append("\(group): no gradient"); continue }
            let analytic = zip(grad.scalars, d).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
            let h: Float = 1e-3
            var plus = inputs, minus = inputs
            plus.parameters[group] = Tensor(shape: t.shape, scalars: zip(t.scalars, d).map { $0 + h * $1 })
            minus.parameters[group] = Tensor(shape: t.shape, scalars: zip(t.scalars, d).map { $0 - h * $1 })
            let numeric = (try loss(plus) - loss(minus)) / Double(2 * h)
            if abs(analytic - numeric) > 2e-3 * max(1, abs(numeric)) {
                problems.append("\(group): VJP·d = \(analytic), finite difference \(numeric)")
            }
        }
        return problems
    }
}

@Suite struct GaussianFieldTests {
    let ctx = RunContext.standalone()

    @Test func initialisationFollowsThePaperCode() throws {
        let op = try FieldFixtures.field(["uv": .int(24), "features": .int(5)])
        let p = try op.initialParameters(Inputs([:]), context: ctx)
        let s = try op.surface()
        let n = s.embedding.count
        #expect(n > 24 * 24 / 2, "the built-in head covers most of its UV square: \(n) texels")
        #expect(Set(p.keys) == ["offset", "log_scale", "rotation", "opacity", "features", "displacement"])
        #expect(p["offset"]!.shape == [n, 3] && p["offset"]!.scalars.allSatisfy { $0 == 0 })
        #expect(p["rotation"]!.shape == [n, 4] && (0..<n).allSatisfy { p["rotation"]![$0, 0] == 1 && p["rotation"]![$0, 1] == 0 })
        #expect(p["opacity"]!.shape == [n] && p["opacity"]!.scalars.allSatisfy { abs(1 / (1 + exp(-$0)) - 0.1) < 1e-6 })
        #expect(p["features"]!.shape == [n, 5] && p["features"]!.scalars.allSatisfy { $0 == 0 })
        #expect(p["displacement"]!.shape == [s.model.vertexCount, 3])
        // Isotropic log-scale from the mean squared distance to the 3 nearest neighbours (brute force).
        let points = s.embedding.points(on: s.model.template, faces: s.model.faces)
        let ls = p["log_scale"]!
        #expect(ls.shape == [n, 3])
        for g in stride(from: 0, to: n, by: 37) {
            var d: [Double] = []
            for o in 0..<n where o != g {
                d.append((0..<3).reduce(0.0) { let x = Double(points[3 * g + $1] - points[3 * o + $1]); return $0 + x * x })
            }
            d.sort()
            let expected = 0.5 * log(max((d[0] + d[1] + d[2]) / 3, 1e-7))
            #expect(abs(Double(ls[g, 0]) - expected) < 1e-4 && ls[g, 0] == ls[g, 1] && ls[g, 1] == ls[g, 2], "Gaussian \(g)")
        }
    }

    @Test func textureNoiseAndIsotropicOptions() throws {
        let uv = 20
        let texture = Tensor(shape: [4, uv, uv], scalars: (0..<(4 * uv * uv)).map { Float($0 % 97) / 97 })
        let op = try FieldFixtures.field(["uv": .int(Int64(uv)), "features": .int(6), "feature_noise": .double(0.01), "seed": .int(3)])
        let p = try op.initialParameters(Inputs(["texture": .tensor(texture)]), context: ctx)
        let s = try op.surface()
        let f = p["features"]!
        for g in 0..<s.embedding.count {
            let t = Int(s.embedding.texels[g])
            for k in 0..<3 { #expect(f[g, k] == texture.scalars[k * uv * uv + t], "texel \(t) channel \(k) comes from the texture") }
            #expect(abs(f[g, 3]) < 0.1, "channel 3 keeps its noise, not the texture's alpha")
        }
        #expect(f.scalars.contains { $0 != 0 && abs($0) < 0.1 })
        // Seeded: the same seed gives the same features, another seed others.
        #expect(try op.initialParameters(Inputs(["texture": .tensor(texture)]), context: ctx)["features"] == f)
        let other = try FieldFixtures.field(["uv": .int(Int64(uv)), "features": .int(6), "feature_noise": .double(0.01), "seed": .int(4)])
        #expect(try other.initialParameters(Inputs([:]), context: ctx)["features"]![0, 4] != f[0, 4])
        // A texture PNG does the same as the texture input.
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pgflow-field-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let rgb = Tensor(shape: [3, uv, uv], scalars: Array(texture.scalars[0..<(3 * uv * uv)]).map { ($0 * 255).rounded() / 255 })
        let png = dir.appendingPathComponent("texture.png")
        try PNGImage.write(rgb, to: png)
        let fromFile = try GaussianField(params: try FieldFixtures.params(["uv": .int(Int64(uv)), "features": .int(3), "texture_file": .string(png.path)]))
        let pf = try fromFile.initialParameters(Inputs([:]), context: ctx)["features"]!
        var expected: [Float] = []
        for g in 0..<s.embedding.count {
            for k in 0..<3 { expected.append(rgb.scalars[k * uv * uv + Int(s.embedding.texels[g])]) }
        }
        #expect(zip(pf.scalars, expected).allSatisfy { abs($0 - $1) < 1e-6 })
        // Isotropic: one scale, no offset, rotation or displacement.
        let iso = try FieldFixtures.field(["uv": .int(Int64(uv)), "features": .int(2), "isotropic": .bool(true)])
        let pi = try iso.initialParameters(Inputs([:]), context: ctx)
        #expect(Set(pi.keys) == ["log_scale", "opacity", "features"] && pi["log_scale"]!.shape == [s.embedding.count, 1])
    }

    @Test func atTheNeutralPoseGaussiansSitOnTheTemplate() throws {
        let op = try FieldFixtures.field(["uv": .int(20), "features": .int(2)])
        let p = try op.initialParameters(Inputs([:]), context: ctx)
        let out = try op.evaluate(Inputs(["tracking": Tracking(model: HeadModel.name).value], parameters: p), frame: 0, context: ctx)
        let s = try op.surface()
        let g = try #require(out["gaussians"]?.record)
        let expected = s.embedding.points(on: s.model.template, faces: s.model.faces)
        #expect(zip(g["means"]!.tensor!.scalars, expected).allSatisfy { abs($0 - $1) < 1e-6 })
        #expect((0..<s.embedding.count).allSatisfy { abs(g["quats"]!.tensor![$0, 0] - 1) < 1e-6 })
        #expect(g["log_scales"]!.tensor == p["log_scale"] && g["features"]!.tensor == p["features"])
        #expect(g["opacity_logits"]!.tensor == p["opacity"])
        #expect(out["reg_offset"]?.number == 0)
        #expect(abs(out["reg_scale"]!.number! - FieldRegularisers.scaleHinge(p["log_scale"]!.scalars, bound: 0.02)) < 1e-6)
        // Only the kNN log-scales differ between neighbouring texels at the start.
        let smooth = FieldRegularisers.laplacian(p["log_scale"]!.scalars, channels: 3, edges: s.embedding.edges)
        #expect(smooth > 0 && abs(out["reg_laplacian"]!.number! - smooth) < 1e-6 * smooth)
        #expect(abs(out["reg_opacity"]!.number! - log(0.09)) < 1e-5)
        // Translation moves everything rigidly.
        let moved = try op.evaluate(Inputs(["tracking": Tracking(model: HeadModel.name, translation: SIMD3(0.1, -0.2, 0.3)).value], parameters: p),
                                    frame: 0, context: ctx)["gaussians"]!["means"]!.tensor!
        for i in 0..<s.embedding.count {
            #expect(abs(moved[i, 0] - expected[3 * i] - 0.1) < 1e-5 && abs(moved[i, 1] - expected[3 * i + 1] + 0.2) < 1e-5)
        }
    }

    @Test func regionsRestrictTheField() throws {
        let all = try FieldFixtures.field(["uv": .int(32), "features": .int(1)]).surface()
        let head = try FieldFixtures.field(["uv": .int(32), "features": .int(1), "region": .string("head")]).surface()
        let headNeck = try FieldFixtures.field(["uv": .int(32), "features": .int(1), "region": .string("head_neck")]).surface()
        #expect(head.embedding.count < headNeck.embedding.count && headNeck.embedding.count < all.embedding.count)
        let m = head.model
        for f in head.embedding.faces {
            let (a, b, c) = m.face(Int(f))
            let heads = [a, b, c].filter { m.vertexRegions[$0] >= ParametricModel.Region.head.rawValue }.count
            #expect(heads >= 2, "face \(f) is outside the head")
        }
    }

    @Test(arguments: [UInt64(1), 2])
    func gradientsOfEveryGroupMatchFiniteDifferencesOnTheBuiltInHead(seed: UInt64) throws {
        let op = try FieldFixtures.field(["uv": .int(16), "features": .int(3), "scale_bound": .double(0.004)])
        let p = FieldFixtures.perturbed(try op.initialParameters(Inputs([:]), context: ctx), seed: seed, bound: 0.004)
        let tracking = FieldFixtures.tracking(for: HeadModel.model, seed: seed)
        let inputs = Inputs(["tracking": tracking.value], parameters: p)
        let out = try op.evaluate(inputs, frame: 0, context: ctx)
        #expect(out["reg_scale"]!.number! > 0, "some scales should exceed the bound, so the hinge is tested")
        let problems = try FieldFixtures.directionalMismatches(op, inputs, seed: seed)
        #expect(problems.isEmpty, "seed \(seed): \(problems)")
        let check = GradientCheck(seed: seed, samples: 8, step: 1e-3, absolute: 2e-3, relative: 1e-2)
        let mismatches = try check.check(op, inputs: inputs, wrt: [], outputs: FieldFixtures.outputs, frame: 0)
        #expect(mismatches.isEmpty, "seed \(seed): \(mismatches)")
    }

    @Test(arguments: [UInt64(3), 4])
    func gradientsOfEveryGroupMatchFiniteDifferencesOnTheSMPLXKeyedModel(seed: UInt64) throws {
        let op = try FieldFixtures.field(["model": .string("tiny-smplx.npz"), "uv": .int(16), "features": .int(4),
                                          "scale_bound": .double(0.02)])
        let s = try op.surface()
        #expect(s.model.jointCount == 4 && s.model.poseBasisCount == 27)
        let p = FieldFixtures.perturbed(try op.initialParameters(Inputs([:]), context: ctx), seed: seed, bound: 0.02)
        let inputs = Inputs(["tracking": FieldFixtures.tracking(for: s.model, seed: seed).value], parameters: p)
        #expect(try op.evaluate(inputs, frame: 0, context: ctx)["reg_scale"]!.number! > 0,
                "some scales should exceed the bound, so the hinge is tested")
        let problems = try FieldFixtures.directionalMismatches(op, inputs, seed: seed)
        #expect(problems.isEmpty, "seed \(seed): \(problems)")
        let check = GradientCheck(seed: seed, samples: 8, step: 1e-3, absolute: 2e-3, relative: 1e-2)
        let mismatches = try check.check(op, inputs: inputs, wrt: [], outputs: FieldFixtures.outputs, frame: 0)
        #expect(mismatches.isEmpty, "seed \(seed): \(mismatches)")
    }

    @Test func isotropicAndStaticCloudModesHaveCorrectGradients() throws {
        let iso = try FieldFixtures.field(["uv": .int(16), "features": .int(3), "isotropic": .bool(true), "scale_bound": .double(0.004)])
        let pi = FieldFixtures.perturbed(try iso.initialParameters(Inputs([:]), context: ctx), seed: 5, bound: 0.004)
        let ii = Inputs(["tracking": FieldFixtures.tracking(for: HeadModel.model, seed: 5).value], parameters: pi)
        let g = try iso.evaluate(ii, frame: 0, context: ctx)["gaussians"]!
        #expect(g["log_scales"]!.tensor!.shape[1] == 1)
        #expect(try FieldFixtures.directionalMismatches(iso, ii, seed: 5).isEmpty, "seed 5")

        let cloud = SplatScenes.gaussians(count: 30, channels: 3, seed: 6)
        let op = try FieldFixtures.field(["features": .int(2)])
        let p = try op.initialParameters(Inputs(["cloud": .record(cloud)]), context: ctx)
        #expect(p["features"]!.scalars == (0..<30).flatMap { i in (0..<2).map { cloud["features"]!.tensor![i, $0] } })
        #expect(p["rotation"]!.scalars == cloud["quats"]!.tensor!.scalars && p["opacity"]!.scalars == cloud["opacity_logits"]!.tensor!.scalars)
        let pp = FieldFixtures.perturbed(p, seed: 6, bound: 0.02)
        let inputs = Inputs(["cloud": .record(cloud)], parameters: pp)
        let out = try op.evaluate(inputs, frame: nil, context: ctx)
        let means = out["gaussians"]!["means"]!.tensor!.scalars
        #expect(zip(means, zip(cloud["means"]!.tensor!.scalars, pp["offset"]!.scalars).map { $0 + $1 }).allSatisfy { abs($0 - $1) < 1e-6 })
        #expect(out["reg_laplacian"]?.number == 0, "a cloud has no UV neighbours")
        #expect(try FieldFixtures.directionalMismatches(op, inputs, seed: 6).isEmpty, "seed 6")
    }

    @Test func aPLYFileStartsAStaticCloud() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pgflow-field-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let g = SplatScenes.gaussians(count: 10, channels: 3, seed: 8)
        let ply = GaussianPLY(means: g["means"]!.tensor!, opacityLogits: g["opacity_logits"]!.tensor!, logScales: g["log_scales"]!.tensor!,
                              quats: g["quats"]!.tensor!, features: g["features"]!.tensor!)
        let url = dir.appendingPathComponent("cloud.ply")
        try ply.write(to: url)
        let op = try FieldFixtures.field(["ply": .string(url.path), "features": .int(3)])
        let p = try op.initialParameters(Inputs([:]), context: ctx)
        let out = try op.evaluate(Inputs([:], parameters: p), frame: nil, context: ctx)
        #expect(out["gaussians"]!["means"]!.tensor == g["means"]!.tensor)
        #expect(out["gaussians"]!["features"]!.tensor == g["features"]!.tensor)
    }

    @Test func trackingRecordsRoundTripAndMismatchesAreReported() throws {
        let t = FieldFixtures.tracking(for: HeadModel.model, seed: 9)
        #expect(try Tracking(value: t.value) == t)
        let op = try FieldFixtures.field(["uv": .int(8), "features": .int(1)])
        let p = try op.initialParameters(Inputs([:]), context: ctx)
        var bad = t
        bad.shape = [Float](repeating: 0.1, count: 11)
        #expect { try op.evaluate(Inputs(["tracking": bad.value], parameters: p), frame: 0, context: ctx) } throws: { "\($0)".contains("shape") }
        bad = t
        bad.pose = [Float](repeating: 0, count: 15)
        #expect { try op.evaluate(Inputs(["tracking": bad.value], parameters: p), frame: 0, context: ctx) } throws: { "\($0)".contains("joints") }
        #expect { try op.evaluate(Inputs([:], parameters: p), frame: 0, context: ctx) } throws: { "\($0)".contains("tracking") }
        #expect { try FieldFixtures.field(["model": .string("missing.npz")]).surface() } throws: { "\($0)".contains("missing.npz") }
        #expect { try FieldFixtures.field(["model": .string("builtin:body")]) } throws: { "\($0)".contains("builtin:head") }
    }
}
