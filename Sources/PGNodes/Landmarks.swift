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
        let camera = try PinholeCamera(try inputs.record("camera"))
        let posed = model.skin(try tracking.pose(for: model), threads: context.threads).posedVertices()
        let points = Self.landmarks(model, posed: posed)
        var pixels = [Float](repeating: 0, count: 2 * points.count)
        for (k, p) in points.enumerated() {
            guard let uv = camera.project(p) else {
                throw OperatorError("landmark \(k) lies behind the camera (camera z \(camera.depth(p)))")
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

/// A `Camera` record as numbers: OpenCV pinhole, pixel centres at (x + ½, y + ½).
struct PinholeCamera {
    var fx, fy, cx, cy: Double
    var width, height: Int
    /// World → camera, row-major 3×4.
    var rt: [Double]

    init(_ r: [String: Value]) throws {
        func number(_ key: String) throws -> Double {
            guard let v = r[key]?.number, v.isFinite else { throw OperatorError("camera '\(key)' should be a number, got \(r[key]?.summary ?? "nothing")") }
            return v
        }
        fx = try number("fx"); fy = try number("fy"); cx = try number("cx"); cy = try number("cy")
        width = Int(try number("width")); height = Int(try number("height"))
        guard let m = r["world_to_camera"]?.tensor, m.count == 16 else {
            throw OperatorError("camera 'world_to_camera' should be a [4, 4] tensor, got \(r["world_to_camera"]?.summary ?? "nothing")")
        }
        rt = m.scalars[0..<12].map(Double.init)
    }

    func cameraPoint(_ p: SIMD3<Double>) -> SIMD3<Double> {
        SIMD3((0..<3).map { i in rt[4 * i] * p.x + rt[4 * i + 1] * p.y + rt[4 * i + 2] * p.z + rt[4 * i + 3] })
    }

    func depth(_ p: SIMD3<Double>) -> Double { cameraPoint(p).z }

    /// Pixel coordinates of a world point, nil behind the camera.
    func project(_ p: SIMD3<Double>) -> SIMD2<Double>? {
        let c = cameraPoint(p)
        guard c.z > 1e-9 else { return nil }
        return SIMD2(fx * c.x / c.z + cx, fy * c.y / c.z + cy)
    }
}
