import Foundation
import PGFlow
import PGKernels
import PGTensor

/// A synthetic actor: `builtin:head` performing a seeded procedural script (head turns and nods,
/// speech-like jaw motion, blinks, smiles) in front of a fixed camera. It drives the synthetic
/// sample (`Graphs/make-sample.json`), whose tracking is then known exactly. See `Nodes/Performance.json`.
public struct Performance: FrameSource {
    public static let type = "Performance"
    public static let version = 1

    /// The camera aims at this height (metres, model space): between the chin and the shoulders, so
    /// a head-and-shoulders shot at the default field of view.
    static let aimHeight = -0.06

    let frames: Int
    let fps: Double
    let width: Int, height: Int
    let fov: Double
    let distance: Double
    let script: PerformanceScript

    public init(params: Params) throws {
        frames = try params.int("frames")
        guard frames >= 1 else { throw OperatorError("param 'frames' should be at least 1, got \(frames)") }
        fps = try params.double("fps")
        guard fps.isFinite && fps > 0 else { throw OperatorError("param 'fps' should be positive, got \(fps)") }
        width = try params.int("width")
        height = try params.int("height")
        guard width >= 1 && height >= 1 else { throw OperatorError("params 'width' and 'height' should be positive, got \(width)×\(height)") }
        fov = try params.double("fov")
        guard fov > 0 && fov < 180 else { throw OperatorError("param 'fov' should be between 0 and 180 degrees, got \(fov)") }
        distance = try params.double("distance")
        guard distance > 0 else { throw OperatorError("param 'distance' should be positive, got \(distance)") }
        let amplitudes = PerformanceScript.Amplitudes(
            turn: try params.double("turn"), nod: try params.double("nod"), jaw: try params.double("jaw"),
            blink: try params.double("blink"), smile: try params.double("smile"))
        script = PerformanceScript(seed: UInt64(truncatingIfNeeded: try params.int("seed")),
                                   duration: Double(frames) / fps, amplitudes: amplitudes)
    }

    public func frameCount(_ inputs: Inputs, context: RunContext) throws -> Int { frames }

    /// `frame == nil`: the static `meta`; `frame == t`: `tracking` and `camera` at time t / fps.
    public func evaluate(_ inputs: Inputs, frame: Int?, context: RunContext) throws -> [String: Value] {
        guard let t = frame else { return ["meta": meta] }
        guard t >= 0 && t < frames else { throw OperatorError("frame \(t) is outside the performance's \(frames) frames") }
        return ["tracking": script.tracking(Double(t) / fps).value, "camera": camera]
    }

    var meta: Value {
        .record(["fps": .number(fps), "frame_count": .number(Double(frames)), "width": .number(Double(width)),
                 "height": .number(Double(height)), "duration": .number(Double(frames) / fps)])
    }

    /// The fixed camera: `distance` in front of the face on the +z axis, looking back along −z
    /// (a rotation by π about x, so image y points down the body), centred on `aimHeight`; `fov`
    /// is the horizontal field of view.
    var camera: Value {
        let f = 0.5 * Double(width) / tan(0.5 * fov * .pi / 180)
        let w2c: [Float] = [1, 0, 0, 0,
                            0, -1, 0, Float(Self.aimHeight),
                            0, 0, -1, Float(distance),
                            0, 0, 0, 1]
        return .record(["fx": .number(f), "fy": .number(f), "cx": .number(0.5 * Double(width)),
                        "cy": .number(0.5 * Double(height)), "width": .number(Double(width)),
                        "height": .number(Double(height)), "world_to_camera": .tensor(Tensor(shape: [4, 4], scalars: w2c))])
    }
}
