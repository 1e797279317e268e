import Foundation
import PGFlow
import PGKernels
@testable import PGNodes
import PGTensor
import Testing

/// PoseRefine: one correction per frame (from meta), zero at the start, applied only to its frame,
/// and its gradient lands in its frame's row (the kernel's VJP is checked in RigidMotionTests).
@Test func poseRefineMovesOnlyItsFrameAndStartsAtIdentity() throws {
    let op = try PoseRefine(params: Params([:], baseDirectory: shippedCatalog))
    let meta = Inputs(["meta": .record(["frame_count": .number(3)])])
    var motion = try #require(try op.initialParameters(meta, context: .standalone())["motion"])
    #expect(motion.shape == [3, 6] && motion.scalars.allSatisfy { $0 == 0 })
    let g = SplatScenes.gaussians(count: 12, channels: 3, seed: 4)
    func run(_ t: Int) throws -> ([String: Value], Saved) {
        try op.forward(Inputs(["gaussians": .record(g)], parameters: ["motion": motion]), frame: t, context: .standalone())
    }
    #expect(try run(0).0["gaussians"]?["means"] == g["means"], "no correction, no change")
    motion.scalars[6 * 1 + 3] = 0.25                          // frame 1: τ.x
    #expect(try run(0).0["gaussians"]?["means"] == g["means"])
    let moved = try #require(try run(1).0["gaussians"]?["means"]?.tensor)
    let before = try #require(g["means"]?.tensor)
    #expect(zip(moved.scalars, before.scalars).enumerated().allSatisfy { i, p in abs(p.0 - p.1 - (i % 3 == 0 ? 0.25 : 0)) < 1e-6 })
    let (_, saved) = try run(1)
    let cot: Value = .record(["means": .tensor(Tensor(repeating: 1, shape: before.shape))])
    let grads = try op.vjp(["gaussians": cot], saved: saved, inputs: Inputs(["gaussians": .record(g)], parameters: ["motion": motion]),
                           frame: 1, context: .standalone())
    let row = try #require(grads.parameters["motion"])
    #expect(row.scalars[6 * 1 + 3] == 12 && row.scalars[6 * 0 + 3] == 0 && row.scalars[6 * 2 + 3] == 0, "\(row.scalars)")
}
