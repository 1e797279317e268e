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
        var passes = ["forward", "forward+backward"]
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
            case "--forward-only": passes = ["forward"]
            case "--backward-only": passes = ["forward+backward"]
            case "-h", "--help": usage(); return
            default: fail("unknown option \(arguments[i])")
            }
            i += 1
        }

        let net = NeuralRendererNet(configuration: .portraitGen, seed: 1)
        print("NeuralRenderer \(describe(net.configuration)): \(net.configuration.parameterCount) parameters")
        print("OpenBLAS: \(String(cString: openblas_get_config()))")
        print("runs per row: \(runs) (after one warm-up); times in ms; GFLOP/s from the median; the forward")
        print("pass saves nothing, forward+backward saves activations and runs the VJP of an L1 loss\n")

        // The sgemm reference is timed between the renderer's runs, so both see the same machine
        // (the two cores are shared; a separate sgemm table could be from a quieter minute).
        print("| pass | size | threads | median ms | min | max | GFLOP/s | sgemm 512³ GFLOP/s | % of sgemm |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        var gemmSamples: [Int: [Double]] = [:]
        for size in sizes {
            let features = randomImage(channels: net.configuration.inputChannels, size: size, seed: 7)
            let target = randomImage(channels: 3, size: size, seed: 8)
            let flops = net.configuration.forwardFLOPs(height: size, width: size)
            for t in threadCounts {
                let ws = bandBytes.map { ConvWorkspace(threads: t, bandBytes: $0) } ?? ConvWorkspace(threads: t)
                let forward: () -> Void = { _ = net(features, workspace: ws) }
                let both: () -> Void = {
                    let (rgb, saved) = net.forward(features, workspace: ws)
                    let vRGB = Kernels.l1LossVJP(rgb, target, vLoss: 1).vPrediction
                    _ = net.vjp(saved, vRGB: vRGB, workspace: ws)
                }
                var times: [String: [Double]] = [:]
                var gemm: [Double] = []
                _ = sgemmSeconds(threads: t)
                for (name, body) in [("forward", forward), ("forward+backward", both)] where passes.contains(name) {
                    body()   // warm-up: fills the workspace's plane pool
                }
                for _ in 0..<runs {
                    gemm.append(sgemmSeconds(threads: t))
                    for (name, body) in [("forward", forward), ("forward+backward", both)] where passes.contains(name) {
                        times[name, default: []].append(seconds(body))
                    }
                }
                gemmSamples[t, default: []] += gemm
                let gemmRate = 2 * pow(512, 3) / median(gemm)
                for (name, f) in [("forward", flops), ("forward+backward", 3 * flops)] where passes.contains(name) {
                    let r = times[name]!.sorted()
                    let rate = f / median(r)
                    print("| \(name) | \(size)² | \(t) | \(ms(median(r))) | \(ms(r.first!)) | \(ms(r.last!)) "
                          + "| \(String(format: "%.1f", rate / 1e9)) | \(String(format: "%.1f", gemmRate / 1e9)) "
                          + "| \(String(format: "%.0f%%", 100 * rate / gemmRate)) |")
                }
                if layers { layerTable(net, size: size, workspace: ws, runs: runs) }
            }
        }
        print("\n| cblas_sgemm 512³, all samples | threads | median ms | min | max | GFLOP/s |")
        print("| --- | ---: | ---: | ---: | ---: | ---: |")
        for t in threadCounts {
            let g = gemmSamples[t]!.sorted()
            print("| sgemm | \(t) | \(ms(median(g))) | \(ms(g.first!)) | \(ms(g.last!)) | \(gflops(2 * pow(512, 3), median(g))) |")
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

    /// Seconds per 512³ `cblas_sgemm` on `threads` OpenBLAS threads, averaged over 40 calls in a
    /// row (about as long as a renderer run, so both meet the same interruptions), leaving OpenBLAS
    /// single-threaded again as the conv kernels want it.
    static func sgemmSeconds(threads: Int) -> Double {
        openblas_set_num_threads(Int32(threads))
        defer { openblas_set_num_threads(1) }
        let n = 512, calls = 40
        let total = gemmC.withUnsafeMutableBufferPointer { cp in
            seconds {
                for _ in 0..<calls {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(n), Int32(n), Int32(n),
                                1, gemmA, Int32(n), gemmB, Int32(n), 0, cp.baseAddress, Int32(n))
                }
            }
        }
        return total / Double(calls)
    }

    nonisolated(unsafe) static var gemmC = [Float](repeating: 0, count: 512 * 512)
    static let gemmA = randomImage(channels: 1, size: 512, seed: 1).scalars
    static let gemmB = randomImage(channels: 1, size: 512, seed: 2).scalars

    static func seconds(_ body: () -> Void) -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        body()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    static func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }

    static func time(runs: Int, _ body: () -> Void) -> (median: Double, min: Double, max: Double) {
        body()
        let s = (0..<runs).map { _ in seconds(body) }.sorted()
        return (median(s), s.first!, s.last!)
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
