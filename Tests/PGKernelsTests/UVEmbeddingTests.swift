import Foundation
import PGKernels
import Testing

@Suite struct UVEmbeddingTests {
    /// Two triangles covering the unit square, split along the diagonal.
    let uvs: [Float] = [0, 0, 1, 0, 1, 1, 0, 1]
    let uvFaces: [Int32] = [0, 1, 2, 0, 2, 3]

    @Test func everyTexelOfACoveredSquareBecomesOneGaussianAtItsCentre() {
        let r = 16
        let e = UVEmbedding.rasterize(uvs: uvs, uvFaces: uvFaces, resolution: r)
        #expect(e.count == r * r)
        #expect(e.texels == (0..<(r * r)).map(Int32.init), "Gaussians are numbered in texel order")
        // Barycentrics reproduce the texel centre (u = (c + ½)/R, v = 1 − (r + ½)/R).
        for g in 0..<e.count {
            let f = Int(e.faces[g])
            var u = 0.0, v = 0.0
            for k in 0..<3 {
                let i = Int(uvFaces[3 * f + k]), w = Double(e.barycentrics[3 * g + k])
                #expect(w >= 0)
                u += w * Double(uvs[2 * i]); v += w * Double(uvs[2 * i + 1])
            }
            let t = Int(e.texels[g])
            #expect(abs(u - (Double(t % r) + 0.5) / Double(r)) < 1e-6 && abs(v - (1 - (Double(t / r) + 0.5) / Double(r))) < 1e-6)
        }
        // A full grid: 2·R·(R − 1) neighbour pairs.
        #expect(e.edgeCount == 2 * r * (r - 1))
    }

    @Test func excludedFacesLeaveTheirTexelsOut() {
        let r = 16
        let e = UVEmbedding.rasterize(uvs: uvs, uvFaces: uvFaces, resolution: r, include: [true, false])
        #expect(e.faces.allSatisfy { $0 == 0 })
        // Face 0 is the lower-right half (u > v): texels strictly below the diagonal, plus the
        // ones whose centre lies on it.
        #expect(e.count == r * (r + 1) / 2)
        // Edges only join kept texels.
        for k in 0..<e.edgeCount {
            let a = Int(e.texels[Int(e.edges[2 * k])]), b = Int(e.texels[Int(e.edges[2 * k + 1])])
            #expect(abs(a - b) == 1 || abs(a - b) == r)
        }
    }

    @Test func samplingAnImageAtTheTexelResolutionReadsTexelsExactly() {
        let r = 8
        let e = UVEmbedding.rasterize(uvs: uvs, uvFaces: uvFaces, resolution: r)
        var rng = FieldRandom(41)
        let image = rng.floats(2 * r * r, 0, 1)
        let s = e.sample(image: image, channels: 2, height: r, width: r)
        for g in 0..<e.count {
            let t = Int(e.texels[g])
            #expect(s[2 * g] == image[t] && s[2 * g + 1] == image[r * r + t], "seed 41 texel \(t)")
        }
    }
}
