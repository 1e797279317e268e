import Foundation

extension HeadModel {
    /// A procedural skin-like texture in `builtin:head`'s UV layout, `[3, R, R]`, linear 0…1, row 0
    /// at v = 1: skin with baked soft lighting, hair, brows, eyes, lips, the inside of the mouth
    /// (teeth and a dark back wall) and a shirt. Used to give a fresh field recognisable colours in
    /// tests and the demo, and to render synthetic source frames.
    public static func texture(resolution r: Int) -> [Float] {
        precondition(r >= 1, "the texture resolution must be positive")
        let g = HeadGeometry()
        var out = [Float](repeating: 0, count: 3 * r * r)
        let plane = r * r
        let last = g.rows.count - 1
        for row in 0..<r {
            let rowCoord = g.rowCoordinate(v: 1 - (Double(row) + 0.5) / Double(r))   // 0 at the crown pole
            let i0 = min(last - 1, Int(rowCoord)), frac = rowCoord - Double(i0)
            let t = g.rows[i0].t + frac * (g.rows[i0 + 1].t - g.rows[i0].t)
            // Position inside the mouth pocket: 0 at the upper lip's edge … 4 at the lower's.
            let pocket: Double? = (i0 >= g.mouthRow && i0 < g.mouthRow + 4) ? Double(i0 - g.mouthRow) + frac : nil
            for col in 0..<r {
                let phi = HeadGeometry.phi((Double(col) + 0.5) / Double(r))
                let rgb = colour(g, t: t, phi: phi, pocket: pocket)
                for k in 0..<3 { out[k * plane + row * r + col] = Float(min(1, max(0, rgb[k]))) }
            }
        }
        return out
    }

    static func colour(_ g: HeadGeometry, t: Double, phi: Double, pocket: Double?) -> SIMD3<Double> {
        let ring = g.ring(t, shape: .zero)
        let y = ring.y, s = ring.rx * HeadMath.superellipse(sin(phi), ring.n), c = cos(phi)
        let front = HeadGeometry.frontMask(phi)
        let skin = SIMD3(0.86, 0.64, 0.53)
        var col = skin

        func mix(_ a: SIMD3<Double>, _ b: SIMD3<Double>, _ k: Double) -> SIMD3<Double> { a + (b - a) * min(1, max(0, k)) }
        // Soft edge of width w around a signed distance d (negative inside).
        func inside(_ d: Double, _ w: Double) -> Double { 1 - HeadMath.smoothstep(-w, w, d) }

        // Hair above a hairline that is high on the forehead, drops to the sideburns and low at the nape.
        let hairline = c >= 0 ? 0.012 + 0.043 * pow(c, 0.7) + 0.012 * pow(s / 0.05, 2) * c : 0.012 + 0.097 * c
        let strands = 0.85 + 0.15 * sin(phi * 40 + t * 90) * sin(t * 31)
        let hair = SIMD3(0.22, 0.14, 0.09) * strands
        // Shirt below a round collar.
        let collar = -0.208 - 0.014 * max(c, 0)
        if y > hairline {
            col = mix(col, hair, inside(hairline - y, 0.002))
        } else if y < collar {
            col = mix(SIMD3(0.20, 0.31, 0.55), SIMD3(0.16, 0.25, 0.45), 0.5 + 0.5 * sin(phi * 3))
            col = mix(skin * 0.9, col, HeadMath.smoothstep(0, 0.003, collar - y))
        } else if y < -0.125 {
            col = skin * 0.93
        }

        if front > 0 && y < 0.04 && y > -0.13 {
            var face = col
            let ax = abs(s)
            // Cheeks and nose tip slightly redder.
            let blush = exp(-pow((ax - 0.045) / 0.015, 2) - pow((y + 0.045) / 0.015, 2))
                + 0.6 * exp(-pow(s / 0.008, 2) - pow((y + 0.042) / 0.006, 2))
            face = mix(face, SIMD3(0.85, 0.52, 0.45), 0.35 * blush)
            // Nostrils.
            let nostril = exp(-(pow((ax - 0.0075) / 0.0028, 2) + pow((y + 0.051) / 0.0018, 2)))
            face = mix(face, SIMD3(0.35, 0.2, 0.18), nostril)
            // Brows: an arched band, thinning outwards.
            let browY = 0.010 + 0.003 * (1 - pow((ax - 0.03) / 0.022, 2))
            let browHalf = 0.0026 * (1 - HeadMath.smoothstep(0.038, 0.056, ax)) + 0.0008
            if ax > 0.011 && ax < 0.056 {
                face = mix(face, SIMD3(0.20, 0.13, 0.08), inside(abs(y - browY) - browHalf, 0.0007))
            }
            // Eyes: an almond of sclera with iris and pupil, outlined by the lids.
            let ex = ax - HeadGeometry.eyeX, ey = y - HeadGeometry.eyeY
            let halfHeight = HeadGeometry.eyeHalfHeight * max(0, 1 - pow(ex / 0.0128, 2))
            if halfHeight > 0 {
                let lidDistance = abs(ey) - halfHeight
                var eye = SIMD3(0.93, 0.92, 0.90)
                let rr = (ex * ex + ey * ey).squareRoot()
                eye = mix(eye, SIMD3(0.25, 0.36, 0.48), inside(rr - 0.0046, 0.0004))
                eye = mix(eye, SIMD3(0.04, 0.04, 0.05), inside(rr - 0.0019, 0.0003))
                eye = mix(eye, SIMD3(0.25, 0.15, 0.12), HeadMath.smoothstep(-0.0012, 0, lidDistance))
                face = mix(face, eye, inside(lidDistance, 0.0004))
            }
            // Lips, with a dip in the upper lip's middle.
            let my = HeadGeometry.mouthY
            let lipColour = SIMD3(0.74, 0.38, 0.38)
            let upper = 0.0085 * max(0, 1 - pow(s / 0.026, 2)) - 0.0015 * exp(-pow(s / 0.004, 2))
            let lower = 0.011 * max(0, 1 - pow(s / 0.024, 2))
            let across = 1 - HeadMath.smoothstep(0.023, 0.027, ax)
            if y >= my { face = mix(face, lipColour, across * inside(y - my - upper, 0.0008)) }
            else { face = mix(face, lipColour, across * inside(my - y - lower, 0.0008)) }
            col = mix(col, face, front)
        }

        // Baked light from above-front-left, so the shape reads in flat-shaded renders.
        let n = g.normal(t: t, phi: phi)
        let lightDirection = SIMD3<Double>(0.35, 0.55, 0.75)
        let light = lightDirection / (lightDirection * lightDirection).sum().squareRoot()
        col *= 0.55 + 0.5 * max(0, (n * light).sum())

        // Inside the mouth (unlit): inner lips, teeth, the dark back wall.
        if let pocket {
            let fromBack = abs(pocket - 2)
            var inner = SIMD3(0.62, 0.30, 0.30)
            if fromBack < 1.5 { inner = SIMD3(0.90, 0.88, 0.80) }
            if fromBack < 0.6 { inner = SIMD3(0.28, 0.06, 0.06) }
            col = mix(col, inner, HeadGeometry.mouthOpening(s) * front)
        }
        return col
    }
}
