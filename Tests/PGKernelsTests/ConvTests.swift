import CBLAS
import Foundation
import PGTensor
import Testing
@testable import PGKernels

/// One convolution configuration: kernel, activation, image size, threads and a band size small
/// enough that even these tiny images split into several bands (so band edges are exercised).
struct ConvCase: Sendable, CustomTestStringConvertible {
    var cin = 3, cout = 4, k = 3, height = 7, width = 6
    var activation = Activation.identity
    var threads = 2
    var bandBytes = 256
    var seed: UInt64 = 1

    var testDescription: String {
        "\(cin)→\(cout) \(k)×\(k) \(activation) \(height)×\(width) threads \(threads) band \(bandBytes) B seed \(seed)"
    }

    var shape: Conv2DShape {
        Conv2DShape(channelsIn: cin, channelsOut: cout, kernelSize: k, height: height, width: width)
    }

    static let all: [ConvCase] = [
        ConvCase(k: 3, activation: .identity, seed: 11),
        ConvCase(k: 3, activation: .relu, threads: 1, seed: 12),
        ConvCase(k: 3, activation: .relu, seed: 13),
        ConvCase(k: 3, activation: .sigmoid, bandBytes: 1 << 20, seed: 14),
        ConvCase(cin: 4, cout: 3, k: 1, activation: .sigmoid, seed: 15),
        ConvCase(cin: 2, cout: 3, k: 5, height: 5, width: 8, activation: .relu, seed: 16),
        ConvCase(cin: 1, cout: 2, k: 3, height: 1, width: 1, activation: .identity, seed: 17),
        ConvCase(cin: 5, cout: 1, k: 3, height: 2, width: 9, activation: .relu, threads: 3, seed: 18),
    ]
}

/// Random inputs of a case, rounded to Float32 so both sides see the same numbers.
struct ConvInputs {
    var x: [Double], w: [Double], b: [Double], r: [Double]

    init(_ c: ConvCase) {
        var rng = ConvTestRandom(seed: c.seed)
        x = exact(rng.values(c.shape.inputCount))
        w = exact(rng.values(c.shape.weightCount, -0.5, 0.5))
        b = exact(rng.values(c.cout, -0.2, 0.2))
        r = exact(rng.values(c.shape.outputCount))   // output cotangent
    }

    /// The inputs as Float32 tensors: input [Cin, H, W], weight [Cout, Cin, k, k], bias [Cout] and
    /// the output cotangent [Cout, H, W].
    func tensors(_ c: ConvCase) -> (x: Tensor, w: Tensor, b: Tensor, vY: Tensor) {
        (Tensor(shape: [c.cin, c.height, c.width], scalars: float32(x)), Tensor(shape: [c.cout, c.cin, c.k, c.k], scalars: float32(w)),
         Tensor(shape: [c.cout], scalars: float32(b)), Tensor(shape: [c.cout, c.height, c.width], scalars: float32(r)))
    }

    func reference(_ c: ConvCase, x: [Double]? = nil, w: [Double]? = nil, b: [Double]? = nil) -> [Double] {
        ConvReference.conv(x ?? self.x, weight: w ?? self.w, bias: b ?? self.b, cin: c.cin, cout: c.cout, k: c.k,
                           height: c.height, width: c.width, activation: c.activation)
    }

    /// L = Σ r·y, whose gradient is the VJP of r.
    func loss(_ c: ConvCase, x: [Double]? = nil, w: [Double]? = nil, b: [Double]? = nil) -> Double {
        zip(r, reference(c, x: x, w: w, b: b)).reduce(0) { $0 + $1.0 * $1.1 }
    }
}

@Suite("conv2d")
struct ConvTests {
    @Test("forward matches the Float64 reference", arguments: ConvCase.all)
    func forward(_ c: ConvCase) {
        let input = ConvInputs(c)
        let ws = ConvWorkspace(threads: c.threads, bandBytes: c.bandBytes)
        let x = Tensor(shape: [c.cin, c.height, c.width], scalars: float32(input.x))
        let w = Tensor(shape: [c.cout, c.cin, c.k, c.k], scalars: float32(input.w))
        let b = Tensor(shape: [c.cout], scalars: float32(input.b))
        let y = Kernels.conv2d(x, weight: w, bias: b, activation: c.activation, workspace: ws)
        #expect(y.shape == [c.cout, c.height, c.width])
        let error = convMaxError(y.scalars, input.reference(c))
        #expect(error < 1e-5, "\(c.testDescription): forward error \(error)")
        // Twice through the same workspace: pooled planes must come back clean.
        let again = Kernels.conv2d(x, weight: w, bias: b, activation: c.activation, workspace: ws)
        #expect(again == y, "\(c.testDescription): second call differs")
    }

    @Test("VJP matches central differences of the Float64 reference", arguments: ConvCase.all)
    func vjp(_ c: ConvCase) {
        let input = ConvInputs(c)
        let ws = ConvWorkspace(threads: c.threads, bandBytes: c.bandBytes)
        let x = Tensor(shape: [c.cin, c.height, c.width], scalars: float32(input.x))
        let w = Tensor(shape: [c.cout, c.cin, c.k, c.k], scalars: float32(input.w))
        let b = Tensor(shape: [c.cout], scalars: float32(input.b))
        let y = Kernels.conv2d(x, weight: w, bias: b, activation: c.activation, workspace: ws)
        let vY = Tensor(shape: y.shape, scalars: float32(input.r))
        let (vX, vW, vB) = Kernels.conv2dVJP(x, weight: w, output: y, vOutput: vY, activation: c.activation, workspace: ws)

        let fdX = input.x.indices.map { i in centralDifference({ input.loss(c, x: $0) }, input.x, i) }
        let fdW = input.w.indices.map { i in centralDifference({ input.loss(c, w: $0) }, input.w, i) }
        let fdB = input.b.indices.map { i in centralDifference({ input.loss(c, b: $0) }, input.b, i) }
        let ex = convMaxError(vX.scalars, fdX), ew = convMaxError(vW.scalars, fdW), eb = convMaxError(vB.scalars, fdB)
        #expect(ex < 1e-4, "\(c.testDescription): vInput error \(ex)")
        #expect(ew < 1e-4, "\(c.testDescription): vWeight error \(ew)")
        #expect(eb < 1e-4, "\(c.testDescription): vBias error \(eb)")
    }

    @Test("raw VJP accumulates weight and bias cotangents and may skip any of them")
    func rawAccumulates() {
        let c = ConvCase(activation: .relu, seed: 21)
        let input = ConvInputs(c)
        let ws = ConvWorkspace(threads: 2, bandBytes: 256)
        let x = float32(input.x), w = float32(input.w), b = float32(input.b), r = float32(input.r)
        var y = [Float](repeating: 0, count: c.shape.outputCount)
        x.withUnsafeBufferPointer { xb in
            w.withUnsafeBufferPointer { wb in
                b.withUnsafeBufferPointer { bb in
                    y.withUnsafeMutableBufferPointer { yb in
                        Kernels.conv2d(xb, weight: wb, bias: bb, output: yb, shape: c.shape, activation: .relu, workspace: ws)
                    }
                }
            }
        }
        func vjp(_ vW: inout [Float], _ vB: inout [Float], _ vX: inout [Float], input needX: Bool) {
            x.withUnsafeBufferPointer { xb in
                w.withUnsafeBufferPointer { wb in
                    y.withUnsafeBufferPointer { yb in
                        r.withUnsafeBufferPointer { rb in
                            vW.withUnsafeMutableBufferPointer { vwb in
                                vB.withUnsafeMutableBufferPointer { vbb in
                                    vX.withUnsafeMutableBufferPointer { vxb in
                                        Kernels.conv2dVJP(xb, weight: wb, output: yb, vOutput: rb,
                                                          vInput: needX ? vxb : nil, vWeight: vwb, vBias: vbb,
                                                          shape: c.shape, activation: .relu, workspace: ws)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        var vW = [Float](repeating: 0, count: w.count), vB = [Float](repeating: 0, count: b.count)
        var vX = [Float](repeating: 0, count: x.count)
        vjp(&vW, &vB, &vX, input: true)
        let once = (vW, vB, vX)
        vjp(&vW, &vB, &vX, input: false)
        #expect(zip(vW, once.0).allSatisfy { abs($0 - 2 * $1) <= 1e-6 * max(1, abs($1)) }, "vWeight did not accumulate")
        #expect(zip(vB, once.1).allSatisfy { abs($0 - 2 * $1) <= 1e-6 * max(1, abs($1)) }, "vBias did not accumulate")
        #expect(vX == once.2, "vInput was written although not asked for")
        #expect(once.2.contains { $0 != 0 })
    }

    @Test("one and two threads, small and large bands give the same result")
    func threadsAgree() {
        let c = ConvCase(cin: 6, cout: 5, k: 3, height: 9, width: 11, activation: .relu, seed: 31)
        let (x, w, b, vY) = ConvInputs(c).tensors(c)
        var results: [(Tensor, Tensor, Tensor, Tensor)] = []
        for (threads, band) in [(1, 1 << 20), (2, 256), (2, 64), (1, 64)] {
            let ws = ConvWorkspace(threads: threads, bandBytes: band)
            let y = Kernels.conv2d(x, weight: w, bias: b, activation: .relu, workspace: ws)
            let v = Kernels.conv2dVJP(x, weight: w, output: y, vOutput: vY, activation: .relu, workspace: ws)
            results.append((y, v.vInput, v.vWeight, v.vBias))
        }
        for r in results.dropFirst() {
            // Bands change only how OpenBLAS tiles the columns, and sums over bands run in
            // another order: equal up to rounding.
            #expect(convMaxError(r.0.scalars, float64(results[0].0.scalars)) < 1e-6)
            #expect(convMaxError(r.1.scalars, float64(results[0].1.scalars)) < 1e-6)
            #expect(convMaxError(r.2.scalars, float64(results[0].2.scalars)) < 1e-5)
            #expect(convMaxError(r.3.scalars, float64(results[0].3.scalars)) < 1e-5)
        }
    }

    /// Training with two threads must give the same bits on every run (a rerun reproduces a
    /// result; comparisons between runs mean something): the weight gradient's per-worker sums
    /// must cover the same bands in the same order each time, whichever worker finishes first.
    @Test("two threads give the same weight-gradient bits on every call")
    func vjpIsReproducible() {
        let c = ConvCase(cin: 32, cout: 32, k: 3, height: 96, width: 96, activation: .relu, seed: 41)
        let (x, w, b, vY) = ConvInputs(c).tensors(c)
        let ws = ConvWorkspace(threads: 2, bandBytes: 64)   // many small bands: workers interleave
        let y = Kernels.conv2d(x, weight: w, bias: b, activation: .relu, workspace: ws)
        let first = Kernels.conv2dVJP(x, weight: w, output: y, vOutput: vY, activation: .relu, workspace: ws)
        var differing = 0   // calls whose bits differ from the first's (a count: the arrays are long)
        for _ in 0..<20 {
            let again = Kernels.conv2dVJP(x, weight: w, output: y, vOutput: vY, activation: .relu, workspace: ws)
            if again.vWeight != first.vWeight || again.vBias != first.vBias || again.vInput != first.vInput { differing += 1 }
        }
        #expect(differing == 0, "\(differing) of 20 calls gave other bits than the first")
    }

    /// The kernels run single-threaded GEMMs on their own workers, so OpenBLAS must bring no
    /// threads of its own (Sources/CBLAS/loader.c opens it with OPENBLAS_NUM_THREADS=1), and the
    /// process's environment must be as it was (plugins started later inherit it).
    @Test("OpenBLAS runs one thread and leaves the environment as it was")
    func blasIsSingleThreaded() {
        let before = ProcessInfo.processInfo.environment["OPENBLAS_NUM_THREADS"]
        let c = ConvCase(cin: 3, cout: 4, k: 3, height: 5, width: 6, activation: .relu, seed: 5)
        let (x, w, b, _) = ConvInputs(c).tensors(c)
        let y = Kernels.conv2d(x, weight: w, bias: b, activation: .relu, workspace: ConvWorkspace(threads: 2))
        #expect(y.shape == [c.cout, c.height, c.width])
        #expect(openblas_get_num_threads() == 1)
        #expect(ProcessInfo.processInfo.environment["OPENBLAS_NUM_THREADS"] == before)
    }

    @Test("activation kernels and their VJPs")
    func activations() {
        var rng = ConvTestRandom(seed: 41)
        let x = Tensor(shape: [2, 3, 4], scalars: float32(rng.values(24, -30, 30)))
        let v = Tensor(shape: [2, 3, 4], scalars: float32(rng.values(24)))
        for a in Activation.allCases {
            let y = Kernels.activation(a, x)
            let vx = Kernels.activationVJP(a, output: y, vOutput: v)
            for i in 0..<x.count {
                let xi = Double(x.scalars[i])
                #expect(abs(Double(y.scalars[i]) - ConvReference.activate(xi, a)) < 1e-6, "\(a) at \(xi)")
                let fd = (ConvReference.activate(xi + 1e-6, a) - ConvReference.activate(xi - 1e-6, a)) / 2e-6
                #expect(abs(Double(vx.scalars[i]) - fd * Double(v.scalars[i])) < 1e-5, "\(a)' at \(xi)")
            }
        }
        #expect(Kernels.sigmoid(Tensor(shape: [2], scalars: [-200, 200])).scalars == [0, 1])
    }
}
