internal import CBLAS
import PGTensor

/// Shape of one stride-1, zero-padded ("same") 2D convolution of a single channels-first image:
/// x [Cin, H, W] ⊛ weight [Cout, Cin, k, k] + bias [Cout] → y [Cout, H, W], padding (k − 1) / 2.
public struct Conv2DShape: Sendable, Hashable {
    public var channelsIn: Int
    public var channelsOut: Int
    public var kernelSize: Int
    public var height: Int
    public var width: Int

    public init(channelsIn: Int, channelsOut: Int, kernelSize: Int, height: Int, width: Int) {
        self.channelsIn = channelsIn
        self.channelsOut = channelsOut
        self.kernelSize = kernelSize
        self.height = height
        self.width = width
    }

    public var inputCount: Int { channelsIn * height * width }
    public var outputCount: Int { channelsOut * height * width }
    public var weightCount: Int { channelsOut * channelsIn * kernelSize * kernelSize }
    /// Floating-point operations of the forward pass (2 per multiply-add); the VJP does twice this.
    public var flops: Double {
        2 * Double(channelsOut) * Double(channelsIn * kernelSize * kernelSize) * Double(height * width)
    }

    func check(_ name: String) {
        precondition(channelsIn > 0 && channelsOut > 0 && height > 0 && width > 0,
                     "\(name): empty shape \(self)")
        precondition(kernelSize > 0 && kernelSize % 2 == 1,
                     "\(name): kernel size \(kernelSize) must be odd (padding (k−1)/2 keeps the image size)")
    }
}

/// What happens to a band of GEMM output while it is still in cache. Both cases re-zero the 2P
/// pad positions per row that the GEMM wrote junk into.
enum ConvEpilogue {
    /// y = act(acc + bias[m]): a forward layer.
    case forward(Activation, bias: UnsafePointer<Float>?)
    /// v = acc · act'(y), y the planes of the activation that produced this layer's input: an input
    /// gradient that is at once the previous layer's pre-activation cotangent.
    case cotangent(Activation, output: UnsafePointer<Float>?)
}

extension ConvWorkspace {
    /// GEMM columns per band: the band of input and output planes (Cin + Cout rows) fills
    /// `bandBytes`, so the k² GEMMs of a band find both in L2; and there are enough bands to keep
    /// every worker busy.
    func bandColumns(rows: Int, columns: Int) -> Int {
        var band = max(16, bandBytes / (MemoryLayout<Float>.stride * max(rows, 1)) / 16 * 16)
        let perWorker = (columns + threads - 1) / threads
        if band > perWorker { band = max(16, (perWorker + 15) / 16 * 16) }
        return min(band, columns)
    }
}

// MARK: - Kernels on padded planes (what NeuralRendererNet chains)
//
// A k×k "same" convolution is a sum of k² shifted 1×1 convolutions:
//     y[:, n] = Σ_t W_t · x[:, n + offset(t)],   W_t = weight[:, :, dy, dx]  ([Cout, Cin])
// and on zero-padded planes every shifted x is itself a matrix with unit column stride and the
// plane stride as leading dimension. So each band of columns is k² `cblas_sgemm` calls straight on
// the activation planes: no im2col copy at all (OpenBLAS's own packing is the only one), with the
// band's output accumulated in L2 and finished (bias, activation, pad re-zeroing) while it is
// still there. The VJP is the same loop: vWeight_t += vZ · x_shiftedᵀ, and the input gradient is
// the transposed, spatially flipped convolution vX[:, n] = Σ_t W_tᵀ · vZ[:, n + offset(k²−1−t)]
// (the mirrored tap) — a gather, so bands never write into each other.

extension Kernels {
    /// Weights [Cout, Cin, k, k] → tap-major [k², Cout, Cin], one GEMM operand per tap.
    static func convTapMajor(
        _ weight: UnsafePointer<Float>,             // [Cout, Cin, k, k]
        into out: UnsafeMutablePointer<Float>,      // [k², Cout, Cin]
        channelsIn cin: Int, channelsOut cout: Int, kernelSize k: Int
    ) {
        let kk = k * k
        for co in 0..<cout {
            for ci in 0..<cin {
                let src = weight + (co * cin + ci) * kk
                for t in 0..<kk { out[(t * cout + co) * cin + ci] = src[t] }
            }
        }
    }

    /// One layer on padded planes: output = epilogue(Σ_t W_t · shift_t(input)).
    static func convPlanes(
        _ input: UnsafePointer<Float>,              // planes [Cin] of `geometry`
        tapWeight: UnsafePointer<Float>,            // [k², Cout, Cin] (convTapMajor)
        output: UnsafeMutablePointer<Float>,        // planes [Cout] of `geometry`
        channelsIn cin: Int, channelsOut cout: Int, kernelSize k: Int,
        geometry g: PlaneGeometry, epilogue: ConvEpilogue, workspace ws: ConvWorkspace
    ) {
        assert((k - 1) / 2 <= g.pad)
        let band = ws.bandColumns(rows: cin + cout, columns: g.columns)
        let bands = (g.columns + band - 1) / band
        let offsets = convTapOffsets(k, g)
        convJobs(bands, workers: ws.threads) { _, b in
            let n0 = b * band, nb = min(band, g.columns - n0)
            for (t, offset) in offsets.enumerated() {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans,
                            Int32(cout), Int32(nb), Int32(cin),
                            1, tapWeight + t * cout * cin, Int32(cin), input + n0 + offset, Int32(g.planeStride),
                            t == 0 ? 0 : 1, output + g.origin + n0, Int32(g.planeStride))
            }
            convFinish(epilogue, output, channels: cout, n0: n0, nb: nb, geometry: g)
        }
    }

    /// The VJP of one layer on padded planes, from the pre-activation cotangent vZ (pads zero):
    /// vWeight += Σ_bands vZ · shift_t(input)ᵀ per tap, vBias += Σ vZ, and
    /// vInput = epilogue(Σ_t W_tᵀ · shift_{−t}(vZ)).
    static func convPlanesVJP(
        _ input: UnsafePointer<Float>?,             // planes [Cin]; needed for vWeight
        vPreactivation vZ: UnsafePointer<Float>,    // planes [Cout], pads zero
        tapWeight: UnsafePointer<Float>,            // [k², Cout, Cin] (convTapMajor)
        vWeight: UnsafeMutablePointer<Float>?,      // [Cout, Cin, k, k], accumulated
        vBias: UnsafeMutablePointer<Float>?,        // [Cout], accumulated
        vInput: UnsafeMutablePointer<Float>?,       // planes [Cin], overwritten
        vInputEpilogue: ConvEpilogue,
        channelsIn cin: Int, channelsOut cout: Int, kernelSize k: Int,
        geometry g: PlaneGeometry, workspace ws: ConvWorkspace
    ) {
        assert((k - 1) / 2 <= g.pad)
        assert(vWeight == nil || input != nil)
        let kk = k * k
        let needW = vWeight != nil, needB = vBias != nil
        let band = ws.bandColumns(rows: cin + cout, columns: g.columns)
        let bands = (g.columns + band - 1) / band
        let workers = min(ws.threads, bands)
        let offsets = convTapOffsets(k, g)
        // Per worker: vWeight tap-major [k², Cout, Cin], then vBias [Cout].
        let partialCount = kk * cout * cin + cout
        if needW || needB {
            for w in 0..<workers {
                ws.weightPartials[w].reserve(partialCount)
                ws.weightPartials[w].pointer.update(repeating: 0, count: partialCount)
            }
        }
        let partials = ws.weightPartials
        // W_tᵀ for every tap, [k², Cin, Cout]: the input-gradient GEMMs then run untransposed,
        // which OpenBLAS packs much faster than a transposed A.
        if vInput != nil {
            ws.transposedWeights.reserve(kk * cin * cout)
            let wt = ws.transposedWeights.pointer
            for t in 0..<kk {
                for co in 0..<cout {
                    for ci in 0..<cin { wt[(t * cin + ci) * cout + co] = tapWeight[(t * cout + co) * cin + ci] }
                }
            }
        }
        let transposed = UnsafePointer(ws.transposedWeights.pointer)
        // Contiguous runs of bands per worker, not `convJobs`' first-come order: each worker's
        // weight-gradient sums then cover the same bands in the same order on every run, so
        // training with two threads gives the same bits every time.
        parallelChunks(bands, threads: workers, minimumChunk: 1) { worker, range in for b in range {
            let n0 = b * band, nb = min(band, g.columns - n0)
            let partial = partials[worker].pointer
            let vZBand = vZ + g.origin + n0
            if needW, let input {
                for (t, offset) in offsets.enumerated() {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans,
                                Int32(cout), Int32(cin), Int32(nb),
                                1, vZBand, Int32(g.planeStride), input + n0 + offset, Int32(g.planeStride),
                                1, partial + t * cout * cin, Int32(cin))
                }
            }
            if needB {
                let vBiasPartial = partial + kk * cout * cin
                for m in 0..<cout { vBiasPartial[m] += convLaneSum(vZBand + m * g.planeStride, nb) }
            }
            if let vInput {
                // Output column n reads vZ at n + origin − (offset(t) − origin) for tap t, which is
                // tap k²−1−t's offset: offset(t) + offset(k²−1−t) = 2·origin.
                for (t, offset) in offsets.enumerated() {
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans,
                                Int32(cin), Int32(nb), Int32(cout),
                                1, transposed + (kk - 1 - t) * cin * cout, Int32(cout),
                                vZ + n0 + offset, Int32(g.planeStride),
                                t == 0 ? 0 : 1, vInput + g.origin + n0, Int32(g.planeStride))
                }
                convFinish(vInputEpilogue, vInput, channels: cin, n0: n0, nb: nb, geometry: g)
            }
        } }
        if needW || needB {
            for w in 0..<workers {
                let partial = partials[w].pointer
                if let vWeight {
                    for co in 0..<cout {
                        for ci in 0..<cin {
                            let dst = vWeight + (co * cin + ci) * kk
                            for t in 0..<kk { dst[t] += partial[(t * cout + co) * cin + ci] }
                        }
                    }
                }
                if let vBias { for m in 0..<cout { vBias[m] += partial[kk * cout * cin + m] } }
            }
        }
    }
}

/// Offsets of the k² taps from a GEMM column to its input, in weight order (dy, dx).
func convTapOffsets(_ k: Int, _ g: PlaneGeometry) -> [Int] {
    (0..<(k * k)).map { g.tapOffset(dy: $0 / k, dx: $0 % k, kernelSize: k) }
}

/// Applies the epilogue to the band [n0, n0 + nb) of every output channel and zeroes the pad
/// positions in it, walking whole runs of pixels so the inner loops vectorise.
@inline(__always)
func convFinish(
    _ epilogue: ConvEpilogue,
    _ planes: UnsafeMutablePointer<Float>,          // planes [C]
    channels: Int, n0: Int, nb: Int, geometry g: PlaneGeometry
) {
    let w = g.width, wp = g.paddedWidth
    for m in 0..<channels {
        let offset = m * g.planeStride + g.origin + n0
        let row = planes + offset
        var j = 0, x = n0 % wp
        while j < nb {
            if x < w {
                let run = min(w - x, nb - j)
                switch epilogue {
                case .forward(let activation, let bias):
                    activation.apply(row + j, count: run, bias: bias?[m] ?? 0)
                case .cotangent(let activation, let output):
                    if let output { activation.backward(row + j, output: output + offset + j, count: run) }
                }
                j += run
                x += run
            } else {
                let run = min(wp - x, nb - j)
                (row + j).update(repeating: 0, count: run)
                j += run
                x += run
            }
            if x == wp { x = 0 }
        }
    }
}

// MARK: - Public kernels on [C, H, W] buffers

extension Kernels {
    /// y = act(weight ⊛ x + bias): a stride-1 convolution with zero padding (k − 1) / 2, as in the
    /// NeuralRenderer of Eq. 9 (3×3 and 1×1 layers): k² shifted `cblas_sgemm` calls per band of
    /// zero-padded planes, with the bias and activation fused into the band's epilogue.
    public static func conv2d(
        _ x: UnsafeBufferPointer<Float>,                    // [Cin, H, W]
        weight: UnsafeBufferPointer<Float>,                 // [Cout, Cin, k, k]
        bias: UnsafeBufferPointer<Float>?,                  // [Cout]
        output y: UnsafeMutableBufferPointer<Float>,        // [Cout, H, W]
        shape s: Conv2DShape,
        activation: Activation = .identity,
        workspace ws: ConvWorkspace = .shared
    ) {
        s.check("conv2d")
        precondition(x.count == s.inputCount, "conv2d: input has \(x.count) values, shape \(s) needs \(s.inputCount)")
        precondition(weight.count == s.weightCount, "conv2d: weight has \(weight.count) values, shape \(s) needs \(s.weightCount)")
        precondition(bias == nil || bias!.count == s.channelsOut, "conv2d: bias has \(bias!.count) values, needs \(s.channelsOut)")
        precondition(y.count == s.outputCount, "conv2d: output has \(y.count) values, shape \(s) needs \(s.outputCount)")
        let g = PlaneGeometry(height: s.height, width: s.width, pad: (s.kernelSize - 1) / 2)
        ws.exclusive {
            let input = ws.borrowPlanes(g, channels: s.channelsIn)
            let output = ws.borrowPlanes(g, channels: s.channelsOut)
            input.load(x.baseAddress!)
            ws.packedWeights.reserve(s.weightCount)
            convTapMajor(weight.baseAddress!, into: ws.packedWeights.pointer,
                         channelsIn: s.channelsIn, channelsOut: s.channelsOut, kernelSize: s.kernelSize)
            convPlanes(input.pointer, tapWeight: ws.packedWeights.pointer, output: output.pointer,
                       channelsIn: s.channelsIn, channelsOut: s.channelsOut, kernelSize: s.kernelSize,
                       geometry: g, epilogue: .forward(activation, bias: bias?.baseAddress), workspace: ws)
            output.store(y.baseAddress!)
            input.recycle()
            output.recycle()
        }
    }

    /// The VJP of `conv2d`: from the output cotangent vY, the input cotangent (overwritten) and the
    /// weight and bias cotangents (accumulated with +=, so a batch loop sums them). `output` is the
    /// forward's y, from which the activation's derivative is taken; it may be nil for `.identity`.
    /// Any of the three results may be nil when it is not needed.
    public static func conv2dVJP(
        _ x: UnsafeBufferPointer<Float>,                    // [Cin, H, W]
        weight: UnsafeBufferPointer<Float>,                 // [Cout, Cin, k, k]
        output y: UnsafeBufferPointer<Float>?,              // [Cout, H, W]
        vOutput vY: UnsafeBufferPointer<Float>,             // [Cout, H, W]
        vInput vX: UnsafeMutableBufferPointer<Float>?,      // [Cin, H, W], overwritten
        vWeight vW: UnsafeMutableBufferPointer<Float>?,     // [Cout, Cin, k, k], accumulated
        vBias vB: UnsafeMutableBufferPointer<Float>?,       // [Cout], accumulated
        shape s: Conv2DShape,
        activation: Activation = .identity,
        workspace ws: ConvWorkspace = .shared
    ) {
        s.check("conv2dVJP")
        precondition(x.count == s.inputCount, "conv2dVJP: input has \(x.count) values, shape \(s) needs \(s.inputCount)")
        precondition(weight.count == s.weightCount, "conv2dVJP: weight has \(weight.count) values, needs \(s.weightCount)")
        precondition(activation == .identity || y != nil, "conv2dVJP: the \(activation) derivative needs the forward output")
        precondition(y == nil || y!.count == s.outputCount, "conv2dVJP: output has \(y!.count) values, needs \(s.outputCount)")
        precondition(vY.count == s.outputCount, "conv2dVJP: vOutput has \(vY.count) values, needs \(s.outputCount)")
        precondition(vX == nil || vX!.count == s.inputCount, "conv2dVJP: vInput has \(vX!.count) values, needs \(s.inputCount)")
        precondition(vW == nil || vW!.count == s.weightCount, "conv2dVJP: vWeight has \(vW!.count) values, needs \(s.weightCount)")
        precondition(vB == nil || vB!.count == s.channelsOut, "conv2dVJP: vBias has \(vB!.count) values, needs \(s.channelsOut)")
        let g = PlaneGeometry(height: s.height, width: s.width, pad: (s.kernelSize - 1) / 2)
        ws.exclusive {
            // vZ = vY · act'(y), written straight into padded planes.
            let vZ = ws.borrowPlanes(g, channels: s.channelsOut)
            vZ.load(vY.baseAddress!)
            if activation != .identity, let y = y?.baseAddress {
                for c in 0..<s.channelsOut {
                    for row in 0..<s.height {
                        activation.backward(vZ.pointer + c * g.planeStride + g.origin + row * g.paddedWidth,
                                            output: y + (c * s.height + row) * s.width, count: s.width)
                    }
                }
            }
            let input: ConvPlanes? = vW == nil ? nil : ws.borrowPlanes(g, channels: s.channelsIn)
            input?.load(x.baseAddress!)
            let vInput: ConvPlanes? = vX == nil ? nil : ws.borrowPlanes(g, channels: s.channelsIn)
            ws.packedWeights.reserve(s.weightCount)
            convTapMajor(weight.baseAddress!, into: ws.packedWeights.pointer,
                         channelsIn: s.channelsIn, channelsOut: s.channelsOut, kernelSize: s.kernelSize)
            convPlanesVJP(input.map { UnsafePointer($0.pointer) }, vPreactivation: vZ.pointer,
                          tapWeight: ws.packedWeights.pointer,
                          vWeight: vW?.baseAddress, vBias: vB?.baseAddress, vInput: vInput?.pointer,
                          vInputEpilogue: .cotangent(.identity, output: nil),
                          channelsIn: s.channelsIn, channelsOut: s.channelsOut, kernelSize: s.kernelSize,
                          geometry: g, workspace: ws)
            if let vInput, let vX { vInput.store(vX.baseAddress!) }
            vZ.recycle()
            input?.recycle()
            vInput?.recycle()
        }
    }
}

// MARK: - Tensor-level wrappers

extension Kernels {
    /// y [Cout, H, W] = act(weight [Cout, Cin, k, k] ⊛ x [Cin, H, W] + bias [Cout]).
    public static func conv2d(_ x: Tensor, weight: Tensor, bias: Tensor?, activation: Activation = .identity,
                              workspace: ConvWorkspace = .shared) -> Tensor {
        let s = conv2DShape(x, weight, "conv2d")
        precondition(bias == nil || bias!.shape == [s.channelsOut], "conv2d: bias \(bias!.shape), expected [\(s.channelsOut)]")
        var y = Tensor(zeros: [s.channelsOut, s.height, s.width])
        x.withUnsafeBufferPointer { xb in
            weight.withUnsafeBufferPointer { wb in
                y.withUnsafeMutableBufferPointer { yb in
                    if let bias {
                        bias.withUnsafeBufferPointer { bb in
                            conv2d(xb, weight: wb, bias: bb, output: yb, shape: s, activation: activation, workspace: workspace)
                        }
                    } else {
                        conv2d(xb, weight: wb, bias: nil, output: yb, shape: s, activation: activation, workspace: workspace)
                    }
                }
            }
        }
        return y
    }

    /// Cotangents of x, weight and bias from the forward's output y and its cotangent vY.
    public static func conv2dVJP(_ x: Tensor, weight: Tensor, output y: Tensor, vOutput vY: Tensor,
                                 activation: Activation = .identity, workspace: ConvWorkspace = .shared)
        -> (vInput: Tensor, vWeight: Tensor, vBias: Tensor) {
        let s = conv2DShape(x, weight, "conv2dVJP")
        let outShape = [s.channelsOut, s.height, s.width]
        precondition(y.shape == outShape, "conv2dVJP: output \(y.shape), expected \(outShape)")
        precondition(vY.shape == outShape, "conv2dVJP: vOutput \(vY.shape), expected \(outShape)")
        var vX = Tensor(zeros: x.shape), vW = Tensor(zeros: weight.shape), vB = Tensor(zeros: [s.channelsOut])
        x.withUnsafeBufferPointer { xb in
            weight.withUnsafeBufferPointer { wb in
                y.withUnsafeBufferPointer { yb in
                    vY.withUnsafeBufferPointer { vyb in
                        vX.withUnsafeMutableBufferPointer { vxb in
                            vW.withUnsafeMutableBufferPointer { vwb in
                                vB.withUnsafeMutableBufferPointer { vbb in
                                    conv2dVJP(xb, weight: wb, output: yb, vOutput: vyb,
                                              vInput: vxb, vWeight: vwb, vBias: vbb,
                                              shape: s, activation: activation, workspace: workspace)
                                }
                            }
                        }
                    }
                }
            }
        }
        return (vX, vW, vB)
    }

    private static func conv2DShape(_ x: Tensor, _ weight: Tensor, _ name: String) -> Conv2DShape {
        precondition(x.rank == 3, "\(name): input must be [C, H, W], got \(x.shape)")
        precondition(weight.rank == 4 && weight.shape[2] == weight.shape[3],
                     "\(name): weight must be [Cout, Cin, k, k], got \(weight.shape)")
        precondition(weight.shape[1] == x.shape[0],
                     "\(name): weight \(weight.shape) expects \(weight.shape[1]) input channels, input has \(x.shape[0])")
        let s = Conv2DShape(channelsIn: x.shape[0], channelsOut: weight.shape[0], kernelSize: weight.shape[2],
                            height: x.shape[1], width: x.shape[2])
        s.check(name)
        return s
    }
}

extension ConvWorkspace {
    /// A process-wide workspace on all cores, for callers that do not keep their own; calls
    /// through it from several threads take turns.
    public static let shared = ConvWorkspace()
}
