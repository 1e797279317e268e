import Foundation
import PGFlow
import PGKernels
import PGTensor

/// The Tracker's fit mode: detected landmarks in, the same tracking sequence import mode makes out.
extension Tracker {
    /// The `landmarks` input: [T, L, 3] per frame (x, y, confidence), confidence 0 where no face
    /// was found (what Collect makes of FaceLandmarks.points).
    static func detections(_ inputs: Inputs) throws -> Tensor {
        guard let t = inputs["landmarks"]?.tensor else {
            throw OperatorError("mode \"fit\" needs input 'landmarks': connect the detections of the whole clip, "
                                + "e.g. FaceLandmarks.points collected by a Collect node ([T, 68, 3])")
        }
        guard t.rank == 3, t.shape[2] == 3, t.shape[0] >= 1 else {
            throw OperatorError("input 'landmarks' should be [T, L, 3] (x, y, confidence per landmark and frame), got \(t.shape)")
        }
        return t
    }

    /// Fits the model to the detections and builds the tracked sequence.
    func fitted(_ inputs: Inputs, context: RunContext) throws -> Loaded {
        let started = Date()
        let detections = try Self.detections(inputs)
        let n = detections.shape[0], l = detections.shape[1]
        let modelName = settings.model.hasPrefix("builtin:") ? settings.model : Params.resolve(settings.model, against: settings.baseDirectory).path
        guard !modelName.hasPrefix("builtin:") || modelName == HeadModel.name else {
            throw OperatorError("param 'model' names \"\(modelName)\"; the built-in model is \"\(HeadModel.name)\"")
        }
        let model = try Self.loadModel(modelName)
        guard model.landmarkCount == l else {
            throw OperatorError("the model \(model.name) embeds \(model.landmarkCount) landmarks but input 'landmarks' has \(l) per frame; "
                                + "FaceLandmarks maps every detector to the iBUG-68 layout the models embed")
        }
        // The image the detections were made in: params width/height, else the video's meta.
        let meta = inputs["meta"]?.record
        guard let width = settings.width ?? meta?["width"]?.number.map(Int.init),
              let height = settings.height ?? meta?["height"]?.number.map(Int.init) else {
            throw OperatorError("mode \"fit\" needs the image size the landmarks were detected in: connect input 'meta' (VideoSource.meta) or set params width and height")
        }
        if let count = meta?["frame_count"]?.number, Int(count) != n {
            throw OperatorError("input 'landmarks' has \(n) frames but the video (input 'meta') has \(Int(count))")
        }

        var observations: [LandmarkFit.Observation] = []
        detections.withUnsafeBufferPointer { d in
            for t in 0..<n {
                var points: [SIMD2<Double>] = [], confidence = 1.0
                for k in 0..<l {
                    let o = (t * l + k) * 3
                    points.append(SIMD2(Double(d[o]), Double(d[o + 1])))
                    confidence = min(confidence, Double(d[o + 2]))
                }
                let finite = points.allSatisfy { $0.x.isFinite && $0.y.isFinite }
                observations.append(.init(points: points, confidence: finite && confidence.isFinite ? max(0, confidence) : 0))
            }
        }
        let missing = observations.indices.filter { observations[$0].confidence == 0 }
        if missing.count == n {
            throw OperatorError("no face was detected in any of the \(n) frames, so there is nothing to fit the model to; "
                                + "check the clip (FaceLandmarks.confidence is 0 for every frame)")
        }
        if !missing.isEmpty {
            context.warn("no face in \(missing.count) of \(n) frames (\(Self.ranges(missing))): their tracking is interpolated from the neighbours and flagged (tracking.detected = 0)")
        }

        var fitSettings = settings.fitting
        fitSettings.threads = context.threads
        let fitter = LandmarkFit(fit: FaceFit(model: model), settings: fitSettings)
        let result: LandmarkFit.Result
        do {
            result = try fitter.run(observations, width: width, height: height) { what, done, total in
                context.progress(done, of: total)
                _ = what
            }
        } catch LandmarkFit.FitError.noFace {
            throw OperatorError("no face was detected in any of the \(n) frames")
        }

        // The tracked sequence, as import mode would have read it from a file.
        let frames = Self.trackedFrames(result, model: model, width: width, height: height, observations: observations)
        let cam = result.camera
        let errors = result.errors.compactMap { $0 }
        let seconds = Date().timeIntervalSince(started)
        let report: Value = .record([
            "mode": .string("fit"),
            "frames": .number(Double(n)),
            "detected": .number(Double(n - missing.count)),
            "interpolated": .list(missing.map { .number(Double($0)) }),
            "mean_error_px": .number(errors.reduce(0, +) / Double(max(1, errors.count))),
            "max_error_px": .number(errors.max() ?? 0),
            "per_frame_error_px": .list(result.errors.map { $0.map { .number($0) } ?? .number(-1) }),
            "focal_px": .number(cam.focal),
            "iterations": .number(Double(result.iterations)),
            "seconds": .number(seconds),
        ])
        context.progress(n, of: n)
        return Loaded(sequence: TrackingSequence(source: "the landmark fit", format: .pgflow, frames: frames),
                      model: model, headVertices: Self.headVertices(model), report: report,
                      headFaces: Self.headFaces(model))
    }

    /// A fit's result as tracked frames (what import mode reads from a file): the head's rotation
    /// shared out over the head joints, the fixed camera, the observed landmarks where a face was.
    public static func trackedFrames(_ result: LandmarkFit.Result, model: ParametricModel, width: Int, height: Int,
                                     observations: [LandmarkFit.Observation]) -> [TrackedFrame] {
        let cam = result.camera
        let camera = PinholeCamera(fx: cam.focal, fy: cam.focal, cx: cam.cx, cy: cam.cy, width: width, height: height,
                                   worldToCamera: cam.worldToCamera.map(Float.init))
        let headJoints = FaceFit.headJoints(of: model)
        return result.poses.indices.map { t in
            let p = result.poses[t]
            var pose = [Float](repeating: 0, count: 3 * model.jointCount)
            for (j, s) in headJoints { for k in 0..<3 { pose[3 * j + k] = Float(s * p.rotation[k]) } }
            let tracking = Tracking(model: model.name, shape: result.shape.map(Float.init), expression: p.expression.map(Float.init),
                                    pose: pose, rotation: .zero, translation: SIMD3<Float>(p.translation),
                                    jaw: model.jawJoint == nil ? .zero : SIMD3<Float>(p.jaw))
            let points = observations[t].points.flatMap { [Float($0.x), Float($0.y)] }
            return TrackedFrame(tracking: tracking, camera: camera, landmarks: result.detected[t] ? points : nil,
                                extras: ["detected": Tensor(shape: [1], scalars: [result.detected[t] ? 1 : 0])])
        }
    }

    /// "3, 7–9, 12" for frame lists in messages.
    static func ranges(_ frames: [Int]) -> String {
        var parts: [String] = []
        var i = 0
        while i < frames.count {
            var j = i
            while j + 1 < frames.count && frames[j + 1] == frames[j] + 1 { j += 1 }
            parts.append(i == j ? "\(frames[i])" : "\(frames[i])–\(frames[j])")
            i = j + 1
        }
        return parts.count > 8 ? parts.prefix(8).joined(separator: ", ") + ", …" : parts.joined(separator: ", ")
    }
}
