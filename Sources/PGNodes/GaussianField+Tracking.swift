import PGFlow
import PGKernels
import PGTensor

/// One frame of a tracked parametric model: the `Tracking` port type's record (see `Value`).
///
/// Record keys: string `model`; tensors `shape` `[S]` (β), `expression` `[E]` (ψ), `pose` `[J, 3]`
/// (axis-angle per joint, relative to its parent, kintree order), `rotation` `[3]` (global
/// axis-angle about the root joint, applied after `pose[0]`), `translation` `[3]`, `jaw` `[3]`
/// (axis-angle composed onto the model's jaw joint after `pose[jaw]`). Absent tensors are zeros;
/// β and ψ shorter than the model's spaces are zero-padded.
public struct Tracking: Sendable, Equatable {
    public var model: String
    public var shape: [Float]         // [S]
    public var expression: [Float]    // [E]
    public var pose: [Float]          // [J, 3] or []
    public var rotation: SIMD3<Float>
    public var translation: SIMD3<Float>
    public var jaw: SIMD3<Float>

    public init(model: String, shape: [Float] = [], expression: [Float] = [], pose: [Float] = [],
                rotation: SIMD3<Float> = .zero, translation: SIMD3<Float> = .zero, jaw: SIMD3<Float> = .zero) {
        self.model = model
        self.shape = shape
        self.expression = expression
        self.pose = pose
        self.rotation = rotation
        self.translation = translation
        self.jaw = jaw
    }

    /// Reads a `Tracking` record; a malformed one is an OperatorError naming the key.
    public init(value: Value) throws {
        guard let r = value.record else { throw OperatorError("a Tracking value should be a record, got \(value.summary)") }
        func tensor(_ key: String) throws -> Tensor? {
            guard let v = r[key] else { return nil }
            if let n = v.number, v.tensor == nil { return Tensor(shape: [1], scalars: [Float(n)]) }
            guard let t = v.tensor else { throw OperatorError("tracking '\(key)' should be a tensor, got \(v.summary)") }
            return t
        }
        func vector3(_ key: String) throws -> SIMD3<Float> {
            guard let t = try tensor(key) else { return .zero }
            guard t.count == 3 else { throw OperatorError("tracking '\(key)' should have 3 values, got shape \(t.shape)") }
            return SIMD3(t.scalars[0], t.scalars[1], t.scalars[2])
        }
        model = r["model"]?.string ?? ""
        shape = try tensor("shape")?.scalars ?? []
        expression = try tensor("expression")?.scalars ?? []
        if let p = try tensor("pose") {
            guard p.count % 3 == 0 else { throw OperatorError("tracking 'pose' should be [J, 3], got shape \(p.shape)") }
            pose = p.scalars
        } else {
            pose = []
        }
        rotation = try vector3("rotation")
        translation = try vector3("translation")
        jaw = try vector3("jaw")
    }

    public var value: Value {
        func vec(_ v: SIMD3<Float>) -> Value { .tensor(Tensor(shape: [3], scalars: [v.x, v.y, v.z])) }
        return .record([
            "model": .string(model),
            "shape": .tensor(Tensor(shape: [shape.count], scalars: shape)),
            "expression": .tensor(Tensor(shape: [expression.count], scalars: expression)),
            "pose": .tensor(Tensor(shape: [pose.count / 3, 3], scalars: pose)),
            "rotation": vec(rotation),
            "translation": vec(translation),
            "jaw": vec(jaw),
        ])
    }

    /// The pose for `model`, checked against its shape, expression and joint counts.
    public func pose(for model: ParametricModel) throws -> ModelPose {
        guard shape.count <= model.shapeCount else {
            throw OperatorError("tracking has \(shape.count) shape values but \(model.name) has \(model.shapeCount) shape directions")
        }
        guard expression.count <= model.expressionCount else {
            throw OperatorError("tracking has \(expression.count) expression values but \(model.name) has \(model.expressionCount) expression directions")
        }
        guard pose.isEmpty || pose.count == 3 * model.jointCount else {
            throw OperatorError("tracking 'pose' has \(pose.count / 3) joints but \(model.name) has \(model.jointCount)")
        }
        guard jaw == .zero || model.jawJoint != nil else {
            throw OperatorError("tracking sets 'jaw' but \(model.name) has no jaw joint")
        }
        return ModelPose(shape: shape, expression: expression, jointRotations: pose, rotation: rotation,
                         translation: translation, jaw: jaw)
    }
}
