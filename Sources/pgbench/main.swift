// Benchmarks print tables; they are never timed tests. Run in release:
//   swift run -c release pgbench <name>
print("usage: pgbench <splat|conv>")
