import Foundation

/// Seeded random numbers that are the same on every machine: what every seeded initialisation,
/// sampler and test in pgflow draws from (Steele, Lea & Flood's SplitMix64).
public struct SplitMix64: RandomNumberGenerator, Sendable {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

extension SplitMix64 {
    /// Uniform in the open interval (0, 1): (k + ½)/2⁵³ for the top 53 bits k, so log never sees 0.
    public mutating func uniformOpen() -> Double { (Double(next() >> 11) + 0.5) / 9_007_199_254_740_992 }

    /// Two independent standard normals from two draws (Box–Muller in Double): r·cos θ and r·sin θ.
    public mutating func boxMuller() -> (Double, Double) {
        let r = (-2 * log(uniformOpen())).squareRoot(), theta = 2 * Double.pi * uniformOpen()
        return (r * cos(theta), r * sin(theta))
    }
}

/// Seeded standard normals one at a time, using each Box–Muller pair whole: the same seed gives
/// the same numbers on every machine (initial features, renderer weights, test noise).
public struct NormalDraws: Sendable {
    public var bits: SplitMix64
    private var spare: Double?

    public init(seed: UInt64) { bits = SplitMix64(seed: seed) }

    public mutating func next() -> Double {
        if let s = spare { spare = nil; return s }
        let (a, b) = bits.boxMuller()
        spare = b
        return a
    }
}
