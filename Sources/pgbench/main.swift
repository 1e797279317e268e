// Benchmarks print tables; they are never timed tests. Run in release:
//   swift run -c release pgbench <name> [options]
import Foundation
import PGFlow

LargeBuffers.reuse()   // the allocator policy `pgflow` runs with
let arguments = Array(CommandLine.arguments.dropFirst())
switch arguments.first {
case "splat":
    SplatBench.run(Array(arguments.dropFirst()))
case "conv":
    ConvBench.run(Array(arguments.dropFirst()))
case "editor":
    EditorBench.run(Array(arguments.dropFirst()))
case "track":
    TrackBench.run(Array(arguments.dropFirst()))
case "scene":
    SceneBench.run(Array(arguments.dropFirst()))
case "expression":
    ExpressionBench.run(Array(arguments.dropFirst()))
default:
    print("usage: pgbench <splat|conv|editor|track|expression|scene>")
    print("  splat [--quick] [--runs N] [--count 10000,50000] [--size 256] [--channels 32] [--threads 1,2]")
    print("        Splat forward and forward+backward on a head-sized cloud")
    print("  conv  [--quick] [--runs N] [--sizes 256,512] [--threads 1,2] [--layers]")
    print("        NeuralRenderer forward and forward+backward against the machine's sgemm")
    print("  track [--frames 75] [--size 256] [--noise 1.5] [--iterations 200]")
    print("        Tracker's landmark fit on the synthetic performance against its known truth")
    print("  scene [--dir DIR] [--count 100000] [--size 512] [--channels 32] [--steps 16]")
    print("        Splat's kernel, pgflow grad and an optimize step timed on one .ply scene")
    print("  expression [--video data/single_face.mp4] [--size 256]")
    print("        ExprLoss's built-in encoder: distances under expression, style and colour changes")
    exit(arguments.isEmpty ? 0 : 1)
}
