import Foundation
import PGFlow
import PGKernels
import PGMedia
import PGTensor
import Synchronization

/// The neural Gaussian texture (PortraitGen §3.2.1, Eq. 6–7): one Gaussian per covered texel of a
/// parametric model's UV layout, moved every frame by the model's skinning, carrying a learned
/// offset, log-scale, rotation, opacity logit and a C-channel feature.
///
/// Modes:
/// - surface (default): `tracking` drives SMPL-X, FLAME or `builtin:head` (see `SurfaceGaussians`);
/// - isotropic: one log-scale per Gaussian, no offset or rotation (the learnable Gaussian
///   embedding's control-signal maps);
/// - static cloud: `cloud` (a Gaussians record, e.g. an imported 3DGS `.ply`) is the starting point
///   and `tracking` is not needed; positions are the cloud's plus the learned offset.
///
/// Besides `gaussians` it outputs the field's regularisers as differentiable scalars, so a Loss node
/// can weight them without knowing the UV grid.
public struct GaussianField: Trainable {
    public static let type = "GaussianField"
    public static let version = 2   // 2: reg_opacity with one exp and log1p per Gaussian (other last bits)

    struct Settings: Sendable {
        var model: String
        var modelURL: URL?
        var resolution: Int
        var channels: Int
        var region: String
        var isotropic: Bool
        var displacement: Bool
        var poseCorrectives: Bool
        var initialOpacity: Double
        var featureNoise: Double
        var scaleBound: Float
        var seed: UInt64
        var shapeCount: Int?
        /// Static-cloud mode from a 3DGS `.ply` instead of the `cloud` input.
        var ply: URL?
        /// A PNG whose RGB initialises features 0–2.
        var textureFile: URL?
    }

    /// The model and its UV embedding, built on first use and kept for the node's lifetime.
    struct Surface: Sendable {
        var model: ParametricModel
        var embedding: UVEmbedding
    }

    let settings: Settings
    private let surfaceCache = Cache<Surface>()
    private let plyCache = Cache<GaussianRecord>()

    public init(params: Params) throws {
        let model = try params.string("model")
        var url: URL?
        if model != HeadModel.name {
            guard !model.hasPrefix("builtin:") else {
                throw OperatorError("param 'model' names \"\(model)\"; the built-in model is \"\(HeadModel.name)\"")
            }
            url = Params.resolve(model, against: params.baseDirectory)
        }
        settings = Settings(
            model: model, modelURL: url, resolution: try params.int("uv"), channels: try params.int("features"),
            region: try params.string("region"), isotropic: try params.bool("isotropic"),
            displacement: try params.bool("displacement"), poseCorrectives: try params.bool("pose_correctives"),
            initialOpacity: try params.double("init_opacity"), featureNoise: try params.double("feature_noise"),
            scaleBound: Float(try params.double("scale_bound")), seed: UInt64(truncatingIfNeeded: try params.int("seed")),
            shapeCount: params.has("shape_count") ? try params.int("shape_count") : nil,
            ply: params.has("ply") ? try params.url("ply") : nil,
            textureFile: params.has("texture_file") ? try params.url("texture_file") : nil)
    }

    // MARK: - Setup

    func surface() throws -> Surface {
        try surfaceCache.get { try GaussianField.makeSurface(settings) }
    }

    /// The static cloud: the `cloud` input, or the `ply` param's file; nil in surface mode.
    func cloud(_ inputs: Inputs) throws -> GaussianRecord? {
        if let url = settings.ply {
            guard inputs["cloud"] == nil else { throw OperatorError("give the static cloud either as param 'ply' or as input 'cloud', not both") }
            return try plyCache.get {
                let ply: GaussianPLY
                do { ply = try GaussianPLY.read(url) } catch { throw OperatorError("\(error)") }
                return try GaussianRecord(.record(try GaussianCloud.record(ply, features: .auto, path: url.path)), what: "'\(url.path)'")
            }
        }
        return try inputs["cloud"].map { try GaussianRecord($0, what: "cloud") }
    }

    static func makeSurface(_ s: Settings) throws -> Surface {
        let model: ParametricModel
        if let url = s.modelURL {
            do { model = try ParametricModel(npz: url, shapeCount: s.shapeCount) } catch let e as ModelFileError {
                throw OperatorError(e.description)
            } catch {
                throw OperatorError("The model file \(url.path) cannot be used: \(error)")
            }
        } else {
            model = HeadModel.model
        }
        guard model.hasUVLayout else {
            throw OperatorError("the model \(model.name) has no UV layout ('vt' and 'ft'); FLAME needs its texture space merged in (Scripts/convert-model.py --uv)")
        }
        let allowed: Set<Int32>
        switch s.region {
        case "head": allowed = [ParametricModel.Region.head.rawValue, ParametricModel.Region.mouth.rawValue]
        case "head_neck": allowed = [ParametricModel.Region.head.rawValue, ParametricModel.Region.mouth.rawValue,
                                     ParametricModel.Region.neck.rawValue]
        default: allowed = Set(ParametricModel.Region.allCases.map(\.rawValue))
        }
        // Faces in the region (two of three corners) with real surface area: a UV texel on a
        // collapsed face (the built-in head's closed mouth corners) would be a wasted Gaussian.
        let t = model.template
        var areas = [Double](repeating: 0, count: model.faceCount)
        for f in 0..<model.faceCount {
            let (a, b, c) = model.face(f)
            let pa = SIMD3(Double(t[3 * a]), Double(t[3 * a + 1]), Double(t[3 * a + 2]))
            let e1 = SIMD3(Double(t[3 * b]), Double(t[3 * b + 1]), Double(t[3 * b + 2])) - pa
            let e2 = SIMD3(Double(t[3 * c]), Double(t[3 * c + 1]), Double(t[3 * c + 2])) - pa
            let n = SIMD3(e1.y * e2.z - e1.z * e2.y, e1.z * e2.x - e1.x * e2.z, e1.x * e2.y - e1.y * e2.x)
            areas[f] = 0.5 * (n * n).sum().squareRoot()
        }
        let meanArea = areas.reduce(0, +) / Double(max(1, areas.count))
        var include = [Bool](repeating: false, count: model.faceCount)
        for f in 0..<model.faceCount {
            let (a, b, c) = model.face(f)
            let inRegion = [a, b, c].filter { allowed.contains(model.vertexRegions[$0]) }.count >= 2
            include[f] = inRegion && areas[f] > 1e-6 * meanArea
        }
        let embedding = UVEmbedding.rasterize(uvs: model.uvs, uvFaces: model.uvFaces, resolution: s.resolution, include: include)
        guard embedding.count > 0 else {
            throw OperatorError("the UV layout of \(model.name) covers no texel at uv \(s.resolution) in region \"\(s.region)\"")
        }
        return Surface(model: model, embedding: embedding)
    }

    // MARK: - Parameters

    public func initialParameters(_ inputs: Inputs, context: RunContext) throws -> [String: Tensor] {
        let c = settings.channels
        if let cloud = try cloud(inputs) { return cloudParameters(cloud) }
        let s = try surface()
        let n = s.embedding.count
        let points = s.embedding.points(on: s.model.template, faces: s.model.faces)
        // 3DGS's initial scale: √(mean squared distance to the 3 nearest neighbours), clamped as
        // distCUDA2's 1e-7 floor on the squared distance.
        let d2 = NearestNeighbours.meanSquaredDistance(points, k: 3, threads: context.threads)
        let logScale = d2.map { 0.5 * log(max($0, 1e-7)) }
        var features = [Float](repeating: 0, count: n * c)
        if settings.featureNoise > 0 {
            // The stream a seed gave before the draws were shared: SplitMix64 started one step on.
            var rng = NormalDraws(seed: settings.seed &+ 0x9E37_79B9_7F4A_7C15)
            for i in 0..<features.count { features[i] = Float(settings.featureNoise * rng.next()) }
        }
        var texture = inputs["texture"]
        if let url = settings.textureFile {
            guard texture == nil else { throw OperatorError("give the texture either as param 'texture_file' or as input 'texture', not both") }
            do { texture = .tensor(try PNGImage.read(url).pixels) } catch { throw OperatorError("\(error)") }
        }
        if let texture {
            guard let img = texture.tensor, img.rank == 3, img.shape[1] > 0, img.shape[2] > 0 else {
                throw OperatorError("input 'texture' should be an Image [C, H, W], got \(texture.summary)")
            }
            let tc = img.shape[0]
            let sampled = s.embedding.sample(image: img.scalars, channels: tc, height: img.shape[1], width: img.shape[2])
            for g in 0..<n { for k in 0..<min(3, tc, c) { features[g * c + k] = sampled[g * tc + k] } }
        }
        let logit = Float(log(settings.initialOpacity / (1 - settings.initialOpacity)))
        var out: [String: Tensor] = [
            "log_scale": settings.isotropic ? Tensor(shape: [n, 1], scalars: logScale)
                : Tensor(shape: [n, 3], scalars: logScale.flatMap { [$0, $0, $0] }),
            "opacity": Tensor(repeating: logit, shape: [n]),
            "features": Tensor(shape: [n, c], scalars: features),
        ]
        if !settings.isotropic {
            out["offset"] = Tensor(zeros: [n, 3])
            out["rotation"] = Tensor(shape: [n, 4], scalars: (0..<n).flatMap { _ in [Float(1), 0, 0, 0] })
            if settings.displacement { out["displacement"] = Tensor(zeros: [s.model.vertexCount, 3]) }
        }
        return out
    }

    func cloudParameters(_ g: GaussianRecord) -> [String: Tensor] {
        let n = g.count, c = settings.channels
        var features = g.features   // shared with the cloud when the widths agree (a 100k × 32 cloud: 13 MB not copied)
        if g.channels != c {
            features = [Float](repeating: 0, count: n * c)
            for i in 0..<n { for k in 0..<min(c, g.channels) { features[i * c + k] = g.features[i * g.channels + k] } }
        }
        var out: [String: Tensor] = [
            "opacity": Tensor(shape: [n], scalars: g.opacityLogits),
            "features": Tensor(shape: [n, c], scalars: features),
        ]
        let axes = g.logScales.count / max(1, n)
        if settings.isotropic {
            // One scale per Gaussian: the geometric mean of the cloud's three.
            out["log_scale"] = Tensor(shape: [n, 1], scalars: (0..<n).map { i in
                (0..<axes).reduce(Float(0)) { $0 + g.logScales[i * axes + $1] } / Float(axes)
            })
        } else {
            out["log_scale"] = Tensor(shape: [n, 3], scalars: axes == 3 ? g.logScales : g.logScales.flatMap { [$0, $0, $0] })
            out["offset"] = Tensor(zeros: [n, 3])
            out["rotation"] = Tensor(shape: [n, 4], scalars: g.quats.isEmpty ? (0..<n).flatMap { _ in [Float(1), 0, 0, 0] } : g.quats)
        }
        return out
    }

    // MARK: - Forward

    enum Tape {
        case surface(SurfaceGaussiansTape)
        case cloud
    }

    public func forward(_ inputs: Inputs, frame: Int?, context: RunContext) throws -> (outputs: [String: Value], saved: Saved) {
        let logScale = try inputs.parameter("log_scale")
        let opacity = try inputs.parameter("opacity")
        let features = try inputs.parameter("features")
        let n = opacity.count
        let offset = settings.isotropic ? nil : try inputs.parameter("offset")
        let rotation = settings.isotropic ? nil : try inputs.parameter("rotation")
        for (name, t, width) in [("log_scale", logScale, settings.isotropic ? 1 : 3), ("features", features, features.count / max(n, 1))]
            where t.count != n * width {
            throw OperatorError("parameter group '\(name)' has shape \(t.shape) for \(n) Gaussians")
        }

        var means: [Float], quats: [Float]
        let tape: Tape
        let cloud = try cloud(inputs)
        if let g = cloud {
            guard g.count == n else { throw OperatorError("the cloud has \(g.count) Gaussians but the parameters \(n)") }
            means = g.means
            if let offset { for i in 0..<means.count { means[i] += offset.scalars[i] } }
            quats = rotation?.scalars ?? (0..<n).flatMap { _ in [Float(1), 0, 0, 0] }
            tape = .cloud
        } else {
            let s = try surface()
            guard s.embedding.count == n else {
                throw OperatorError("the parameters hold \(n) Gaussians but the UV embedding has \(s.embedding.count); were they trained with another 'uv' or 'region'?")
            }
            guard let trackingValue = inputs["tracking"] else {
                throw OperatorError("input 'tracking' is not connected (it is needed unless 'cloud' is)")
            }
            let pose = try Tracking(value: trackingValue).pose(for: s.model)
            let displacement = settings.isotropic || !settings.displacement ? nil : try inputs.parameter("displacement").scalars
            let mesh = s.model.skin(pose, displacement: displacement, poseCorrectives: settings.poseCorrectives, threads: context.threads)
            let r = SurfaceGaussians.deform(embedding: s.embedding, faces: s.model.faces, mesh: mesh, offsets: offset?.scalars,
                                            baseQuats: rotation?.scalars, threads: context.threads)
            means = r.means
            quats = settings.isotropic ? (0..<n).flatMap { _ in [Float(1), 0, 0, 0] } : r.quats
            tape = .surface(r.tape)
        }

        let gaussians: Value = .record([
            "means": .tensor(Tensor(shape: [n, 3], scalars: means)),
            "log_scales": .tensor(logScale),
            "quats": .tensor(Tensor(shape: [n, 4], scalars: quats)),
            "opacity_logits": .tensor(opacity.reshaped([n])),
            "features": .tensor(features),
        ])
        let edges = cloud == nil ? try surface().embedding.edges : []
        var smooth = FieldRegularisers.laplacian(logScale.scalars, channels: logScale.count / max(n, 1), edges: edges)
        smooth += FieldRegularisers.laplacian(opacity.scalars, channels: 1, edges: edges)
        smooth += FieldRegularisers.laplacian(features.scalars, channels: features.count / max(n, 1), edges: edges)
        if let offset { smooth += FieldRegularisers.laplacian(offset.scalars, channels: 3, edges: edges) }
        func scalar(_ d: Double) -> Value { .tensor(Tensor(scalar: Float(d))) }
        let outputs: [String: Value] = [
            "gaussians": gaussians,
            "reg_laplacian": scalar(smooth),
            "reg_offset": scalar(offset.map { FieldRegularisers.offsetNorm($0.scalars) } ?? 0),
            "reg_scale": scalar(FieldRegularisers.scaleHinge(logScale.scalars, bound: settings.scaleBound)),
            "reg_opacity": scalar(FieldRegularisers.opacitySparsity(opacity.scalars)),
        ]
        return (outputs, Saved(tape))
    }

    // MARK: - Backward

    public func vjp(_ cotangents: [String: Value], saved: Saved, inputs: Inputs, frame: Int?, context: RunContext) throws -> Gradients {
        let tape: Tape = try saved.get()
        let logScale = try inputs.parameter("log_scale")
        let opacity = try inputs.parameter("opacity")
        let features = try inputs.parameter("features")
        let n = opacity.count
        let offset = settings.isotropic ? nil : try inputs.parameter("offset")
        let rotation = settings.isotropic ? nil : try inputs.parameter("rotation")

        // A group's first contribution is taken as it is and later ones are added in place:
        // no zero-filled buffers, no copy of a group per contribution.
        var groups = ["log_scale", "opacity", "features"]
        if offset != nil { groups.append("offset") }
        if rotation != nil { groups.append("rotation") }
        var grads: [String: [Float]] = [:]
        func add(_ name: String, _ g: [Float]) {
            guard !g.isEmpty, groups.contains(name) else { return }
            guard grads[name] != nil else { grads[name] = g; return }
            grads[name]!.withUnsafeMutableBufferPointer { c in
                g.withUnsafeBufferPointer { g in
                    precondition(g.count == c.count, "gradient of \(name): \(g.count) values for \(c.count)")
                    for i in 0..<g.count { c[i] += g[i] }
                }
            }
        }
        func cotangent(_ record: [String: Value], _ key: String, count: Int) throws -> [Float]? {
            guard let v = record[key] else { return nil }
            guard let t = v.tensor, t.count == count else {
                throw OperatorError("the cotangent of gaussians.\(key) should have \(count) values, got \(v.summary)")
            }
            return t.scalars
        }

        if let record = cotangents["gaussians"]?.record {
            if let v = try cotangent(record, "log_scales", count: logScale.count) { add("log_scale", v) }
            if let v = try cotangent(record, "opacity_logits", count: n) { add("opacity", v) }
            if let v = try cotangent(record, "features", count: features.count) { add("features", v) }
            let vMeans = try cotangent(record, "means", count: 3 * n)
            let vQuats = settings.isotropic ? nil : try cotangent(record, "quats", count: 4 * n)
            switch tape {
            case .cloud:
                if let vMeans { add("offset", vMeans) }
                if let vQuats { add("rotation", vQuats) }
            case .surface(let t):
                if vMeans != nil || vQuats != nil {
                    let s = try surface()
                    let r = SurfaceGaussians.deformVJP(t, embedding: s.embedding, faces: s.model.faces, vertexCount: s.model.vertexCount,
                                                       vMeans: vMeans ?? [Float](repeating: 0, count: 3 * n), vQuats: vQuats,
                                                       threads: context.threads)
                    if vMeans != nil {
                        add("offset", r.vOffsets)
                        if !settings.isotropic && settings.displacement { grads["displacement"] = r.vDisplacement }
                    }
                    if vQuats != nil { add("rotation", r.vBaseQuats) }
                }
            }
        }

        let edges: [Int32]
        if case .surface = tape { edges = try surface().embedding.edges } else { edges = [] }
        if let c = cotangents["reg_laplacian"]?.number, c != 0 {
            let w = Float(c)
            add("log_scale", FieldRegularisers.laplacianVJP(logScale.scalars, channels: logScale.count / max(n, 1), edges: edges, vLoss: w))
            add("opacity", FieldRegularisers.laplacianVJP(opacity.scalars, channels: 1, edges: edges, vLoss: w))
            add("features", FieldRegularisers.laplacianVJP(features.scalars, channels: features.count / max(n, 1), edges: edges, vLoss: w))
            if let offset { add("offset", FieldRegularisers.laplacianVJP(offset.scalars, channels: 3, edges: edges, vLoss: w)) }
        }
        if let c = cotangents["reg_offset"]?.number, c != 0, let offset {
            add("offset", FieldRegularisers.offsetNormVJP(offset.scalars, vLoss: Float(c)))
        }
        if let c = cotangents["reg_scale"]?.number, c != 0 {
            add("log_scale", FieldRegularisers.scaleHingeVJP(logScale.scalars, bound: settings.scaleBound, vLoss: Float(c)))
        }
        if let c = cotangents["reg_opacity"]?.number, c != 0 {
            add("opacity", FieldRegularisers.opacitySparsityVJP(opacity.scalars, vLoss: Float(c)))
        }

        var out: [String: Tensor] = [:]
        for name in groups {
            let shape = try inputs.parameter(name).shape
            out[name] = grads[name].map { Tensor(shape: shape, scalars: $0) } ?? Tensor(zeros: shape)
        }
        if let d = grads["displacement"] { out["displacement"] = Tensor(shape: try inputs.parameter("displacement").shape, scalars: d) }
        if out["displacement"] == nil, let d = inputs.parameters["displacement"] { out["displacement"] = Tensor(zeros: d.shape) }
        return Gradients(parameters: out)
    }
}


/// Builds a value once and hands out the same one afterwards, failures included.
final class Cache<Element: Sendable>: Sendable {
    private let state = Mutex<Result<Element, OperatorError>?>(nil)

    func get(_ make: () throws -> Element) throws -> Element {
        try state.withLock { cached in
            if let cached { return try cached.get() }
            let result: Result<Element, OperatorError>
            do { result = .success(try make()) } catch let e as OperatorError { result = .failure(e) } catch {
                result = .failure(OperatorError("\(error)"))
            }
            cached = result
            return try result.get()
        }
    }
}
