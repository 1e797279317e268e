/// 8-wide SIMD helpers for the Splat kernels: one lane per pixel of an 8-pixel group.
///
/// A few operations go through x86 intrinsics where the standard library's generic SIMD code does
/// not compile to the one instruction it could be (`any` on a mask, horizontal sums, transposes);
/// other architectures use the portable definitions.
#if arch(x86_64)
import _Builtin_intrinsics.intel
#endif

typealias Lanes = SIMD8<Float>
typealias LaneMask = SIMDMask<SIMD8<Int32>>

/// Pixel-centre offsets of the 8 lanes.
let laneCentres = Lanes(0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5)

/// e^(−s) for s ≥ 0 with relative error below 1e-7: 2^x split into integer and fraction in
/// [−½, ½], a degree-5 polynomial (weighted least squares) and the exponent bits.
/// (`addingProduct` is one FMA instruction: PGKernels compiles with FMA on x86-64, and arm64 has it.)
@inline(__always)
func expNeg(_ s: Lanes) -> Lanes {
    var x = s * -1.442695040888963
    x.replace(with: -126, where: x .< -126)
    let whole = x.rounded(.toNearestOrEven)
    let f = x - whole
    var p = Lanes(repeating: 9.675469400251213e-3).addingProduct(f, Lanes(repeating: 1.3266979930944296e-3))
    p = Lanes(repeating: 5.550742675435101e-2).addingProduct(p, f)
    p = Lanes(repeating: 2.4022121576138517e-1).addingProduct(p, f)
    p = Lanes(repeating: 6.931469490691712e-1).addingProduct(p, f)
    p = Lanes(repeating: 1.0000000710651842).addingProduct(p, f)
    // whole + 1.5·2²³ keeps the integer in the low mantissa bits; move it into the exponent.
    let bits = (unsafeBitCast(whole + 12582912.0, to: SIMD8<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23
    return p * unsafeBitCast(bits, to: Lanes.self)
}

@inline(__always)
func loadLanes(_ p: UnsafePointer<Float>, _ lanes: Int) -> Lanes {
    if lanes == 8 { return UnsafeRawPointer(p).loadUnaligned(as: Lanes.self) }
    var v = Lanes(repeating: 0)
    for l in 0..<lanes { v[l] = p[l] }
    return v
}

@inline(__always)
func storeLanes(_ v: Lanes, _ p: UnsafeMutablePointer<Float>, _ lanes: Int) {
    if lanes == 8 { UnsafeMutableRawPointer(p).storeBytes(of: v, as: Lanes.self); return }
    for l in 0..<lanes { p[l] = v[l] }
}

/// For each 8-bit lane mask, the numbers of its set lanes packed to the front.
final class LaneCompaction: @unchecked Sendable {   // immutable after init
    let pointer: UnsafeMutablePointer<SIMD8<Int32>>   // [256]
    init() {
        pointer = .allocate(capacity: 256)
        for m in 0..<256 {
            var v = SIMD8<Int32>(repeating: 0)
            var k = 0
            for l in 0..<8 where m & (1 << l) != 0 { v[k] = Int32(l); k += 1 }
            pointer[m] = v
        }
    }
    deinit { pointer.deallocate() }
}
let laneCompaction = LaneCompaction()

/// Bit l set where lane l of the mask is. (The standard library's `any` is a horizontal minimum
/// that often stays an out-of-line generic call; on x86-64 this is one vmovmskps.)
@inline(__always)
func laneBits(_ m: LaneMask) -> UInt32 {
    #if arch(x86_64)
    UInt32(bitPattern: _mm256_movemask_ps(unsafeBitCast(m, to: __m256.self)))
    #else
    (unsafeBitCast(m, to: SIMD8<UInt32>.self) & SIMD8(1, 2, 4, 8, 16, 32, 64, 128)).wrappedSum()
    #endif
}

@inline(__always)
func anyLane(_ m: LaneMask) -> Bool { laneBits(m) != 0 }

/// Eight horizontal sums at once: lane i of the result is the sum of the lanes of `v.i`.
@inline(__always)
func laneSums(_ a: Lanes, _ b: Lanes, _ c: Lanes, _ d: Lanes,
              _ e: Lanes, _ f: Lanes, _ g: Lanes, _ h: Lanes) -> Lanes {
    #if arch(x86_64)
    let ab = _mm256_hadd_ps(a, b), cd = _mm256_hadd_ps(c, d), ef = _mm256_hadd_ps(e, f), gh = _mm256_hadd_ps(g, h)
    let abcd = _mm256_hadd_ps(ab, cd), efgh = _mm256_hadd_ps(ef, gh)
    return Lanes(lowHalf: abcd.lowHalf + abcd.highHalf, highHalf: efgh.lowHalf + efgh.highHalf)
    #else
    return Lanes(a.sum(), b.sum(), c.sum(), d.sum(), e.sum(), f.sum(), g.sum(), h.sum())
    #endif
}

/// Transposes the 8×8 block src[0..<8] (row i becomes column i) into 8 rows of 8 floats at
/// dst, dst + stride, … (unaligned). Straight from registers to the destination: going through a
/// scratch block written by memmove would stall every load that follows on store forwarding.
@inline(__always)
func transpose8(_ src: UnsafePointer<Lanes>, into dst: UnsafeMutablePointer<Float>, stride: Int) {
    func store(_ v: Lanes, _ row: Int) { UnsafeMutableRawPointer(dst + row * stride).storeBytes(of: v, as: Lanes.self) }
    #if arch(x86_64)
    func pd(_ x: Lanes) -> __m256d { unsafeBitCast(x, to: __m256d.self) }
    func ps(_ x: __m256d) -> Lanes { unsafeBitCast(x, to: Lanes.self) }
    let t0 = _mm256_unpacklo_ps(src[0], src[1]), t1 = _mm256_unpackhi_ps(src[0], src[1])
    let t2 = _mm256_unpacklo_ps(src[2], src[3]), t3 = _mm256_unpackhi_ps(src[2], src[3])
    let t4 = _mm256_unpacklo_ps(src[4], src[5]), t5 = _mm256_unpackhi_ps(src[4], src[5])
    let t6 = _mm256_unpacklo_ps(src[6], src[7]), t7 = _mm256_unpackhi_ps(src[6], src[7])
    let u0 = ps(_mm256_unpacklo_pd(pd(t0), pd(t2))), u1 = ps(_mm256_unpackhi_pd(pd(t0), pd(t2)))
    let u2 = ps(_mm256_unpacklo_pd(pd(t1), pd(t3))), u3 = ps(_mm256_unpackhi_pd(pd(t1), pd(t3)))
    let u4 = ps(_mm256_unpacklo_pd(pd(t4), pd(t6))), u5 = ps(_mm256_unpackhi_pd(pd(t4), pd(t6)))
    let u6 = ps(_mm256_unpacklo_pd(pd(t5), pd(t7))), u7 = ps(_mm256_unpackhi_pd(pd(t5), pd(t7)))
    store(Lanes(lowHalf: u0.lowHalf, highHalf: u4.lowHalf), 0)
    store(Lanes(lowHalf: u1.lowHalf, highHalf: u5.lowHalf), 1)
    store(Lanes(lowHalf: u2.lowHalf, highHalf: u6.lowHalf), 2)
    store(Lanes(lowHalf: u3.lowHalf, highHalf: u7.lowHalf), 3)
    store(Lanes(lowHalf: u0.highHalf, highHalf: u4.highHalf), 4)
    store(Lanes(lowHalf: u1.highHalf, highHalf: u5.highHalf), 5)
    store(Lanes(lowHalf: u2.highHalf, highHalf: u6.highHalf), 6)
    store(Lanes(lowHalf: u3.highHalf, highHalf: u7.highHalf), 7)
    #else
    for l in 0..<8 {
        var v = Lanes()
        for i in 0..<8 { v[i] = src[i][l] }
        store(v, l)
    }
    #endif
}
