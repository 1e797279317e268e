import Foundation
import PGFlow
import PGKernels
import PGTensor

/// Projects a tracked model's embedded landmarks (68 iBUG points for `builtin:head` and FLAME)
/// into the camera image: each landmark is its face's barycentric blend of the skinned vertices,
/// then a pinhole projection. Gives the ground-truth 2D landmarks of the synthetic sample.
/// See `Nodes/Landmarks.json`.
public struct Landmarks: Operator {
    public static let type = "Landmarks"
    public static let version = 1

    let modelName: String
    let modelURL: URL?
    private let modelCache = Cache<ParametricModel>()

    public init(params: Params) throws {
        modelName = try params.string("model")
        if modelName == HeadModel.name {
            modelURL = nil
        } else {
            guard !modelName.hasPrefix("builtin:") else {
                throw OperatorError("param 'model' names \"\(modelName)\"; the built-in model is \"\(HeadModel.name)\"")
            }
            modelURL = Params.resolve(modelName, against: params.baseDirectory)
        }
    }

    func model() throws -> ParametricModel {
        try modelCache.get {
            guard let url = modelURL else { return HeadModel.model }
            let m: ParametricModel
            do { m = try ParametricModel(npz: url) } catch let e as ModelFileError {
                throw OperatorError(e.description)
            } catch {
                throw OperatorError("The model file \(url.path) cannot be used: \(error)")
            }
            guard m.landmarkCount > 0 else {
                throw OperatorError("the model file \(url.path) has no landmark embedding (lmk_faces_idx and lmk_bary_coords)")
            }
            return m
        }
    }

    public func evaluate(_ inputs: Inputs, frame: Int?, context: RunContext) throws -> [String: Value] {
        let model = try model()
        let tracking = try Tracking(value: try inputs.value("tracking"))
        let camera = try PinholeCamera(record: try inputs.record("camera"), what: "input 'camera'")
        let posed = model.skin(try tracking.pose(for: model), threads: context.threads).posedVertices()
        let points = Self.landmarks(model, posed: posed)
        var pixels = [Float](repeating: 0, count: 2 * points.count)
        for (k, p) in points.enumerated() {
            guard let uv = camera.pixel(p) else {
                throw OperatorError("landmark \(k) lies behind the camera (camera z \(camera.project(p).z))")
            }
            pixels[2 * k] = Float(uv.x)
            pixels[2 * k + 1] = Float(uv.y)
        }
        return ["points": .tensor(Tensor(shape: [points.count, 2], scalars: pixels))]
    }

    /// The landmarks on a posed mesh: each its face's corners blended by its barycentric weights.
    static func landmarks(_ model: ParametricModel, posed: [Float]) -> [SIMD3<Double>] {
        (0..<model.landmarkCount).map { k in
            let (a, b, c) = model.face(Int(model.landmarkFaces[k]))
            var p = SIMD3<Double>.zero
            for (corner, v) in [a, b, c].enumerated() {
                let w = Double(model.landmarkBarycentrics[3 * k + corner])
                p += w * SIMD3(Double(posed[3 * v]), Double(posed[3 * v + 1]), Double(posed[3 * v + 2]))
            }
            return p
        }
    }
}
