import PGTensor

/// k-nearest-neighbour distances on a uniform grid, for the 3DGS scale initialisation.
public enum NearestNeighbours {
    /// For every point, the mean squared distance to its `k` nearest other points (3DGS's
    /// `distCUDA2` with k = 3). Points at the same position count as distance zero.
    public static func meanSquaredDistance(_ points: [Float],   // [N, 3]
                                           k: Int = 3, threads: Int = 2) -> [Float] {   // [N]
        precondition(points.count % 3 == 0, "points should be [N, 3]")
        precondition(k >= 1, "k must be positive")
        let n = points.count / 3
        if n <= 1 { return [Float](repeating: 0, count: n) }
        let k = min(k, n - 1)

        var lo = SIMD3<Float>(repeating: .infinity), hi = SIMD3<Float>(repeating: -.infinity)
        for i in 0..<n {
            let p = SIMD3(points[3 * i], points[3 * i + 1], points[3 * i + 2])
            lo = pointwiseMin(lo, p); hi = pointwiseMax(hi, p)
        }
        let extent = pointwiseMax(hi - lo, SIMD3(repeating: 1e-6))
        // A few points per occupied cell for points on a surface (the box's surface area stands
        // in for the cloud's); the cap keeps the grid a small multiple of n for elongated clouds.
        let area = 2 * (Double(extent.x) * Double(extent.y) + Double(extent.y) * Double(extent.z) + Double(extent.z) * Double(extent.x))
        var cell = Float((area / Double(n)).squareRoot())
        cell = max(cell, extent.max() / 1024)
        var dims = SIMD3<Int>(Int((extent.x / cell).rounded(.up)), Int((extent.y / cell).rounded(.up)), Int((extent.z / cell).rounded(.up)))
        while dims.x * dims.y * dims.z > 8 * n + 64 {
            cell *= 1.25
            dims = SIMD3(Int((extent.x / cell).rounded(.up)), Int((extent.y / cell).rounded(.up)), Int((extent.z / cell).rounded(.up)))
        }
        dims = pointwiseMax(dims, SIMD3(repeating: 1))
        func cellOf(_ p: SIMD3<Float>) -> SIMD3<Int> {
            let c = (p - lo) / cell
            return SIMD3(min(dims.x - 1, max(0, Int(c.x))), min(dims.y - 1, max(0, Int(c.y))), min(dims.z - 1, max(0, Int(c.z))))
        }
        // Counting sort of the points by cell.
        let cellCount = dims.x * dims.y * dims.z
        var start = [Int32](repeating: 0, count: cellCount + 1)
        var cellIndex = [Int](repeating: 0, count: n)
        for i in 0..<n {
            let c = cellOf(SIMD3(points[3 * i], points[3 * i + 1], points[3 * i + 2]))
            cellIndex[i] = (c.z * dims.y + c.y) * dims.x + c.x
            start[cellIndex[i] + 1] += 1
        }
        for c in 0..<cellCount { start[c + 1] += start[c] }
        var fill = start
        var sorted = [Int32](repeating: 0, count: n)
        for i in 0..<n {
            sorted[Int(fill[cellIndex[i]])] = Int32(i)
            fill[cellIndex[i]] += 1
        }

        var out = [Float](repeating: 0, count: n)
        out.withUnsafeMutableBufferPointer { result in
            let result = result
            parallelChunks(n, threads: threads) { _, range in
                var best = [Float](repeating: .infinity, count: k)   // ascending squared distances
                for i in range {
                    for q in 0..<k { best[q] = .infinity }
                    let p = SIMD3(points[3 * i], points[3 * i + 1], points[3 * i + 2])
                    let c = cellOf(p)
                    var ring = 0
                    while true {
                        // Visit the shell of cells at Chebyshev distance `ring`.
                        for z in (c.z - ring)...(c.z + ring) where z >= 0 && z < dims.z {
                            for y in (c.y - ring)...(c.y + ring) where y >= 0 && y < dims.y {
                                let onShellZY = abs(z - c.z) == ring || abs(y - c.y) == ring
                                for x in (c.x - ring)...(c.x + ring) where x >= 0 && x < dims.x {
                                    if !onShellZY && abs(x - c.x) != ring { continue }
                                    let cc = (z * dims.y + y) * dims.x + x
                                    for s in Int(start[cc])..<Int(start[cc + 1]) {
                                        let o = Int(sorted[s])
                                        if o == i { continue }
                                        let d = SIMD3(points[3 * o], points[3 * o + 1], points[3 * o + 2]) - p
                                        let d2 = (d * d).sum()
                                        if d2 < best[k - 1] {
                                            var q = k - 1
                                            while q > 0 && best[q - 1] > d2 { best[q] = best[q - 1]; q -= 1 }
                                            best[q] = d2
                                        }
                                    }
                                }
                            }
                        }
                        // Every point outside the shells searched so far is at least ring·cell away.
                        let reach = Float(ring) * cell
                        let allCovered = c.x - ring <= 0 && c.y - ring <= 0 && c.z - ring <= 0
                            && c.x + ring >= dims.x - 1 && c.y + ring >= dims.y - 1 && c.z + ring >= dims.z - 1
                        if allCovered || (best[k - 1] < .infinity && best[k - 1] <= reach * reach) { break }
                        ring += 1
                    }
                    var sum: Float = 0
                    for q in 0..<k { sum += best[q] }
                    result[i] = sum / Float(k)
                }
            }
        }
        return out
    }
}
