import Foundation
import PGFlow
import PGNodes
import PGTensor
import Testing

func composite(_ mode: String, gap: Int = 2, size: Int = 512) throws -> Composite {
    try Composite(params: Params(["mode": .string(mode), "gap": .int(Int64(gap)), "background": .array([.double(0.5)]),
                                  "size": .int(Int64(size))],
                                 baseDirectory: URL(fileURLWithPath: "/")))
}

@Test func cropCutsTheBoxAndPasteBringsItBack() throws {
    var frame = Tensor(zeros: [1, 8, 8])
    for y in 0..<8 { for x in 0..<8 { frame[0, y, x] = Float(y * 8 + x) } }
    let box: Value = .list([.number(2), .number(3), .number(6), .number(7)])
    let crop = try #require(try composite("crop", size: 4).evaluate(Inputs(["a": .tensor(frame), "box": box]), frame: 0, context: .standalone())["image"]?.tensor)
    #expect(crop.shape == [1, 4, 4])
    #expect(crop[0, 0, 0] == frame[0, 3, 2] && crop[0, 3, 3] == frame[0, 6, 5], "a box the crop's size is copied exactly")
    let back = try #require(try composite("paste").evaluate(Inputs(["a": .tensor(crop), "b": .tensor(Tensor(zeros: [1, 8, 8])), "box": box]),
                                                            frame: 0, context: .standalone())["image"]?.tensor)
    #expect(back[0, 4, 3] == frame[0, 4, 3] && back[0, 0, 0] == 0)
}

@Test func sideBySideScalesToTheFirstHeightAndFillsTheGap() throws {
    let a = Tensor(repeating: 1, shape: [1, 4, 3])
    let b = Tensor(repeating: 0.25, shape: [1, 2, 2]) // scaled to 4×4
    let out = try composite("side-by-side").evaluate(Inputs(["a": .tensor(a), "b": .tensor(b)]), frame: 0, context: .standalone())
    let img = try #require(out["image"]?.tensor)
    #expect(img.shape == [1, 4, 3 + 2 + 4])
    #expect(img[0, 1, 2] == 1 && img[0, 1, 3] == 0.5 && img[0, 1, 4] == 0.5 && img[0, 3, 8] == 0.25)
}

@Test func pasteBlendsTheScaledCropIntoItsBoxThroughTheMask() throws {
    let frame = Tensor(zeros: [1, 6, 6])
    let crop = Tensor(repeating: 1, shape: [1, 2, 2])
    var mask = Tensor(repeating: 1, shape: [1, 6, 6])
    mask[0, 2, 2] = 0.5
    let out = try composite("paste").evaluate(Inputs(["a": .tensor(crop), "b": .tensor(frame), "mask": .tensor(mask),
                                                      "box": .list([.number(1), .number(1), .number(5), .number(5)])]),
                                              frame: 0, context: .standalone())
    let img = try #require(out["image"]?.tensor)
    #expect(img[0, 0, 0] == 0 && img[0, 5, 5] == 0, "outside the box stays")
    #expect(img[0, 1, 1] == 1 && img[0, 4, 4] == 1, "inside the box takes the crop")
    #expect(img[0, 2, 2] == 0.5, "the mask weighs the blend")
}

@Test func overRejectsMismatchedShapes() throws {
    #expect(throws: OperatorError.self) {
        try composite("over").evaluate(Inputs(["a": .tensor(Tensor(zeros: [3, 2, 2])), "b": .tensor(Tensor(zeros: [3, 2, 3]))]),
                                       frame: 0, context: .standalone())
    }
}
