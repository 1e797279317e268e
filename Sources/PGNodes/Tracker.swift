import Foundation
import PGFlow
import PGKernels
import PGTensor

/// PortraitGen's tracking step (§3.1.2) as a frame source. Mode `import` reads tracking made
/// elsewhere — pgflow's own JSON/NPZ format, PortraitGen's SMPL-X track, metrical-tracker's
/// per-frame FLAME checkpoints; mode `fit` fits the model to detected landmarks itself
/// (`Tracker+Fit.swift`, `LandmarkFit`). Either way each frame becomes a `Tracking` record, an
/// OpenCV `Camera`, the posed mesh, its silhouette and a square head box. See `Nodes/Tracker.json`
/// for the user-facing description.
///
/// The file (or the fit) is made once per node instance and kept; the engine caches each frame's
/// outputs keyed by the file's content or the detections.
public struct Tracker: FrameSource {
    public static let type = "Tracker"
    /// 3: the fit ties translation between frames 100× harder (55ba74a changed the fit's output
    /// without bumping this, so caches made before it served the old tracking).
    public static let version = 3

    struct Settings: Sendable {
        var fit: Bool
        /// The tracking file (import mode).
        var url: URL?
        /// nil: detect from the extension and keys.
        var format: TrackingFormat?
        var model: String
        var baseDirectory: URL
        var frames: Int?
        var width: Int?
        var height: Int?
        var headScale: Double
        /// head_mask's margin as a fraction of the image's longer side.
        var headMaskMargin: Double
        var fitting: LandmarkFit.Settings
    }

    /// The imported clip and the model that poses it (nil when no model file is available).
    struct Loaded: Sendable {
        var sequence: TrackingSequence
        var model: ParametricModel?
        /// Head and mouth vertices of `model`, whose projections bound the head box.
        var headVertices: [Int]
        /// Fit mode: what the fit reports (the static output `fit`).
        var report: Value?

        /// Faces of the head, mouth and neck (every corner in those regions): head_mask's mesh,
        /// worked out once per clip.
        var headFaces: [Int32] = []
    }

    let settings: Settings
    private let loaded = Cache<Loaded>()

    public init(params: Params) throws {
        let mode = try params.string("mode")
        guard mode == "import" || mode == "fit" else { throw OperatorError("param 'mode' should be \"import\" or \"fit\", got \"\(mode)\"") }
        guard mode == "fit" || params.has("path") else {
            throw OperatorError("param 'path' is required in import mode: name the tracking file to import (or set mode to \"fit\")")
        }
        let formatName = try params.string("format")
        var format: TrackingFormat?
        if formatName != "auto" {
            guard let f = TrackingFormat(rawValue: formatName) else {
                throw OperatorError("param 'format' should be auto, \(TrackingFormat.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(formatName)\"")
            }
            format = f
        }
        let headScale = try params.double("head_scale")
        guard headScale.isFinite, headScale > 0 else { throw OperatorError("param 'head_scale' should be a positive number, got \(headScale)") }
        var fitting = LandmarkFit.Settings()
        fitting.globalIterations = try params.int("iterations")
        fitting.smoothness = try params.double("smoothness")
        fitting.focal = params.has("focal") ? try params.double("focal") : nil
        settings = Settings(fit: mode == "fit", url: params.has("path") ? try params.url("path") : nil, format: format,
                            model: try params.string("model"),
                            baseDirectory: params.baseDirectory,
                            frames: params.has("frames") ? try params.int("frames") : nil,
                            width: params.has("width") ? try params.int("width") : nil,
                            height: params.has("height") ? try params.int("height") : nil,
                            headScale: headScale, headMaskMargin: try params.double("head_mask_margin"), fitting: fitting)
        for (name, v) in [("frames", settings.frames), ("width", settings.width), ("height", settings.height)] {
            if let v, v < 1 { throw OperatorError("param '\(name)' should be at least 1, got \(v)") }
        }
    }

    // MARK: loading

    func load(_ inputs: Inputs, context: RunContext) throws -> Loaded {
        try loaded.get { settings.fit ? try fitted(inputs, context: context) : try Self.load(settings) }
    }

    static func load(_ s: Settings) throws -> Loaded {
        guard let url = s.url else { throw OperatorError("param 'path' is required in import mode") }
        let format = try s.format ?? TrackingImport.detect(url)
        let param = s.model
        guard !param.hasPrefix("builtin:") || param == HeadModel.name else {
            throw OperatorError("param 'model' names \"\(param)\"; the built-in model is \"\(HeadModel.name)\"")
        }
        let paramFile = param.hasPrefix("builtin:") ? nil : Params.resolve(param, against: s.baseDirectory).path
        var sequence: TrackingSequence
        var modelName: String?
        switch format {
        case .pgflow:
            sequence = try TrackingImport.read(url, format: .pgflow, model: paramFile ?? param)
            modelName = sequence.frames[0].tracking.model
        case .portraitgen, .metrical:
            // builtin:head has neither SMPL-X's nor FLAME's joints: without a model file the clip
            // still imports (tracking and camera) but there is no mesh to rasterise.
            sequence = try TrackingImport.read(url, format: format, model: paramFile ?? (format == .portraitgen ? "smplx" : "flame"))
            modelName = paramFile
        }
        guard !sequence.frames.isEmpty else { throw OperatorError("Cannot import the tracking file '\(url.path)': it has no frames") }

        var model: ParametricModel?
        if let name = modelName {
            guard name == HeadModel.name || !name.hasPrefix("builtin:") else {
                throw OperatorError("'\(sequence.source)' names the model \"\(name)\"; the built-in model is \"\(HeadModel.name)\"")
            }
            model = try loadModel(name)
        }
        if let model {
            let expected = format == .portraitgen ? TrackingImport.smplxJointCount : format == .metrical ? TrackingImport.flameJointCount : nil
            if let expected, model.jointCount != expected {
                throw OperatorError("The model file \(model.name) has \(model.jointCount) joints, but \(format == .portraitgen ? "PortraitGen's SMPL-X" : "metrical-tracker's FLAME") tracking in '\(sequence.source)' poses \(expected)")
            }
            for (t, f) in sequence.frames.enumerated() {
                do { _ = try f.tracking.pose(for: model) } catch let e as OperatorError {
                    throw OperatorError("Cannot pose the model \(model.name) with frame \(t) of '\(sequence.source)': \(e.message)")
                }
            }
        }
        return Loaded(sequence: sequence, model: model, headVertices: model.map(headVertices) ?? [], headFaces: model.map(headFaces) ?? [])
    }

    /// builtin:head or a model NPZ (an absolute path).
    static func loadModel(_ name: String) throws -> ParametricModel {
        if name == HeadModel.name { return HeadModel.model }
        do { return try ParametricModel(npz: URL(fileURLWithPath: name)) } catch let e as ModelFileError {
            throw OperatorError(e.description)
        } catch {
            throw OperatorError("The model file \(name) cannot be used: \(error)")
        }
    }

    /// Faces of the head, mouth and neck (every corner in those regions).
    static func headFaces(_ m: ParametricModel) -> [Int32] {
        let keep: Set<Int32> = [ParametricModel.Region.head.rawValue, ParametricModel.Region.mouth.rawValue, ParametricModel.Region.neck.rawValue]
        var out: [Int32] = []
        for f in 0..<m.faceCount {
            let (a, b, c) = m.face(f)
            if keep.contains(m.vertexRegions[a]) && keep.contains(m.vertexRegions[b]) && keep.contains(m.vertexRegions[c]) {
                out += [Int32(a), Int32(b), Int32(c)]
            }
        }
        return out
    }

    /// Head and mouth vertices, whose projections bound the head box.
    static func headVertices(_ m: ParametricModel) -> [Int] {
        let head: Set<Int32> = [ParametricModel.Region.head.rawValue, ParametricModel.Region.mouth.rawValue]
        return (0..<m.vertexCount).filter { head.contains(m.vertexRegions[$0]) }
    }

    // MARK: FrameSource

    public func frameCount(_ inputs: Inputs, context: RunContext) throws -> Int {
        if settings.fit { return try Self.detections(inputs).shape[0] }
        let l = try load(inputs, context: context)
        let n = l.sequence.frames.count
        let source = l.sequence.source
        if let expected = settings.frames, expected != n {
            throw OperatorError("'\(source)' has \(n) tracked frame\(n == 1 ? "" : "s") but param 'frames' expects \(expected)")
        }
        if let meta = inputs["meta"]?.record, let count = meta["frame_count"]?.number, Int(count) != n {
            let video = meta["path"]?.string.map { "the video '\($0)'" } ?? "the video"
            throw OperatorError("'\(source)' has \(n) tracked frame\(n == 1 ? "" : "s") but \(video) gives \(Int(count)) (input 'meta')")
        }
        if l.model == nil {
            context.warn("no \(l.sequence.format == .portraitgen ? "SMPL-X" : "FLAME") model file in param 'model', so tracking and camera are imported "
                         + "but mesh is empty, mask is all 0 and head_box is [0, 0, 0, 0]")
        }
        return n
    }

    public func evaluate(_ inputs: Inputs, frame: Int?, context: RunContext) throws -> [String: Value] {
        let l = try load(inputs, context: context)
        if frame == nil { return ["fit": l.report ?? .record(["mode": .string("import")])] }
        let n = l.sequence.frames.count
        guard let t = frame, t >= 0, t < n else {
            throw OperatorError("Tracker has frames 0…\(n - 1) of '\(l.sequence.source)', not \(frame.map(String.init) ?? "a static evaluation")")
        }
        let f = l.sequence.frames[t]
        let camera = try outputCamera(f.camera, meta: inputs["meta"]?.record, source: l.sequence.source)
        let sx = Double(camera.width) / Double(f.camera.width), sy = Double(camera.height) / Double(f.camera.height)
        var points: [SIMD2<Double>] = []
        if let lm = f.landmarks {
            for k in stride(from: 0, to: lm.count - 1, by: 2) { points.append(SIMD2(Double(lm[k]) * sx, Double(lm[k + 1]) * sy)) }
        }
        var out: [String: Value] = ["tracking": f.trackingValue, "camera": camera.value]
        if let model = l.model {
            let pose = try f.tracking.pose(for: model)
            let vertices = model.skin(pose, threads: context.threads).posedVertices()
            out["mesh"] = .record(["vertices": .tensor(Tensor(shape: [model.vertexCount, 3], scalars: vertices)),
                                   "faces": .tensor(Tensor(shape: [model.faceCount, 3], scalars: model.faces.map(Float.init)))])
            out["mask"] = .tensor(Silhouette.mask(vertices: vertices, faces: model.faces, camera: camera))
            let headFaces = l.headFaces
            let radius = Int((settings.headMaskMargin * Double(max(camera.width, camera.height))).rounded())
            out["head_mask"] = .tensor(Silhouette.dilated(Silhouette.mask(vertices: vertices, faces: headFaces, camera: camera), radius: radius))
            func vertex(_ i: Int) -> SIMD3<Double> { SIMD3(Double(vertices[3 * i]), Double(vertices[3 * i + 1]), Double(vertices[3 * i + 2])) }
            var head = l.headVertices.map(vertex)
            for k in 0..<model.landmarkCount {
                let (a, b, c) = model.face(Int(model.landmarkFaces[k]))
                let w = model.landmarkBarycentrics[(3 * k)..<(3 * k + 3)].map(Double.init)
                head.append(w[0] * vertex(a) + w[1] * vertex(b) + w[2] * vertex(c))
            }
            for p in head {
                let q = camera.project(p)
                if q.z > 0 { points.append(SIMD2(q.x, q.y)) }
            }
        } else {
            out["mesh"] = .record(["vertices": .tensor(Tensor(zeros: [0, 3])), "faces": .tensor(Tensor(zeros: [0, 3]))])
            out["mask"] = .tensor(Tensor(zeros: [1, camera.height, camera.width]))
            out["head_mask"] = out["mask"]
        }
        out["head_box"] = .tensor(Tensor(shape: [4], scalars: Self.headBox(points, scale: settings.headScale,
                                                                           width: camera.width, height: camera.height)))
        return out
    }

    // MARK: camera and box

    /// The frame's camera at the output size: params width/height (one alone keeps the aspect
    /// ratio), else the video's size from `meta`, else the file's.
    func outputCamera(_ c: PinholeCamera, meta: [String: Value]?, source: String) throws -> PinholeCamera {
        let cw = Double(c.width), ch = Double(c.height)
        var w = settings.width ?? settings.height.map { max(1, Int((Double($0) * cw / ch).rounded())) }
        var h = settings.height ?? settings.width.map { max(1, Int((Double($0) * ch / cw).rounded())) }
        if w == nil, let meta, let mw = meta["width"]?.number, let mh = meta["height"]?.number, mw >= 1, mh >= 1 {
            guard abs(mw / mh - cw / ch) <= 0.01 * cw / ch else {
                throw OperatorError("'\(source)' was tracked at \(c.width)×\(c.height) but the video (input 'meta') is \(Int(mw))×\(Int(mh)), "
                                    + "another aspect ratio; set params width and height to say how the camera maps onto it")
            }
            (w, h) = (Int(mw), Int(mh))
        }
        guard let w, let h, w != c.width || h != c.height else { return c }
        return c.resized(width: w, height: h)
    }

    /// A square [x0, y0, x1, y1] around `points`: centred on their bounds, `scale` times the larger
    /// side, moved (and if larger than the image, shrunk) to lie inside the image. All zeros when
    /// there are no points.
    static func headBox(_ points: [SIMD2<Double>], scale: Double, width: Int, height: Int) -> [Float] {
        guard let first = points.first else { return [0, 0, 0, 0] }
        var lo = first, hi = first
        for p in points { lo = pointwiseMin(lo, p); hi = pointwiseMax(hi, p) }
        let centre = 0.5 * (lo + hi)
        let size = min(scale * max(hi.x - lo.x, hi.y - lo.y, 1), Double(min(width, height)))
        let x0 = min(max(centre.x - size / 2, 0), Double(width) - size)
        let y0 = min(max(centre.y - size / 2, 0), Double(height) - size)
        return [Float(x0), Float(y0), Float(x0 + size), Float(y0 + size)]
    }
}
