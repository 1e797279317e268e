import Foundation
import PGFlow
import PGTensor

/// Reads a pinhole camera from a JSON file into a `Camera` record. See `Nodes/CameraFile.json`.
///
/// The file is an object with numbers `fx fy cx cy` (pixels), integers `width height` and
/// `world_to_camera`, four rows of four numbers (OpenCV axes: x right, y down, z forward;
/// p_cam = R·p + t). Other keys are ignored, so files from other tools load as long as they
/// carry these.
public struct CameraFile: Operator {
    public static let type = "CameraFile"
    public static let version = 1

    let url: URL

    public init(params: Params) throws {
        url = try params.url("path")
    }

    public func evaluate(_ inputs: Inputs, frame: Int?, context: RunContext) throws -> [String: Value] {
        ["camera": .record(try Self.read(url))]
    }

    /// The `Camera` record in a camera JSON file.
    public static func read(_ url: URL) throws -> [String: Value] {
        let path = url.path
        func fail(_ what: String) -> OperatorError { OperatorError("Cannot read the camera file '\(path)': \(what).") }
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw fail(FileManager.default.fileExists(atPath: path) ? "it cannot be opened" : "no such file")
        }
        let root: JSON
        do { root = try JSONDocument.parse(data, file: path).root } catch {
            throw fail("it is not valid JSON (\(error))")
        }
        guard root.objectMembers != nil else { throw fail("it should hold a JSON object") }
        func number(_ key: String) throws -> Double {
            guard let v = root[key] else { throw fail("the key '\(key)' is missing") }
            guard let d = v.double, d.isFinite else { throw fail("'\(key)' should be a number, got \(v.text)") }
            return d
        }
        let fx = try number("fx"), fy = try number("fy"), cx = try number("cx"), cy = try number("cy")
        guard fx > 0, fy > 0 else { throw fail("fx and fy should be positive, got \(fx) and \(fy)") }
        let width = try number("width"), height = try number("height")
        guard width >= 1, height >= 1, width.rounded() == width, height.rounded() == height else {
            throw fail("width and height should be positive integers, got \(width) and \(height)")
        }
        guard let matrix = root["world_to_camera"] else { throw fail("the key 'world_to_camera' is missing") }
        let shapeError = fail("'world_to_camera' should be four rows of four numbers, got \(matrix.text)")
        guard let rows = matrix.array, rows.count == 4 else { throw shapeError }
        var m: [Float] = []
        for row in rows {
            guard let r = row.array, r.count == 4 else { throw shapeError }
            for v in r {
                guard let d = v.double, d.isFinite else { throw shapeError }
                m.append(Float(d))
            }
        }
        guard abs(m[12]) < 1e-6, abs(m[13]) < 1e-6, abs(m[14]) < 1e-6, abs(m[15] - 1) < 1e-6 else {
            throw fail("the last row of 'world_to_camera' should be [0, 0, 0, 1], got \(Array(m[12...]))")
        }
        return ["fx": .number(fx), "fy": .number(fy), "cx": .number(cx), "cy": .number(cy),
                "width": .number(width), "height": .number(height),
                "world_to_camera": .tensor(Tensor(shape: [4, 4], scalars: m))]
    }
}
