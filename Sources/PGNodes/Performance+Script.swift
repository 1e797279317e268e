import Foundation
import PGFlow
import PGKernels
import PGTensor

/// The seeded, procedural performance behind the `Performance` node: head turns and nods, speech
/// (syllables in phrases, with a few mouth shapes), blinks and smiles as functions of time in
/// seconds. Events are drawn in time order from the seed alone, so a shorter clip is a prefix of a
/// longer one with the same seed.
struct PerformanceScript: Sendable {
    struct Amplitudes: Sendable {
        /// Peak head turn (yaw) and nod (pitch), radians.
        var turn: Double, nod: Double
        /// Peak jaw opening, radians about the jaw joint (builtin:head's jaw_open is 0.3).
        var jaw: Double
        /// Blink and smile expression weights at their peak.
        var blink: Double, smile: Double
    }

    /// One syllable: the jaw opens and closes once, with a mouth shape.
    struct Syllable: Sendable { var start, duration, open, pucker, spread: Double }
    /// A smile or a blink: a smooth bump of `weight` from `start` for `duration` seconds.
    struct Bump: Sendable { var start, duration, weight: Double }

    let amplitudes: Amplitudes
    /// (frequency Hz, phase rad) of the head's slow sinusoids: yaw, yaw detail, pitch, pitch detail, roll.
    let waves: [(Double, Double)]
    let syllables: [Syllable]
    let blinks: [Bump]
    let smiles: [Bump]

    init(seed: UInt64, duration: Double, amplitudes: Amplitudes) {
        self.amplitudes = amplitudes
        // One generator per kind of event, so how many syllables a clip needs never shifts its
        // blinks or smiles: a shorter clip is exactly a prefix of a longer one.
        var streams = (0..<4).map { SplitMix64(seed: seed &* 4 &+ UInt64($0)) }
        var stream = 0
        func uniform(_ a: Double, _ b: Double) -> Double {
            a + (b - a) * Double(streams[stream].next() >> 11) / Double(1 << 53)
        }

        // Head: the main turn starts near zero and reaches both sides within ~3 s (0.28–0.38 Hz);
        // faster, smaller waves on top keep it from looking mechanical.
        waves = [(uniform(0.28, 0.38), uniform(-0.3, 0.3)), (uniform(0.6, 0.9), uniform(0, 2 * .pi)),
                 (uniform(0.2, 0.3), uniform(0, 2 * .pi)), (uniform(0.7, 1.1), uniform(0, 2 * .pi)),
                 (uniform(0.15, 0.25), uniform(0, 2 * .pi))]

        // Speech: phrases of 1.2–2.4 s made of 4–6 syllables per second, 0.4–0.9 s pauses between.
        // Each syllable is an open vowel, a rounded one (jaw half open, lips puckered), a spread one
        // (jaw a little open, lips wide) or a closed consonant.
        stream = 1
        var syllables: [Syllable] = []
        var t = uniform(0.1, 0.3)
        while t < duration {
            let phraseEnd = t + uniform(1.2, 2.4)
            while t < phraseEnd {
                let d = uniform(0.16, 0.26)
                let kind = uniform(0, 1)
                var s = Syllable(start: t, duration: d, open: uniform(0.55, 1), pucker: 0, spread: 0)
                if kind < 0.2 { s.open *= 0.15 }                                        // m, b, p
                else if kind < 0.4 { s.open *= 0.5; s.pucker = uniform(0.3, 0.6) }       // o, u
                else if kind < 0.6 { s.open *= 0.4; s.spread = uniform(0.3, 0.5) }       // e, i
                syllables.append(s)
                t += d
            }
            t += uniform(0.4, 0.9)
        }
        self.syllables = syllables

        // Blinks: the first within the first second, then every 1.5–3.5 s, 0.16–0.24 s long.
        stream = 2
        var blinks: [Bump] = []
        t = uniform(0.4, 1.0)
        while t < duration {
            blinks.append(Bump(start: t, duration: uniform(0.16, 0.24), weight: 1))
            t += uniform(1.5, 3.5)
        }
        self.blinks = blinks

        // Smiles: the first 1.0–1.8 s in, 1.2–2 s long, 2.5–4.5 s apart.
        stream = 3
        var smiles: [Bump] = []
        t = uniform(1.0, 1.8)
        while t < duration {
            let d = uniform(1.2, 2.0)
            smiles.append(Bump(start: t, duration: d, weight: uniform(0.6, 1)))
            t += d + uniform(2.5, 4.5)
        }
        self.smiles = smiles
    }

    func wave(_ k: Int, _ t: Double) -> Double { sin(2 * .pi * waves[k].0 * t + waves[k].1) }

    /// Head yaw (turn, + towards the subject's left), pitch (+ nods down) and roll, radians.
    func head(_ t: Double) -> SIMD3<Double> {
        let a = amplitudes
        return SIMD3(a.nod * (0.7 * wave(2, t) + 0.3 * wave(3, t)),
                     a.turn * (0.75 * wave(0, t) + 0.25 * wave(1, t)),
                     0.4 * a.nod * wave(4, t))
    }

    /// The syllable being spoken at t, and how far the jaw is open in it (0…1, sin² in time).
    func speech(_ t: Double) -> (Syllable, Double)? {
        // Syllables are sorted and do not overlap: the last one starting at or before t.
        var lo = 0, hi = syllables.count
        while lo < hi { let mid = (lo + hi) / 2; if syllables[mid].start <= t { lo = mid + 1 } else { hi = mid } }
        guard lo > 0 else { return nil }
        let s = syllables[lo - 1]
        let u = (t - s.start) / s.duration
        guard u < 1 else { return nil }
        let shape = sin(.pi * u)
        return (s, shape * shape)
    }

    /// Jaw opening in radians (never negative).
    func jaw(_ t: Double) -> Double {
        guard let (s, k) = speech(t) else { return 0 }
        return amplitudes.jaw * s.open * k
    }

    /// The eyelids: 0 open, `blink` closed; a blink closes and reopens as sin(π·u).
    func blink(_ t: Double) -> Double {
        amplitudes.blink * Self.level(blinks, t) { elapsed, d in sin(.pi * elapsed / d) }
    }

    /// Smile weight: a smoothstep rise over the first 0.3 s and a fall over the last 0.3 s.
    func smile(_ t: Double) -> Double {
        amplitudes.smile * Self.level(smiles, t) { elapsed, d in
            Self.smoothstep(0, 0.3, elapsed) * Self.smoothstep(0, 0.3, d - elapsed)
        }
    }

    /// The largest bump at t; `shape` maps (seconds since the start, duration) to 0…1.
    static func level(_ bumps: [Bump], _ t: Double, shape: (Double, Double) -> Double) -> Double {
        var best = 0.0
        for b in bumps where t >= b.start && t < b.start + b.duration {
            best = max(best, b.weight * shape(t - b.start, b.duration))
        }
        return best
    }

    static func smoothstep(_ e0: Double, _ e1: Double, _ x: Double) -> Double {
        let u = min(1, max(0, (x - e0) / (e1 - e0)))
        return u * u * (3 - 2 * u)
    }

    /// builtin:head's tracking at time t.
    func tracking(_ t: Double) -> Tracking {
        let m = HeadModel.model
        var psi = [Float](repeating: 0, count: m.expressionCount)
        func set(_ name: String, _ v: Double) { psi[HeadModel.expression(name)!] += Float(v) }
        let b = blink(t)
        set("blink_left", b)
        set("blink_right", b)
        let smile = self.smile(t)
        set("smile", smile)
        set("brow_raise", 0.3 * smile)
        if let (s, k) = speech(t) {
            set("pucker", s.pucker * k)
            set("smile", 0.6 * s.spread * k)
        }
        // The turn and nod are shared by the neck (a third) and the head (the rest).
        let h = head(t)
        var pose = [Float](repeating: 0, count: 3 * m.jointCount)
        let neck = HeadModel.jointNames.firstIndex(of: "neck")!, headJoint = HeadModel.jointNames.firstIndex(of: "head")!
        pose[3 * neck] = Float(0.3 * h.x); pose[3 * neck + 1] = Float(0.35 * h.y); pose[3 * neck + 2] = Float(h.z)
        pose[3 * headJoint] = Float(0.7 * h.x); pose[3 * headJoint + 1] = Float(0.65 * h.y)
        return Tracking(model: HeadModel.name, shape: [Float](repeating: 0, count: m.shapeCount), expression: psi,
                        pose: pose, jaw: SIMD3(Float(jaw(t)), 0, 0))
    }
}
