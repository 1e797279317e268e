import PGFlow
import PGTensor

/// Gathers a per-frame tensor of every frame into one static tensor [T, …] — e.g. a clip's
/// landmark detections for Tracker's fit mode, which needs the whole clip at once.
public struct Collect: FrameSink {
    public static let type = "Collect"
    public static let version = 1

    public init(params: Params) throws {}

    public func consume(_ frames: FrameStream, inputs: Inputs, context: RunContext) throws -> [String: Value] {
        var shape: [Int]?
        var scalars: [Float] = []
        var count = 0
        while let (t, frameInputs) = try frames.next() {
            try context.checkCancelled()
            let value = try frameInputs.value("value")
            let tensor: Tensor
            if let x = value.tensor { tensor = x } else if let n = value.number { tensor = Tensor(shape: [], scalars: [Float(n)]) } else {
                throw OperatorError("frame \(t): input 'value' should be a tensor or a number, got \(value.summary)")
            }
            if let shape, shape != tensor.shape {
                throw OperatorError("frame \(t): input 'value' is \(tensor.shape), but frame 0's was \(shape); every frame must have one shape")
            }
            shape = tensor.shape
            scalars += tensor.scalars
            count += 1
            context.progress(count, of: frames.count)
        }
        guard let shape else { throw OperatorError("there are no frames to collect") }
        return ["stack": .tensor(Tensor(shape: [count] + shape, scalars: scalars))]
    }
}
