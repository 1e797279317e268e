/// Splat: a differentiable tile rasterizer for 3D Gaussians carrying N-channel features
/// (PortraitGen §3.1.1 and §3.2.1; the semantics of 3DGS / gsplat's "classic" mode).
///
/// Forward (`SplatKernel.rasterize`):
/// 1. `project`: each Gaussian goes through the OpenCV pinhole camera with the EWA local affine
///    approximation, Σ₂ = J·W·Σ·Wᵀ·Jᵀ + 0.3·I (x/z and y/z clamped to the frustum plus 15 % of the
///    image for J only). It is culled when z ≤ near, when its 3σ circle misses the image, when the
///    dilated covariance is degenerate, or when its opacity is below 1/255 (it could never pass the
///    alpha threshold).
/// 2. Binning: visible Gaussians are sorted by camera z (stable radix sort, so ties keep the lower
///    index first) and scattered into 16×16 tiles by a counting sort, which leaves every tile's list
///    in depth order. A Gaussian is binned to the tiles its *alpha ≥ 1/255 ellipse* touches
///    (half-extents √(2·ln(255·o)·Σ₂ₓₓ), √(2·ln(255·o)·Σ₂ᵧᵧ)), so every pixel where it could pass the
///    alpha threshold sees it: the image does not depend on the tile size, and equals "every
///    surviving Gaussian at every pixel", which is what the reference and the oracle compute.
/// 3. Per pixel, front to back: σ = ½(a·dx² + c·dy²) + b·dx·dy with d = mean₂ − (x + ½, y + ½),
///    α = min(0.99, o·e^(−σ)); skip when σ < 0 or α < 1/255; stop (without blending) when
///    T·(1 − α) ≤ 1e-4; otherwise add f·α·T and T ← T·(1 − α).
///
/// Outputs, per pixel: `features[c] = Σₖ fₖ[c]·αₖ·Tₖ + T_final·background[c]` ([C, H, W]),
/// `alpha = 1 − T_final` ([H, W]) and `depth` ([H, W]): the accumulated depth D = Σₖ zₖ·αₖ·Tₖ
/// (camera z, no background term) or, in `.expected` mode (the default), D / alpha where alpha > 0
/// and 0 where nothing was hit — the mean camera depth of what the pixel shows.
///
/// Backward (`SplatKernel.rasterizeVJP`) follows gsplat: for each pixel it walks its tile list backwards
/// from the last Gaussian that contributed, recovering Tₖ = Tₖ₊₁ / (1 − αₖ) from the saved T_final,
/// so nothing per pixel is stored but T_final and that last index.
public enum SplatKernel {
    /// Pixels per tile side. The image does not depend on it (see above); it sets the work unit.
    public static let tileSize = 16
    /// EWA low-pass filter added to the diagonal of every projected covariance, in px².
    public static let dilation: Float = 0.3
    public static let alphaMax: Float = 0.99
    public static let alphaMin: Float = 1.0 / 255.0
    public static let transmittanceMin: Float = 1e-4
}

/// The camera the rasterizer sees: OpenCV pinhole, pixels centred at (x + ½, y + ½).
public struct SplatCamera: Sendable, Equatable {
    public var fx: Float
    public var fy: Float
    public var cx: Float
    public var cy: Float
    public var width: Int
    public var height: Int
    /// Row-major world→camera transform, p_cam = R·p + t with R = M[0..<3, 0..<3], t = M[0..<3, 3].
    public var worldToCamera: [Float]   // [4, 4]
    /// Gaussians with camera z ≤ near are culled.
    public var near: Float

    public init(fx: Float, fy: Float, cx: Float, cy: Float, width: Int, height: Int,
                worldToCamera: [Float], near: Float = 0.01) {
        self.fx = fx
        self.fy = fy
        self.cx = cx
        self.cy = cy
        self.width = width
        self.height = height
        self.worldToCamera = worldToCamera
        self.near = near
    }
}

/// Raw, unconstrained Gaussian parameters (the `Gaussians` record of PGFlow's Value.swift).
/// scale = exp(logScales), opacity = sigmoid(opacityLogits), quaternion (w, x, y, z) normalised
/// as q / max(|q|, 1e-12); features are splatted as they are.
public struct SplatGaussians: Sendable {
    public var count: Int
    public var channels: Int
    /// One log-scale per Gaussian and no rotation (the learnable-Gaussian-embedding variant).
    public var isotropic: Bool
    public var means: [Float]           // [N, 3]
    public var logScales: [Float]       // [N, 3], or [N, 1] when isotropic
    public var quats: [Float]           // [N, 4] (w, x, y, z); ignored, may be empty, when isotropic
    public var opacityLogits: [Float]   // [N]
    public var features: [Float]        // [N, C]

    public init(means: [Float], logScales: [Float], quats: [Float], opacityLogits: [Float],
                features: [Float], channels: Int, isotropic: Bool = false) {
        let n = opacityLogits.count
        precondition(channels >= 1, "Splat needs at least one feature channel")
        precondition(means.count == n * 3, "means should be [\(n), 3], got \(means.count) values")
        precondition(logScales.count == n * (isotropic ? 1 : 3),
                     "log-scales should be [\(n), \(isotropic ? 1 : 3)], got \(logScales.count) values")
        precondition(isotropic || quats.count == n * 4, "quats should be [\(n), 4], got \(quats.count) values")
        precondition(features.count == n * channels,
                     "features should be [\(n), \(channels)], got \(features.count) values")
        self.count = n
        self.channels = channels
        self.isotropic = isotropic
        self.means = means
        self.logScales = logScales
        self.quats = quats
        self.opacityLogits = opacityLogits
        self.features = features
    }
}

public enum SplatDepthMode: String, Sendable {
    /// D = Σ zₖ·αₖ·Tₖ.
    case accumulated
    /// D / (1 − T_final) where anything was hit, else 0.
    case expected
}

public struct SplatOptions: Sendable {
    /// Per-channel background; empty means zeros.
    public var background: [Float]   // [C] or []
    public var depthMode: SplatDepthMode
    /// Worker threads for every parallel phase (tiles are dealt to workers round-robin, so a
    /// thread count always gives the same bits).
    public var threads: Int

    public init(background: [Float] = [], depthMode: SplatDepthMode = .expected, threads: Int = 2) {
        self.background = background
        self.depthMode = depthMode
        self.threads = max(1, threads)
    }
}

/// What the rasterizer renders.
public struct SplatImage: Sendable {
    public var width: Int
    public var height: Int
    public var channels: Int
    public var features: [Float]   // [C, H, W]
    public var alpha: [Float]      // [H, W]
    public var depth: [Float]      // [H, W]
}

/// Gradients with respect to the raw parameters, each in its parameter's shape.
public struct SplatGradients: Sendable {
    public var vMeans: [Float]           // [N, 3]
    public var vLogScales: [Float]       // [N, 3], or [N, 1] when isotropic
    public var vQuats: [Float]           // [N, 4]; all zero when isotropic
    public var vOpacityLogits: [Float]   // [N]
    public var vFeatures: [Float]        // [N, C]
}

/// Everything `rasterizeVJP` needs, saved by `rasterize`. The parameter arrays are shared with the
/// caller's (copy-on-write), so holding a tape costs the binning plus two [H, W] planes.
public struct SplatTape: Sendable {
    public let gaussians: SplatGaussians
    public let camera: SplatCamera
    public let options: SplatOptions
    /// The image's depth plane (needed to differentiate `.expected` depth).
    public let depth: [Float]               // [H, W]
    /// T_final per pixel.
    let finalT: [Float]                     // [H, W]
    /// Per pixel: 1 + the position in its tile's list of the last Gaussian blended, 0 if none.
    let lastContributor: [Int32]            // [H, W]
    /// Visible Gaussians in index order: original index and packed 2D parameters.
    let visibleIndex: [Int32]               // [M]
    let visible2D: [Float]                  // [M, 8] (see `SplatKernel.Packed`)
    /// Tile t's depth-sorted list is tileList[tileStart[t] ..< tileStart[t + 1]] (visible ids).
    let tileStart: [Int32]                  // [tiles + 1]
    let tileList: [Int32]                   // [intersections]

    /// Visible (projected, not culled) Gaussians.
    public var visibleCount: Int { visibleIndex.count }
    /// Gaussian–tile pairs rasterized.
    public var intersectionCount: Int { tileList.count }
}

extension SplatKernel {
    /// Offsets into a visible Gaussian's 8 packed floats.
    enum Packed {
        static let meanX = 0, meanY = 1, conicA = 2, conicB = 3, conicC = 4
        static let opacity = 5, sigmaMax = 6, depth = 7
        static let stride = 8
    }

    /// Renders `gaussians` through `camera`. `workspace` holds scratch reused across calls; one
    /// call at a time per workspace.
    public static func rasterize(_ gaussians: SplatGaussians, camera: SplatCamera, options: SplatOptions,
                                 workspace: SplatWorkspace) -> (image: SplatImage, tape: SplatTape) {
        precondition(camera.width > 0 && camera.height > 0, "Splat needs a positive image size")
        precondition(camera.worldToCamera.count == 16, "world_to_camera should be [4, 4]")
        precondition(options.background.isEmpty || options.background.count == gaussians.channels,
                     "background has \(options.background.count) values for \(gaussians.channels) channels")
        precondition(gaussians.channels <= 4096, "Splat supports at most 4096 channels")
        let binning = bin(gaussians, camera: camera, threads: options.threads, workspace: workspace)
        return rasterizeTiles(gaussians, camera: camera, options: options, binning: binning, workspace: workspace)
    }

    /// Gradients of a scalar loss with respect to the raw parameters, from its cotangents on the
    /// three outputs of `rasterize` (nil: zero).
    public static func rasterizeVJP(_ tape: SplatTape,
                                    vFeatures: [Float],   // [C, H, W]
                                    vAlpha: [Float]?,     // [H, W]
                                    vDepth: [Float]?,     // [H, W]
                                    workspace: SplatWorkspace) -> SplatGradients {
        let pixels = tape.camera.width * tape.camera.height
        precondition(vFeatures.count == tape.gaussians.channels * pixels,
                     "vFeatures should be [\(tape.gaussians.channels), \(tape.camera.height), \(tape.camera.width)]")
        precondition(vAlpha == nil || vAlpha!.count == pixels, "vAlpha should be [H, W]")
        precondition(vDepth == nil || vDepth!.count == pixels, "vDepth should be [H, W]")
        return backwardTiles(tape, vFeatures: vFeatures, vAlpha: vAlpha, vDepth: vDepth, workspace: workspace)
    }
}
