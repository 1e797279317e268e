import CBLAS
import Foundation
import PGKernels
import PGTensor

/// `pgbench conv`: the NeuralRenderer (default PortraitGen architecture) forward and
/// forward+backward at a few sizes and thread counts, against the `cblas_sgemm` rate the same run
/// measures for a 512³ product. The renderer is a chain of GEMMs, so that rate is its ceiling.
enum ConvBench {
    static func run(_ arguments: [String]) {
        var runs = 5
        var sizes = [256, 512]
        var threadCounts = [1, 2]
        var bandBytes: Int?
        var layers = false
        var i = 0
        func value() -> String {
            i += 1
            guard i < arguments.count else { fail("\(arguments[i - 1]) needs a value") }
            return arguments[i]
        }
        while i < arguments.count {
            switch arguments[i] {
            case "--quick": runs = 3; sizes = [128, 256]
            case "--runs": runs = max(1, Int(value()) ?? 5)
            case "--size", "--sizes": sizes = parseList(value())
            case "--threads": threadCounts = parseList(value())
            case "--band-bytes": bandBytes = Int(value())
            case "--layers": layers = true
            case "-h", "--help": usage(); return
            default: fail("unknown option \(arguments[i])")
            }
            i += 1
        }

        let net = NeuralRendererNet(configuration: .portraitGen, seed: 1)
        print("NeuralRenderer \(describe(net.configuration)): \(net.configuration.parameterCount) parameters")
        print("OpenBLAS: \(String(cString: openblas_get_config()))")
        print("runs per row: \(runs) (after one warm-up); times in ms; GFLOP/s from the median\n")

        var gemmRate: [Int: (median: Double, min: Double, max: Double)] = [:]
        for t in threadCounts { gemmRate[t] = sgemmRate(threads: t, runs: runs) }
        openblas_set_num_threads(1)   // the conv kernels run single-threaded BLAS per worker
        print("| cblas_sgemm 512³ | threads | median ms | min | max | GFLOP/s |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for t in threadCounts {
            let r = gemmRate[t]!
            print("| sgemm | \(t) | \(ms(r.median)) | \(ms(r.min)) | \(ms(r.max)) | \(gflops(2 * pow(512, 3), r.median)) |")
        }

        print("\n| renderer | size | threads | median ms | min | max | GFLOP/s | % of sgemm |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for size in sizes {
            let features = randomImage(channels: net.configuration.inputChannels, size: size, seed: 7)
            let target = randomImage(channels: 3, size: size, seed: 8)
            let flops = net.configuration.forwardFLOPs(height: size, width: size)
            for t in threadCounts {
                let ws = bandBytes.map { ConvWorkspace(threads: t, bandBytes: $0) } ?? ConvWorkspace(threads: t)
                let forward = time(runs: runs) { _ = net(features, workspace: ws) }
                let both = time(runs: runs) {
                    let (rgb, saved) = net.forward(features, workspace: ws)
                    let vRGB = Kernels.l1LossVJP(rgb, target, vLoss: 1).vPrediction
                    _ = net.vjp(saved, vRGB: vRGB, workspace: ws)
                }
                let sgemm = 2 * pow(512, 3) / gemmRate[t]!.median
                for (name, r, f) in [("forward", forward, flops), ("forward+backward", both, 3 * flops)] {
                    let rate = f / r.median
                    print("| \(name) | \(size)² | \(t) | \(ms(r.median)) | \(ms(r.min)) | \(ms(r.max)) "
                          + "| \(String(format: "%.1f", rate / 1e9)) | \(String(format: "%.0f%%", 100 * rate / sgemm)) |")
                }
                if layers { layerTable(net, size: size, workspace: ws, runs: runs) }
            }
        }
    }

    /// Each layer alone through the public `Kernels.conv2d` / `conv2dVJP` (these add the copies
    /// into and out of padded planes that the network avoids).
    static func layerTable(_ net: NeuralRendererNet, size: Int, workspace ws: ConvWorkspace, runs: Int) {
        let c = net.configuration
        for (l, layer) in c.layers.enumerated() {
            let x = randomImage(channels: c.channelsIn(l), size: size, seed: UInt64(l))
            let w = net.parameters[2 * l], b = net.parameters[2 * l + 1]
            let y = Kernels.conv2d(x, weight: w, bias: b, activation: layer.activation, workspace: ws)
            let f = Conv2DShape(channelsIn: c.channelsIn(l), channelsOut: layer.channels, kernelSize: layer.kernelSize,
                                height: size, width: size).flops
            let fwd = time(runs: runs) { _ = Kernels.conv2d(x, weight: w, bias: b, activation: layer.activation, workspace: ws) }
            let bwd = time(runs: runs) {
                _ = Kernels.conv2dVJP(x, weight: w, output: y, vOutput: y, activation: layer.activation, workspace: ws)
            }
            print("|   layer\(l) \(c.channelsIn(l))→\(layer.channels) \(layer.kernelSize)×\(layer.kernelSize) | \(size)² "
                  + "| \(ws.threads) | fwd \(ms(fwd.median)) | vjp \(ms(bwd.median)) | | "
                  + "\(String(format: "%.1f / %.1f", f / fwd.median / 1e9, 2 * f / bwd.median / 1e9)) | |")
        }
    }

    static func sgemmRate(threads: Int, runs: Int) -> (median: Double, min: Double, max: Double) {
        openblas_set_num_threads(Int32(threads))
        let n = 512
        let a = randomImage(channels: 1, size: n, seed: 1).scalars
        let b = randomImage(channels: 1, size: n, seed: 2).scalars
        var c = [Float](repeating: 0, count: n * n)
        let repeats = 10
        let r = time(runs: runs) {
            c.withUnsafeMutableBufferPointer { cp in
                for _ in 0..<repeats {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(n), Int32(n),
                                1, a, Int32(n), b, Int32(n), 0, cp.baseAddress, Int32(n))
                }
            }
        }
        let per = Double(repeats)
        return (r.median / per, r.min / per, r.max / per)
    }

    static func time(runs: Int, _ body: () -> Void) -> (median: Double, min: Double, max: Double) {
        body()
        var seconds: [Double] = []
        for _ in 0..<runs {
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            seconds.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        seconds.sort()
        return (seconds[seconds.count / 2], seconds.first!, seconds.last!)
    }

    static func randomImage(channels: Int, size: Int, seed: UInt64) -> Tensor {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        let count = channels * size * size
        var scalars = [Float](repeating: 0, count: count)
        for i in 0..<count {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            scalars[i] = Float(state >> 40) / Float(1 << 24)
        }
        return Tensor(shape: [channels, size, size], scalars: scalars)
    }

    static func describe(_ c: NeuralRendererNet.Configuration) -> String {
        var s = "\(c.inputChannels)"
        for l in c.layers { s += "→\(l.channels)(\(l.kernelSize)×\(l.kernelSize) \(l.activation.rawValue))" }
        return s
    }

    static func ms(_ s: Double) -> String { String(format: "%.1f", s * 1e3) }
    static func gflops(_ f: Double, _ s: Double) -> String { String(format: "%.1f", f / s / 1e9) }
    static func parseList(_ s: String) -> [Int] { s.split(separator: ",").compactMap { Int($0) } }

    static func usage() {
        print("""
        pgbench conv [--quick] [--runs N] [--sizes 256,512] [--threads 1,2] [--band-bytes B] [--layers]
            NeuralRenderer forward and forward+backward against cblas_sgemm 512³
        """)
    }

    static func fail(_ message: String) -> Never {
        print("pgbench conv: \(message)")
        usage()
        exit(1)
    }
}
