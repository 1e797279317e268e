import Foundation
import PGFlow
import PGTensor
import Synchronization

/// Small real operators that exist only in the tests, so the engine can be tested without the
/// media and kernel modules. Every evaluation is counted so tests can assert what ran.
let evaluations = Mutex([String: Int]())

/// Counted per graph folder, so suites running in parallel on other sandboxes never disturb a count.
func countEvaluation(_ type: String, _ context: RunContext) {
    evaluations.withLock { $0[context.graphDirectory.standardizedFileURL.path + "|" + type, default: 0] += 1 }
}
func evaluationCount(_ type: String, in box: Sandbox) -> Int {
    evaluations.withLock { $0[box.root.standardizedFileURL.path + "|" + type] ?? 0 }
}

/// Emits `[value + t]` for frames 0..<count.
struct Ramp: FrameSource {
    static let type = "Ramp"
    static let version = 1
    let count: Int
    let value: Double
    let failAt: Int
    init(params: Params) throws {
        count = try params.int("count")
        value = try params.double("value")
        failAt = try params.int("fail_at")
    }
    func frameCount(_ inputs: Inputs, context: RunContext) throws -> Int { count }
    func evaluate(_ inputs: Inputs, frame: Int?, context: RunContext) throws -> [String: Value] {
        if frame == nil { return ["info": .record(["count": .number(Double(count))])] }
        if frame == failAt { throw OperatorError("planted failure") }
        countEvaluation(Self.type, context)
        return ["out": .tensor(Tensor(shape: [1], scalars: [Float(value) + Float(frame!)]))]
    }
}

/// Multiplies each frame by `factor` and adds an optional static offset input.
struct Scale: Operator {
    static let type = "Scale"
    static let version = 1
    let factor: Float
    init(params: Params) throws { factor = Float(try params.double("factor")) }
    func evaluate(_ inputs: Inputs, frame: Int?, context: RunContext) throws -> [String: Value] {
        countEvaluation(Self.type, context)
        var t = try inputs.tensor("in")
        let offset = Float(inputs["offset"]?.number ?? 0)
        for i in t.scalars.indices { t.scalars[i] = t.scalars[i] * factor + offset }
        return ["out": .tensor(t)]
    }
}

/// A static number.
struct Constant: Operator {
    static let type = "Constant"
    static let version = 1
    let value: Double
    init(params: Params) throws { value = try params.double("value") }
    func evaluate(_ inputs: Inputs, frame: Int?, context: RunContext) throws -> [String: Value] {
        countEvaluation(Self.type, context)
        return ["out": .number(value)]
    }
}

/// Sums every frame in order (a sink) and records the order it saw.
struct Total: FrameSink {
    static let type = "Total"
    static let version = 1
    init(params: Params) throws {}
    func consume(_ frames: FrameStream, inputs: Inputs, context: RunContext) throws -> [String: Value] {
        countEvaluation(Self.type, context)
        var sum = 0.0
        var order: [Value] = []
        while let (t, inputs) = try frames.next() {
            sum += try inputs.number("in")
            order.append(.number(Double(t)))
        }
        return ["sum": .number(sum), "order": .list(order)]
    }
}

let testOperators: [any Operator.Type] = [Ramp.self, Scale.self, Constant.self, Total.self] + differentiableTestOperators

/// The catalog entries of the test operators, written as files so catalog loading is exercised.
let testCatalogFiles: [String: String] = [
    "Ramp.json": """
    {"type": "Ramp", "doc": "Frames [value + t].",
     "outputs": {"out": {"type": "Tensor", "rate": "per-frame"}, "info": {"type": "Meta", "rate": "static"}},
     "params": {"count": {"type": "int", "min": 0, "max": 10000, "doc": "frames"},
                "value": {"type": "number", "default": 0},
                "fail_at": {"type": "int", "default": -1}}}
    """,
    "Scale.json": """
    {"type": "Scale", "doc": "Multiply.",
     "inputs": {"in": {"type": "Tensor", "rate": "per-frame"}, "offset": {"type": "Scalar", "rate": "static", "optional": true}},
     "outputs": {"out": {"type": "Tensor", "rate": "per-frame"}},
     "params": {"factor": {"type": "number", "default": 1, "min": -100, "max": 100}}}
    """,
    "Constant.json": """
    {"type": "Constant", "doc": "A number.", "outputs": {"out": {"type": "Scalar", "rate": "static"}},
     "params": {"value": {"type": "number"}, "model": {"type": "model", "default": "builtin:none"}}}
    """,
    "Total.json": """
    {"type": "Total", "doc": "Sum of all frames.",
     "inputs": {"in": {"type": "Tensor", "rate": "per-frame"}},
     "outputs": {"sum": {"type": "Scalar", "rate": "static"}, "order": {"type": "Meta", "rate": "static"}}}
    """,
]

/// A scratch folder with the test catalog in `Nodes/`.
struct Sandbox {
    let root: URL
    let catalog: Catalog

    init() throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("pgflow-test-\(UUID().uuidString)")
        let nodes = root.appendingPathComponent("Nodes")
        try FileManager.default.createDirectory(at: nodes, withIntermediateDirectories: true)
        for (name, text) in testCatalogFiles.merging(differentiableCatalogFiles, uniquingKeysWith: { a, _ in a }) {
            try Data(text.utf8).write(to: nodes.appendingPathComponent(name))
        }
        catalog = try Catalog.load(nodes)
    }

    func write(_ name: String, _ text: String) throws -> URL {
        let url = root.appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
        return url
    }

    var cache: URL { root.appendingPathComponent("cache") }

    func engine(_ graph: Graph, options: RunOptions = RunOptions(),
                events: @escaping @Sendable (RunEvent) -> Void = { _ in }) throws -> Engine {
        try Engine(graph: graph, catalog: catalog, operators: testOperators, cacheDirectory: cache,
                   options: options, events: events)
    }

    func remove() { try? FileManager.default.removeItem(at: root) }
}
