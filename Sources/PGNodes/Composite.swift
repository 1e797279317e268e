import PGFlow
import PGKernels
import PGTensor

/// Combines images per frame: side by side (for comparison videos), one over another through a
/// mask, a box cut out and scaled to a square (the head crop of face-aware editing), or an edited
/// face crop pasted back into its box through a head mask (PortraitGen §3.3). See
/// `Nodes/Composite.json`.
public struct Composite: Operator {
    public static let type = "Composite"
    public static let version = 1

    enum Mode: String { case sideBySide = "side-by-side", over, paste, crop }
    let mode: Mode
    let gap: Int
    let background: [Float]
    let size: Int

    public init(params: Params) throws {
        let m = try params.string("mode")
        guard let mode = Mode(rawValue: m) else { throw OperatorError("unknown mode \"\(m)\"") }
        self.mode = mode
        gap = try params.int("gap")
        background = try params.doubles("background").map(Float.init)
        size = try params.int("size")
    }

    public func evaluate(_ inputs: Inputs, frame: Int?, context: RunContext) throws -> [String: Value] {
        let a = try inputs.tensor("a")
        guard a.rank == 3 else { throw OperatorError("input 'a' should be an image [C, H, W], got \(a.shape)") }
        switch mode {
        case .sideBySide:
            var parts = [a]
            for port in ["b", "c"] { if let t = inputs[port]?.tensor { parts.append(t) } }
            return ["image": .tensor(try sideBySide(parts))]
        case .over:
            let b = try inputs.tensor("b")
            guard b.shape == a.shape else { throw OperatorError("'over' needs a and b of one shape, got \(a.shape) and \(b.shape)") }
            let mask = try maskFor(inputs, height: a.shape[1], width: a.shape[2])
            return ["image": .tensor(blend(a, over: b, mask: mask))]
        case .paste:
            let b = try inputs.tensor("b")
            let box = try boxFor(inputs, height: b.shape[1], width: b.shape[2])
            guard a.shape[0] == b.shape[0] else { throw OperatorError("crop a has \(a.shape[0]) channels, image b has \(b.shape[0])") }
            let mask = try maskFor(inputs, height: b.shape[1], width: b.shape[2])
            return ["image": .tensor(paste(a, into: b, box: box, mask: mask))]
        case .crop:
            let box = try boxFor(inputs, height: a.shape[1], width: a.shape[2])
            return ["image": .tensor(crop(a, box: box, size: size))]
        }
    }

    /// The box's pixels scaled to size × size (bilinear), what paste puts back.
    func crop(_ image: Tensor, box: (x0: Int, y0: Int, x1: Int, y1: Int), size: Int) -> Tensor {
        let c = image.shape[0], w = image.shape[2]
        let bw = box.x1 - box.x0, bh = box.y1 - box.y0
        var patch = Tensor(zeros: [c, bh, bw])
        for ch in 0..<c { for y in 0..<bh { for x in 0..<bw {
            patch.scalars[ch * bh * bw + y * bw + x] = image.scalars[ch * image.shape[1] * w + (box.y0 + y) * w + box.x0 + x]
        } } }
        return resized(patch, height: size, width: size)
    }

    /// Images laid left to right, each scaled to the first one's height, `gap` pixels apart.
    func sideBySide(_ images: [Tensor]) throws -> Tensor {
        let c = images[0].shape[0], h = images[0].shape[1]
        let scaled = try images.map { t -> Tensor in
            guard t.rank == 3, t.shape[0] == c else { throw OperatorError("side-by-side needs images with \(c) channels, got \(t.shape)") }
            if t.shape[1] == h { return t }
            let w = max(1, Int((Double(t.shape[2]) * Double(h) / Double(t.shape[1])).rounded()))
            return resized(t, height: h, width: w)
        }
        let width = scaled.reduce(0) { $0 + $1.shape[2] } + gap * (scaled.count - 1)
        var out = Tensor(zeros: [c, h, width])
        for ch in 0..<c {
            let fill = background.count == c ? background[ch] : (background.first ?? 0)
            for i in 0..<(h * width) { out.scalars[ch * h * width + i] = fill }
        }
        var x0 = 0
        for t in scaled {
            let w = t.shape[2]
            for ch in 0..<c { for y in 0..<h { for x in 0..<w {
                out.scalars[ch * h * width + y * width + x0 + x] = t.scalars[ch * h * w + y * w + x]
            } } }
            x0 += w + gap
        }
        return out
    }

    func resized(_ t: Tensor, height: Int, width: Int) -> Tensor {
        var out = Tensor(zeros: [t.shape[0], height, width])
        t.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                ImageOps.resizeBilinear(src, channels: t.shape[0], height: t.shape[1], width: t.shape[2],
                                        into: dst, height: height, width: width)
            }
        }
        return out
    }

    /// The mask as [H, W] weights; all ones when none is connected.
    func maskFor(_ inputs: Inputs, height: Int, width: Int) throws -> [Float] {
        guard let m = inputs["mask"]?.tensor else { return [Float](repeating: 1, count: height * width) }
        guard m.count == height * width else {
            throw OperatorError("mask has shape \(m.shape), expected [1, \(height), \(width)]")
        }
        return m.scalars.map { min(1, max(0, $0)) }
    }

    /// Box as integer pixel bounds [x0, y0, x1) × [y0, y1), clamped to the image.
    func boxFor(_ inputs: Inputs, height: Int, width: Int) throws -> (x0: Int, y0: Int, x1: Int, y1: Int) {
        let v = try inputs.value("box")
        let b: [Double]
        if let t = v.tensor { b = t.scalars.map(Double.init) }
        else if let l = v.list { b = l.compactMap(\.number) }
        else { throw OperatorError("box should be [x0, y0, x1, y1], got \(v.summary)") }
        guard b.count == 4 else { throw OperatorError("box should be [x0, y0, x1, y1], got \(b.count) numbers") }
        let x0 = max(0, Int(b[0].rounded())), y0 = max(0, Int(b[1].rounded()))
        let x1 = min(width, Int(b[2].rounded())), y1 = min(height, Int(b[3].rounded()))
        guard x1 > x0, y1 > y0 else { throw OperatorError("box \(b) is empty inside a \(width)×\(height) image") }
        return (x0, y0, x1, y1)
    }

    func blend(_ a: Tensor, over b: Tensor, mask: [Float]) -> Tensor {
        var out = b
        let plane = mask.count
        for ch in 0..<a.shape[0] {
            for i in 0..<plane {
                let m = mask[i]
                out.scalars[ch * plane + i] = a.scalars[ch * plane + i] * m + b.scalars[ch * plane + i] * (1 - m)
            }
        }
        return out
    }

    /// The crop is scaled to the box and blended in through the mask, so only the head changes.
    func paste(_ crop: Tensor, into image: Tensor, box: (x0: Int, y0: Int, x1: Int, y1: Int), mask: [Float]) -> Tensor {
        let c = image.shape[0], h = image.shape[1], w = image.shape[2]
        let bw = box.x1 - box.x0, bh = box.y1 - box.y0
        let patch = resized(crop, height: bh, width: bw)
        var out = image
        for ch in 0..<c { for y in 0..<bh { for x in 0..<bw {
            let i = (box.y0 + y) * w + box.x0 + x
            let m = mask[i]
            out.scalars[ch * h * w + i] = patch.scalars[ch * bh * bw + y * bw + x] * m + image.scalars[ch * h * w + i] * (1 - m)
        } } }
        return out
    }
}
