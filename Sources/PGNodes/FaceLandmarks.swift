import Foundation
import PGFlow
import PGTensor

/// Detects a face's landmarks in every frame through a `landmarks` plugin (MediaPipe's face
/// landmarker, dlib's 68-point predictor; `Nodes/plugins/landmarks.json`) and maps them to the
/// iBUG-68 layout the head models embed (`DetectorLayout`), so Tracker's fit mode can compare
/// them with the model's landmarks. The detections are per-frame values: cached, and drawable.
public struct FaceLandmarks: Operator {
    public static let type = "FaceLandmarks"
    public static let version = 1

    let call: PluginCall

    public init(params: Params) throws {
        call = try PluginCall(requiring: params)
    }

    public func evaluate(_ inputs: Inputs, frame: Int?, context: RunContext) throws -> [String: Value] {
        let host = try call.host(context)
        let image = try inputs.rgb("image")
        let t = frame ?? 0
        let detection = try host.call(call.plugin, try call.request("detect", frame: t, host: host), files: [("image", image.npyDataHWC())],
                                      what: "the landmarks of frame \(t)") { reply, _ in
            try call.named { try Detection(reply: reply) }
        }
        return detection.outputs
    }
}

/// One frame's answer from a landmarks plugin, checked.
struct Detection {
    var faces: Int
    var layout: DetectorLayout?
    var raw: [SIMD2<Float>]
    var confidence: Float
    var blendshapes: [Float]

    init(reply: JSON) throws {
        guard let faces = reply["faces"]?.int, faces >= 0 else {
            throw OperatorError("its reply has no face count 'faces' (got \(reply.text.prefix(120)))")
        }
        self.faces = faces
        confidence = Float(reply["confidence"]?.double ?? (faces > 0 ? 1 : 0))
        raw = []
        blendshapes = []
        layout = nil
        guard faces > 0 else { confidence = 0; return }
        guard let name = reply["layout"]?.string, let layout = DetectorLayout(rawValue: name) else {
            throw OperatorError("its reply names the landmark layout \(reply["layout"]?.text ?? "nothing"); pgflow knows "
                                + DetectorLayout.allCases.map(\.rawValue).joined(separator: ", "))
        }
        self.layout = layout
        guard let rows = reply["points"]?.array else { throw OperatorError("its reply has no 'points' list") }
        for (k, row) in rows.enumerated() {
            guard let xy = row.array, xy.count >= 2, let x = xy[0].double, let y = xy[1].double, x.isFinite, y.isFinite else {
                throw OperatorError("point \(k) of its reply is not [x, y] with finite numbers: \(row.text.prefix(60))")
            }
            raw.append(SIMD2(Float(x), Float(y)))
        }
        guard raw.count >= layout.pointCount else {
            throw OperatorError("its reply has \(raw.count) points, but layout \(layout.rawValue) has \(layout.pointCount)")
        }
        guard confidence.isFinite, confidence >= 0 else { throw OperatorError("its reply's confidence \(confidence) is not a number ≥ 0") }
        blendshapes = (reply["blendshapes"]?.array ?? []).map { Float($0.double ?? 0) }
    }

    /// The node's outputs: iBUG-68 points with the confidence as a third column (zeros when no
    /// face), the detector's own points, the confidence and the blendshapes (52, zeros when none).
    var outputs: [String: Value] {
        var points = [Float](repeating: 0, count: 68 * 3)
        if let layout {
            for (k, p) in layout.ibug68(raw).enumerated() {
                points[3 * k] = p.x; points[3 * k + 1] = p.y; points[3 * k + 2] = confidence
            }
        }
        var shapes = [Float](repeating: 0, count: 52)
        for (k, v) in blendshapes.prefix(52).enumerated() { shapes[k] = v }
        return ["points": .tensor(Tensor(shape: [68, 3], scalars: points)),
                "raw": .tensor(Tensor(shape: [raw.count, 2], scalars: raw.flatMap { [$0.x, $0.y] })),
                "confidence": .number(Double(confidence)),
                "blendshapes": .tensor(Tensor(shape: [52], scalars: shapes))]
    }
}
