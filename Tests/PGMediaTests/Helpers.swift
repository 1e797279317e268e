import Foundation
import PGTensor
@testable import PGMedia

/// A fresh folder under the system temp folder, removed by `remove()`.
struct TempFolder {
    let url: URL
    init(_ label: String = #function) {
        let name = "pgmedia-\(label.filter { $0.isLetter || $0.isNumber })-\(UUID().uuidString.prefix(8))"
        url = FileManager.default.temporaryDirectory.appendingPathComponent(name)
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    func file(_ name: String) -> URL { url.appendingPathComponent(name) }
    /// Everything in the folder, hidden names included (temporary files are hidden).
    func contents(_ sub: String? = nil) -> [String] {
        let dir = sub.map { url.appendingPathComponent($0) } ?? url
        return ((try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []).sorted()
    }
    func remove() { try? FileManager.default.removeItem(at: url) }
}

enum Synthetic {
    /// Smooth moving colour fields: what natural video looks like to a codec, in a few lines.
    static func frame(_ t: Int, width w: Int, height h: Int, channels: Int = 3, rim: Float = 1.5) -> Tensor {
        var out = Tensor(zeros: [channels, h, w])
        let tt = Float(t)
        for y in 0..<h {
            for x in 0..<w {
                let u = Float(x) / Float(w), v = Float(y) / Float(h)
                let r = 0.5 + 0.35 * sin(2 * .pi * (1.1 * u + 0.04 * tt))
                let g = 0.5 + 0.35 * cos(2 * .pi * (0.8 * v - 0.03 * tt))
                let b = 0.5 + 0.3 * sin(2 * .pi * (0.7 * (u + v) + 0.05 * tt))
                var values = [r, g, b, 0.25 + 0.5 * u]
                // A saturated disc with a soft (about 1.5 px) rim moving across: colour edges are
                // where 4:2:0 loses detail and 4:4:4 keeps it, as around faces and hair.
                let cx = Float(w) * (0.3 + 0.015 * tt), cy = Float(h) * 0.5
                let d = (Float(x) - cx) * (Float(x) - cx) + (Float(y) - cy) * (Float(y) - cy)
                let edge = min(max((sqrt(d) - Float(h) * 0.3) / rim + 0.5, 0), 1)   // 0 inside, 1 outside
                let disc: [Float] = [0.9, 0.15, 0.2]
                for c in 0..<3 { values[c] = disc[c] * (1 - edge) + values[c] * edge }
                for c in 0..<channels { out[c, y, x] = values[c] }
            }
        }
        return out
    }

    static func frames(_ n: Int, width: Int, height: Int, rim: Float = 1.5) -> [Tensor] {
        (0..<n).map { frame($0, width: width, height: height, rim: rim) }
    }
}

/// Peak signal-to-noise ratio in dB for images in 0…1.
func psnr(_ a: Tensor, _ b: Tensor) -> Double {
    precondition(a.shape == b.shape, "psnr of \(a.shape) and \(b.shape)")
    var se = 0.0
    for i in 0..<a.count { let d = Double(a.scalars[i] - b.scalars[i]); se += d * d }
    let mse = se / Double(a.count)
    return mse == 0 ? .infinity : 10 * log10(1 / mse)
}

/// Writes frames with the given settings and returns the destination.
@discardableResult
func encode(_ frames: [Tensor], to url: URL, _ settings: EncoderSettings = EncoderSettings()) throws -> VideoWriter {
    let writer = try VideoWriter(url, settings: settings)
    for f in frames { try writer.append(f) }
    try writer.finish()
    return writer
}

func decodeAll(_ url: URL, size: ImageSize? = nil, fit: FitMode = .crop) throws -> [VideoFrame] {
    let reader = try VideoReader(url, size: size, fit: fit)
    var out: [VideoFrame] = []
    while let f = try reader.next() { out.append(f) }
    return out
}

/// Runs `body`, which must throw a MediaError, and returns that error (nil if it did not throw one).
func mediaError(_ body: () throws -> Void) -> MediaError? {
    do { try body() } catch let e as MediaError { return e } catch { return nil }
    return nil
}
