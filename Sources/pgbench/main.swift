// Benchmarks print tables; they are never timed tests. Run in release:
//   swift run -c release pgbench <name> [options]
import Foundation

let arguments = Array(CommandLine.arguments.dropFirst())
switch arguments.first {
case "splat":
    SplatBench.run(Array(arguments.dropFirst()))
default:
    print("usage: pgbench <splat|conv>")
    print("  splat [--quick] [--runs N] [--count 10000,50000] [--size 256] [--channels 32] [--threads 1,2]")
    print("        Splat forward and forward+backward on a head-sized cloud")
    exit(arguments.isEmpty ? 0 : 1)
}
