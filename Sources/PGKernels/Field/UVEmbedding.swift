/// Gaussians embedded in a model's UV layout (PortraitGen §3.2.1, after FlashAvatar): the layout is
/// rasterised at `resolution`², and every texel whose centre falls in a UV triangle becomes one
/// Gaussian, tied to that triangle by barycentric weights.
///
/// Texel (row r, column c) has its centre at u = (c + ½)/R, v = 1 − (r + ½)/R: row 0 is the top of
/// the texture image (v = 1), as in the models' texture maps. Gaussians are numbered in texel order.
public struct UVEmbedding: Sendable, Equatable {
    public let resolution: Int
    /// The mesh face each Gaussian sits on.
    public let faces: [Int32]           // [N]
    /// Barycentric weights on that face's three corners (non-negative, summing to one).
    public let barycentrics: [Float]    // [N, 3]
    /// The texel of each Gaussian, r·R + c.
    public let texels: [Int32]          // [N]
    /// Pairs of Gaussians on horizontally or vertically adjacent texels: the UV-grid graph the
    /// smoothness regulariser works on.
    public let edges: [Int32]           // [M, 2]

    public var count: Int { faces.count }
    public var edgeCount: Int { edges.count / 2 }

    public init(resolution: Int, faces: [Int32], barycentrics: [Float], texels: [Int32], edges: [Int32]) {
        precondition(barycentrics.count == 3 * faces.count && texels.count == faces.count && edges.count % 2 == 0,
                     "an embedding needs [N] faces, [N, 3] barycentrics, [N] texels and [M, 2] edges")
        self.resolution = resolution
        self.faces = faces
        self.barycentrics = barycentrics
        self.texels = texels
        self.edges = edges
    }

    /// Rasterises the UV triangles of the faces with `include[f]` true. Where UV triangles overlap,
    /// the lower face index wins, so the embedding never depends on thread timing.
    public static func rasterize(uvs: [Float],        // [T, 2]
                                 uvFaces: [Int32],    // [F, 3]
                                 resolution r: Int,
                                 include: [Bool]? = nil) -> UVEmbedding {
        let faceCount = uvFaces.count / 3
        precondition(r >= 1, "the UV resolution must be positive")
        precondition(uvFaces.count % 3 == 0 && uvFaces.allSatisfy { $0 >= 0 && Int($0) < uvs.count / 2 },
                     "uv faces should index the uvs")
        precondition(include == nil || include!.count == faceCount, "include should have one flag per face")
        let rf = Double(r)
        var owner = [Int32](repeating: -1, count: r * r)
        var bary = [SIMD3<Float>](repeating: .zero, count: r * r)
        for f in 0..<faceCount where include?[f] ?? true {
            let a = uv(uvs, uvFaces[3 * f]), b = uv(uvs, uvFaces[3 * f + 1]), c = uv(uvs, uvFaces[3 * f + 2])
            // Texel space: x = u·R − ½, y = (1 − v)·R − ½ puts texel centres on integers.
            let pa = SIMD2(a.x * rf - 0.5, (1 - a.y) * rf - 0.5)
            let pb = SIMD2(b.x * rf - 0.5, (1 - b.y) * rf - 0.5)
            let pc = SIMD2(c.x * rf - 0.5, (1 - c.y) * rf - 0.5)
            let area = cross(pb - pa, pc - pa)
            if abs(area) < 1e-12 { continue }
            let lo = SIMD2(min(pa.x, pb.x, pc.x), min(pa.y, pb.y, pc.y))
            let hi = SIMD2(max(pa.x, pb.x, pc.x), max(pa.y, pb.y, pc.y))
            let x0 = max(0, Int(lo.x.rounded(.up))), x1 = min(r - 1, Int(hi.x.rounded(.down)))
            let y0 = max(0, Int(lo.y.rounded(.up))), y1 = min(r - 1, Int(hi.y.rounded(.down)))
            if x0 > x1 || y0 > y1 { continue }
            // Edge tolerance in barycentric units: a texel centre exactly on a shared edge goes to
            // the first face that claims it rather than falling between two.
            let eps = 1e-9
            for y in y0...y1 {
                for x in x0...x1 where owner[y * r + x] < 0 {
                    let p = SIMD2(Double(x), Double(y))
                    let wa = cross(pb - p, pc - p) / area
                    let wb = cross(pc - p, pa - p) / area
                    let wc = 1 - wa - wb
                    guard wa >= -eps, wb >= -eps, wc >= -eps else { continue }
                    var w = SIMD3(Float(max(wa, 0)), Float(max(wb, 0)), Float(max(wc, 0)))
                    w /= w.sum()
                    owner[y * r + x] = Int32(f)
                    bary[y * r + x] = w
                }
            }
        }
        var faces: [Int32] = [], bc: [Float] = [], texels: [Int32] = []
        var index = [Int32](repeating: -1, count: r * r)
        for t in 0..<(r * r) where owner[t] >= 0 {
            index[t] = Int32(faces.count)
            faces.append(owner[t])
            bc.append(contentsOf: [bary[t].x, bary[t].y, bary[t].z])
            texels.append(Int32(t))
        }
        var edges: [Int32] = []
        for y in 0..<r {
            for x in 0..<r where index[y * r + x] >= 0 {
                let i = index[y * r + x]
                if x + 1 < r, index[y * r + x + 1] >= 0 { edges.append(contentsOf: [i, index[y * r + x + 1]]) }
                if y + 1 < r, index[(y + 1) * r + x] >= 0 { edges.append(contentsOf: [i, index[(y + 1) * r + x]]) }
            }
        }
        return UVEmbedding(resolution: r, faces: faces, barycentrics: bc, texels: texels, edges: edges)
    }

    /// The embedded points on a mesh: Σₖ bₖ·vertex(face corner k).
    public func points(on vertices: [Float],   // [V, 3]
                       faces meshFaces: [Int32]) -> [Float] {   // [N, 3]
        var out = [Float](repeating: 0, count: 3 * count)
        for g in 0..<count {
            let f = Int(faces[g])
            for k in 0..<3 {
                let vi = Int(meshFaces[3 * f + k]), w = barycentrics[3 * g + k]
                out[3 * g] += w * vertices[3 * vi]
                out[3 * g + 1] += w * vertices[3 * vi + 1]
                out[3 * g + 2] += w * vertices[3 * vi + 2]
            }
        }
        return out
    }

    /// Samples a `[C, H, W]` image (row 0 at v = 1) bilinearly at every Gaussian's texel centre.
    public func sample(image: [Float], channels: Int, height: Int, width: Int) -> [Float] {   // [N, C]
        precondition(image.count == channels * height * width && height > 0 && width > 0, "the image should be [C, H, W]")
        var out = [Float](repeating: 0, count: count * channels)
        let rf = Float(resolution)
        for g in 0..<count {
            let t = Int(texels[g])
            let u = (Float(t % resolution) + 0.5) / rf, vFromTop = (Float(t / resolution) + 0.5) / rf
            let x = min(max(u * Float(width) - 0.5, 0), Float(width - 1))
            let y = min(max(vFromTop * Float(height) - 0.5, 0), Float(height - 1))
            let x0 = Int(x), y0 = Int(y), x1 = min(x0 + 1, width - 1), y1 = min(y0 + 1, height - 1)
            let fx = x - Float(x0), fy = y - Float(y0)
            for c in 0..<channels {
                let o = c * height * width
                let top = image[o + y0 * width + x0] * (1 - fx) + image[o + y0 * width + x1] * fx
                let bottom = image[o + y1 * width + x0] * (1 - fx) + image[o + y1 * width + x1] * fx
                out[g * channels + c] = top * (1 - fy) + bottom * fy
            }
        }
        return out
    }

    private static func uv(_ uvs: [Float], _ i: Int32) -> SIMD2<Double> {
        SIMD2(Double(uvs[2 * Int(i)]), Double(uvs[2 * Int(i) + 1]))
    }
    private static func cross(_ a: SIMD2<Double>, _ b: SIMD2<Double>) -> Double { a.x * b.y - a.y * b.x }
}
