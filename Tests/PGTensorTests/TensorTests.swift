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
