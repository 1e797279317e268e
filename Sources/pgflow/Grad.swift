import ArgumentParser
import Foundation
import PGFlow
import PGNodes
import PGTensor

struct Grad: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "One forward and backward pass; write every trainable parameter's gradient to NPZ.",
        discussion: helpText("""
        The tool to reach for when a graph does not train: evaluates LOSS (a "node.port" whose value is
        a differentiable scalar) for one frame with the parameters' initial values, back-propagates,
        and writes one array per parameter group, named "node.group", to the NPZ file. Inspect it with
        numpy: np.load("grads.npz")["field.features"]. Prints each gradient's L2 norm.
        """))

    @OptionGroup var options: GraphOptions

    @Option(help: ArgumentHelp("The loss output, e.g. loss.loss.", valueName: "node.port"))
    var loss: String

    @Option(help: "Frame index to evaluate; repeat it (--frame 0 --frame 7) for the mean over a batch, as an optimize step takes it.")
    var frame: [Int] = [0]

    @Option(name: .shortAndLong, help: ArgumentHelp("Where to write the gradients.", valueName: "file.npz"))
    var output: String = "grads.npz"

    @Option(name: .customLong("cache-dir"), help: ArgumentHelp("Cache folder (default: .pgflow/cache beside the graph).", valueName: "dir"))
    var cacheDirectory: String?

    func run() throws {
        try reportingErrors {
            let (graph, catalog) = try options.load()
            guard let ref = PortRef(parsing: loss), let node = graph.node(ref.node) else {
                throw ExitMessage(code: 2, "--loss \(loss): expected \"node.port\" naming a node of the graph")
            }
            guard let port = catalog[node.type]?.output(ref.port) else {
                let names = catalog[node.type]?.outputs.map(\.name).joined(separator: ", ") ?? ""
                throw ExitMessage(code: 2, "--loss \(loss): \(node.type) node \"\(node.id)\" has no output \"\(ref.port)\" (outputs: \(names))")
            }
            guard port.type == .scalar && port.differentiable else {
                throw ExitMessage(code: 2, "--loss \(loss): expected a differentiable Scalar output, \(ref) is \(port.differentiable ? "" : "a non-differentiable ")\(port.type.rawValue)")
            }
            let cacheDir = cacheDirectory.map { URL(fileURLWithPath: $0) } ?? defaultCacheDirectory(for: graph.file)
            let engine = try Engine(graph: graph, catalog: catalog, operators: Registry.operators, cacheDirectory: cacheDir,
                                    events: { e in if case .warning(let w) = e { FileHandle.standardError.write(Data("warning: \(w)\n".utf8)) } })
            let grads = try engine.gradients(loss: ref, frames: frame)
            // Stored, not deflated: float gradients shrink by ~7% under zlib, which took 40% of this
            // command's time on a 100k-Gaussian scene (issue 16).
            try NPZ.write(grads, to: URL(fileURLWithPath: output), compressed: false)
            for (name, g) in grads {
                let norm = g.l2Norm
                print("\(name)  \(g.shape)  |grad| = \(String(format: "%.6g", norm))")
            }
            print("wrote \(grads.count) gradients to \(output)")
        }
    }
}
