import Foundation
import PGFlow
import PGKernels
@testable import PGNodes
import PGTensor
import Testing

/// ExprLoss: the built-in encoder's loss and image gradient, no-face handling, and the plugin path
/// (pgflow crops, the plugin encodes and differentiates) against the same encoder written in PyTorch.
@Suite struct ExprLossTests {
    static func node(_ extra: [String: JSON] = [:]) throws -> ExprLoss {
        guard let spec = try Catalog.load(shippedCatalog)["ExprLoss"] else { throw OperatorError("no ExprLoss") }
        var values: [String: JSON] = [:]
        for p in spec.params { if let d = p.defaultValue { values[p.name] = d } }
        for (k, v) in extra { values[k] = v }
        return try ExprLoss(params: Params(values, baseDirectory: shippedCatalog))
    }

    static func images() -> (Tensor, Tensor) {
        var rng = SplitMix64(seed: 9)
        func image(_ mouth: Int) -> Tensor {
            var t = Tensor(zeros: [3, 64, 64])
            for c in 0..<3 { for y in 0..<64 { for x in 0..<64 {
                var v: Float = (x - 32) * (x - 32) + (y - 30) * (y - 30) < 400 ? 0.8 : 0.2
                if abs(x - 32) < 8 && abs(y - 40) < mouth { v = 0.1 }
                t[c, y, x] = v + 0.02 * Float(rng.next() % 100) / 100
            } } }
            return t
        }
        return (image(4), image(1))
    }

    static let box: Value = .list([.number(6), .number(4), .number(58), .number(56)])

    @Test func theLossFallsToZeroForTheSameFrameAndNoFaceIsNotNaN() throws {
        let op = try Self.node()
        let (open, closed) = Self.images()
        let ctx = RunContext.standalone()
        let same = try op.forward(Inputs(["image": .tensor(open), "source": .tensor(open), "box": Self.box]), frame: 0, context: ctx)
        #expect(same.outputs["loss"]?.number == 0)
        let differ = try op.forward(Inputs(["image": .tensor(open), "source": .tensor(closed), "box": Self.box]), frame: 0, context: ctx)
        #expect((differ.outputs["loss"]?.number ?? 0) > 0)
        let none = Inputs(["image": .tensor(open), "source": .tensor(closed), "box": .tensor(Tensor(zeros: [4]))])
        let (outs, saved) = try op.forward(none, frame: 0, context: ctx)
        #expect(outs["loss"]?.number == 0)
        let g = try op.vjp(["loss": .number(1)], saved: saved, inputs: none, frame: 0, context: ctx)
        #expect(g.inputs["image"]?.tensor?.scalars.allSatisfy { $0 == 0 } == true)
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: repositoryRoot.appendingPathComponent(".venv/bin/python3").path)
                   && FileManager.default.fileExists(atPath: repositoryRoot.appendingPathComponent(".venv/.pgflow-plugins-full").path),
                   "needs the full plugin environment (torch): bash Scripts/setup-plugins.sh --full"))
    func aPluginEncoderGivesTheSameLossAndGradientAsTheBuiltIn() throws {
        let catalog = try Catalog.load(shippedCatalog, pluginFolders: [repositoryRoot.appendingPathComponent("Tests/Fixtures/plugins")])
        let host = PluginHost(catalog: catalog.plugins, python: PluginHost.defaultPython(catalogDirectory: shippedCatalog, environment: [:]), threads: 2)
        defer { host.shutdown() }
        let ctx = RunContext(nodeID: "expression", nodeType: "ExprLoss", graphDirectory: shippedCatalog, plugins: host)
        let small: [String: JSON] = ["size": .int(32), "cells": .int(8), "blur": .double(1.5)]
        let builtin = try Self.node(small)
        let plugged = try Self.node(small.merging(["plugin": .string("expr_torch"),
                                                   "params": .object([("cells", .int(8)), ("blur", .double(1.5))])]) { a, _ in a })
        let (open, closed) = Self.images()
        let inputs = Inputs(["image": .tensor(open), "source": .tensor(closed), "box": Self.box])
        let (a, sa) = try builtin.forward(inputs, frame: 0, context: ctx)
        let (b, sb) = try plugged.forward(inputs, frame: 0, context: ctx)
        let la = try #require(a["loss"]?.number), lb = try #require(b["loss"]?.number)
        #expect(la > 0 && abs(la - lb) <= 1e-4 * la, "built-in \(la), plugin \(lb)")
        let ga = try #require(try builtin.vjp(["loss": .number(1)], saved: sa, inputs: inputs, frame: 0, context: ctx).inputs["image"]?.tensor)
        let gb = try #require(try plugged.vjp(["loss": .number(1)], saved: sb, inputs: inputs, frame: 0, context: ctx).inputs["image"]?.tensor)
        let scale = ga.scalars.map(abs).max()!
        let err = zip(ga.scalars, gb.scalars).map { abs($0 - $1) }.max()!
        #expect(scale > 0 && err <= 1e-3 * scale, "largest gradient difference \(err) of \(scale)")
    }
}
