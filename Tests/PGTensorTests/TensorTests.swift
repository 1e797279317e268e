import Testing
@testable import PGTensor

@Test func tensorShapeAndIndexing() {
    var t = Tensor(zeros: [2, 3])
    t[1, 2] = 5
    #expect(t.scalars == [0, 0, 0, 0, 0, 5])
    #expect(t.strides == [3, 1])
    let u = t
    t[0, 0] = 1
    #expect(u[0, 0] == 0, "copy-on-write keeps the copy unchanged")
}

/// l2Norm sums in Double over eight lanes plus a tail: it matches a plain Double sum, at lengths
/// with and without a tail, the longest a million values.
@Test(arguments: [0, 5, 8, 1003, 1 << 20])
func l2NormSumsInDouble(n: Int) {
    var rng = SplitMix64(seed: 11)
    let t = Tensor(shape: [n], scalars: (0..<n).map { _ in Float(rng.uniformOpen()) })
    let reference = t.scalars.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
    #expect(abs(t.l2Norm - reference) <= 1e-12 * max(reference, 1))
}
