import Foundation
import PGFlow
import PGTensor

/// A static trainable vector (the "model" of the test graphs).
struct Param: Trainable {
    static let type = "Param"
    static let version = 1
    let initial: [Float]
    init(params: Params) throws { initial = try params.doubles("init").map(Float.init) }
    func initialParameters(_ inputs: Inputs, context: RunContext) throws -> [String: Tensor] {
        ["w": Tensor(shape: [initial.count], scalars: initial)]
    }
    func forward(_ inputs: Inputs, frame: Int?, context: RunContext) throws -> (outputs: [String: Value], saved: Saved) {
        (["value": .tensor(try inputs.parameter("w"))], .none)
    }
    func vjp(_ cotangents: [String: Value], saved: Saved, inputs: Inputs, frame: Int?, context: RunContext) throws -> Gradients {
        let shape = try inputs.parameter("w").shape
        return Gradients(parameters: ["w": cotangents["value"]?.tensor ?? Tensor(zeros: shape)])
    }
}

/// pred = w[0]·x + w[1], elementwise, per frame; differentiable in w.
struct Affine: Differentiable {
    static let type = "Affine"
    static let version = 1
    init(params: Params) throws {}
    func forward(_ inputs: Inputs, frame: Int?, context: RunContext) throws -> (outputs: [String: Value], saved: Saved) {
        let x = try inputs.tensor("x"), w = try inputs.tensor("w")
        return (["out": .tensor(Tensor(shape: x.shape, scalars: x.scalars.map { w.scalars[0] * $0 + w.scalars[1] }))], Saved(x))
    }
    func vjp(_ cotangents: [String: Value], saved: Saved, inputs: Inputs, frame: Int?, context: RunContext) throws -> Gradients {
        let x: Tensor = try saved.get()
        guard let v = cotangents["out"]?.tensor else { return Gradients() }
        var dw0: Float = 0, dw1: Float = 0
        for i in 0..<x.count { dw0 += v.scalars[i] * x.scalars[i]; dw1 += v.scalars[i] }
        return Gradients(inputs: ["w": .tensor(Tensor(shape: [2], scalars: [dw0, dw1]))])
    }
}

/// A per-frame trainable gain: out = g·in, g a learned scalar.
struct Gain: Trainable {
    static let type = "Gain"
    static let version = 1
    init(params: Params) throws {}
    func initialParameters(_ inputs: Inputs, context: RunContext) throws -> [String: Tensor] { ["g": Tensor(shape: [1], scalars: [0.5])] }
    func forward(_ inputs: Inputs, frame: Int?, context: RunContext) throws -> (outputs: [String: Value], saved: Saved) {
        let x = try inputs.tensor("in"), g = try inputs.parameter("g").scalars[0]
        return (["out": .tensor(x * g)], Saved(x))
    }
    func vjp(_ cotangents: [String: Value], saved: Saved, inputs: Inputs, frame: Int?, context: RunContext) throws -> Gradients {
        let x: Tensor = try saved.get()
        let g = try inputs.parameter("g").scalars[0]
        guard let v = cotangents["out"]?.tensor else { return Gradients() }
        let dg = zip(v.scalars, x.scalars).reduce(Float(0)) { $0 + $1.0 * $1.1 }
        return Gradients(inputs: ["in": .tensor(v * g)], parameters: ["g": Tensor(shape: [1], scalars: [dg])])
    }
}

/// loss = mean((pred − target)²), with the sum of pred as a second reported term.
struct SquaredError: Differentiable {
    static let type = "SquaredError"
    static let version = 1
    init(params: Params) throws {}
    func forward(_ inputs: Inputs, frame: Int?, context: RunContext) throws -> (outputs: [String: Value], saved: Saved) {
        let p = try inputs.tensor("pred"), t = try inputs.tensor("target")
        let d = zip(p.scalars, t.scalars).map { $0 - $1 }
        let loss = d.reduce(0) { $0 + Double($1) * Double($1) } / Double(d.count)
        return (["loss": .tensor(Tensor(scalar: Float(loss))),
                 "terms": .record(["mse": .number(loss), "mean_pred": .number(Double(p.scalars.reduce(0, +)) / Double(p.count))])],
                Saved(d))
    }
    func vjp(_ cotangents: [String: Value], saved: Saved, inputs: Inputs, frame: Int?, context: RunContext) throws -> Gradients {
        let d: [Float] = try saved.get()
        let c = Float(cotangents["loss"]?.number ?? 0)
        return Gradients(inputs: ["pred": .tensor(Tensor(shape: [d.count], scalars: d.map { 2 * $0 / Float(d.count) * c }))])
    }
}

/// out = a + b, elementwise; differentiable in both (a value that fans out into both gets both cotangents).
struct Add: Differentiable {
    static let type = "Add"
    static let version = 1
    init(params: Params) throws {}
    func forward(_ inputs: Inputs, frame: Int?, context: RunContext) throws -> (outputs: [String: Value], saved: Saved) {
        (["out": .tensor(try inputs.tensor("a") + inputs.tensor("b"))], .none)
    }
    func vjp(_ cotangents: [String: Value], saved: Saved, inputs: Inputs, frame: Int?, context: RunContext) throws -> Gradients {
        guard let v = cotangents["out"] else { return Gradients() }
        return Gradients(inputs: ["a": v, "b": v])
    }
}

/// A deterministic "editor" with dataset update: out = image + offset (each edit moves the
/// target a step past the current prediction, so training chases it).
struct Edit: Operator {
    static let type = "Edit"
    static let version = 1
    let offset: Float
    init(params: Params) throws { offset = Float(try params.double("offset")) }
    func evaluate(_ inputs: Inputs, frame: Int?, context: RunContext) throws -> [String: Value] {
        countEvaluation(Self.type, context)
        let x = try inputs.tensor("image")
        return ["image": .tensor(Tensor(shape: x.shape, scalars: x.scalars.map { $0 + offset }))]
    }
}

let differentiableTestOperators: [any Operator.Type] = [Param.self, Affine.self, Gain.self, SquaredError.self, Add.self, Edit.self]

let differentiableCatalogFiles: [String: String] = [
    "Edit.json": """
    {"type": "Edit", "doc": "image + offset, held inside optimize stages.", "dataset_update": true,
     "inputs": {"image": {"type": "Tensor", "rate": "per-frame"}, "source": {"type": "Tensor", "rate": "per-frame"}},
     "outputs": {"image": {"type": "Tensor", "rate": "per-frame"}},
     "params": {"offset": {"type": "number", "default": 1}, "every": {"type": "int", "default": 4, "min": 1},
                "max_edits": {"type": "int", "optional": true, "min": 1}}}
    """,
    "Param.json": """
    {"type": "Param", "doc": "A trainable vector.", "trainable": true,
     "outputs": {"value": {"type": "Tensor", "rate": "static", "differentiable": true}},
     "params": {"init": {"type": "numbers", "default": [0, 0]}}}
    """,
    "Affine.json": """
    {"type": "Affine", "doc": "w0·x + w1.",
     "inputs": {"x": {"type": "Tensor", "rate": "per-frame"}, "w": {"type": "Tensor", "rate": "static", "differentiable": true}},
     "outputs": {"out": {"type": "Tensor", "rate": "per-frame", "differentiable": true}}}
    """,
    "Add.json": """
    {"type": "Add", "doc": "a + b.",
     "inputs": {"a": {"type": "Tensor", "rate": "per-frame", "differentiable": true}, "b": {"type": "Tensor", "rate": "per-frame", "differentiable": true}},
     "outputs": {"out": {"type": "Tensor", "rate": "per-frame", "differentiable": true}}}
    """,
    "Gain.json": """
    {"type": "Gain", "doc": "g·in with a learned g.", "trainable": true,
     "inputs": {"in": {"type": "Tensor", "rate": "per-frame", "differentiable": true}},
     "outputs": {"out": {"type": "Tensor", "rate": "per-frame", "differentiable": true}}}
    """,
    "SquaredError.json": """
    {"type": "SquaredError", "doc": "Mean squared error.",
     "inputs": {"pred": {"type": "Tensor", "rate": "per-frame", "differentiable": true}, "target": {"type": "Tensor", "rate": "per-frame"}},
     "outputs": {"loss": {"type": "Scalar", "rate": "per-frame", "differentiable": true}, "terms": {"type": "Meta", "rate": "per-frame"}}}
    """,
]
