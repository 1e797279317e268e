import Foundation
import PGFlow
import PGKernels
import PGNodes
import PGTensor

/// `pgbench expression`: is the built-in expression encoder (ExprLoss) moved by expression and
/// not by style or colour? On a real clip it runs MediaPipe (landmarks, blendshapes), the
/// Tracker's fit (head boxes), style transfer and OpenCV's stylization through the plugins, then
/// compares, on the head crops, the encoder's distance between (a) each frame and its stylised or
/// recoloured self, and (b) pairs of frames whose MediaPipe blendshapes differ most / least.
/// The same numbers for the crop's raw luminance pixels show what the encoder buys.
enum ExpressionBench {
    static func run(_ arguments: [String]) {
        var video = "data/single_face.mp4", size = 256
        var settings = ExpressionEncoder.Settings()
        var i = 0
        while i < arguments.count {
            switch arguments[i] {
            case "--video" where i + 1 < arguments.count: i += 1; video = arguments[i]
            case "--size" where i + 1 < arguments.count: i += 1; size = Int(arguments[i]) ?? size
            case "--cells" where i + 1 < arguments.count: i += 1; settings.cells = Int(arguments[i]) ?? settings.cells
            case "--blur" where i + 1 < arguments.count: i += 1; settings.blur = Double(arguments[i]) ?? settings.blur
            default: print("usage: pgbench expression [--video data/single_face.mp4] [--size 256] [--cells 16] [--blur 1.5]"); exit(1)
            }
            i += 1
        }
        do { try measure(video: URL(fileURLWithPath: video).standardizedFileURL, size: size, settings: settings) } catch {
            print("pgbench expression: \(error)")
            exit(1)
        }
    }

    static func measure(video: URL, size: Int, settings: ExpressionEncoder.Settings) throws {
        guard let nodes = Catalog.defaultDirectory(executable: URL(fileURLWithPath: CommandLine.arguments[0]).absoluteURL,
                                                   environment: ProcessInfo.processInfo.environment) else {
            print("pgbench expression: cannot find the node catalog (Nodes/)"); exit(1)
        }
        let catalog = try Catalog.load(nodes)
        // Kept between runs (plugin results are cached), so trying encoder settings is quick.
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("pgbench-expression")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        let text = """
        {"pgflow": 1, "name": "expression-bench", "vars": {"out": "out"},
         "nodes": {
          "src": {"type": "VideoSource", "params": {"path": "\(video.path)", "size": [\(size), \(size)], "fit": "crop"}},
          "detect": {"type": "FaceLandmarks", "in": {"image": "src.frames"}},
          "detections": {"type": "Collect", "in": {"value": "detect.points"}},
          "track": {"type": "Tracker", "in": {"meta": "src.meta", "landmarks": "detections.stack"}, "params": {"mode": "fit", "head_scale": 1.3}},
          "style": {"type": "EditorCall", "in": {"image": "src.frames"}, "params": {"plugin": "style", "params": {"style": "19"}}},
          "style10": {"type": "EditorCall", "in": {"image": "src.frames"}, "params": {"plugin": "style", "params": {"style": "10"}}},
          "painted": {"type": "EditorCall", "in": {"image": "src.frames"}, "params": {"plugin": "opencv", "params": {"filter": "stylization"}}}
         },
         "outputs": ["style.image", "style10.image", "painted.image", "track.head_box", "detect.blendshapes"]}
        """
        let url = scratch.appendingPathComponent("bench.json")
        try Data(text.utf8).write(to: url)
        let graph = try Graph.load(url, catalog: catalog)
        let engine = try Engine(graph: graph, catalog: catalog, operators: Registry.operators,
                                cacheDirectory: scratch.appendingPathComponent("cache"), options: RunOptions(threads: 2))
        let summary = try engine.run()
        let n = summary.frameCount ?? 0
        func value(_ ref: String, _ t: Int) throws -> Value {
            guard let v = engine.cachedValue(PortRef(parsing: ref)!, frame: t) else { throw RunError("\(ref) of frame \(t) is missing") }
            return v
        }
        var styled10: [Tensor] = []
        var source: [Tensor] = [], styled: [Tensor] = [], painted: [Tensor] = [], graded: [Tensor] = [], boxes: [SIMD4<Double>] = [], shapes: [[Float]] = []
        for t in 0..<n {
            let frame = try value("src.frames", t).tensor!
            source.append(frame)
            styled.append(try value("style.image", t).tensor!)
            styled10.append(try value("style10.image", t).tensor!)
            painted.append(try value("painted.image", t).tensor!)
            // A colour grade: warmer, darker shadows, less blue.
            var g = frame
            let plane = g.count / 3
            for k in 0..<plane {
                g.scalars[k] = min(1, 1.1 * g.scalars[k] + 0.05)
                g.scalars[plane + k] = 0.9 * g.scalars[plane + k] * g.scalars[plane + k] + 0.1 * g.scalars[plane + k]
                g.scalars[2 * plane + k] = 0.7 * g.scalars[2 * plane + k]
            }
            graded.append(g)
            let b = try value("track.head_box", t).tensor!.scalars.map(Double.init)
            boxes.append(SIMD4(b[0], b[1], b[2], b[3]))
            shapes.append(try value("detect.blendshapes", t).tensor!.scalars)
        }
        func features(_ img: Tensor, _ t: Int) -> [Float] { ExpressionEncoder.encode(img, box: boxes[t], settings: settings).features }
        /// The same crop as the encoder sees, as plain luminance pixels (no blur, no features).
        func pixels(_ img: Tensor, _ t: Int) -> [Float] { ExpressionEncoder.lumaCrop(img, box: boxes[t], size: settings.size) }
        func d(_ a: [Float], _ b: [Float]) -> Double { zip(a, b).map { Double($0 - $1) * Double($0 - $1) }.reduce(0, +) / Double(a.count) }
        let fs = (0..<n).map { features(source[$0], $0) }, ps = (0..<n).map { pixels(source[$0], $0) }
        var pairs: [(blend: Double, e: Double, p: Double)] = []
        for t in 0..<n { for u in (t + 1)..<n where u - t >= 2 {
            let b = zip(shapes[t], shapes[u]).map { Double($0 - $1) * Double($0 - $1) }.reduce(0, +).squareRoot()
            pairs.append((b, d(fs[t], fs[u]), d(ps[t], ps[u])))
        } }
        pairs.sort { $0.blend < $1.blend }
        let q = max(1, pairs.count / 4)
        let similar = Array(pairs.prefix(q)), different = Array(pairs.suffix(q))
        func mean(_ xs: [Double]) -> Double { xs.reduce(0, +) / Double(max(1, xs.count)) }
        func correlation(_ a: [Double], _ b: [Double]) -> Double {
            let ma = mean(a), mb = mean(b)
            let cov = zip(a, b).map { ($0 - ma) * ($1 - mb) }.reduce(0, +)
            let va = a.map { ($0 - ma) * ($0 - ma) }.reduce(0, +), vb = b.map { ($0 - mb) * ($0 - mb) }.reduce(0, +)
            return cov / max(1e-300, (va * vb).squareRoot())
        }
        let style = (0..<n).map { (d(fs[$0], features(styled[$0], $0)), d(ps[$0], pixels(styled[$0], $0))) }
        let style10 = (0..<n).map { (d(fs[$0], features(styled10[$0], $0)), d(ps[$0], pixels(styled10[$0], $0))) }
        let paint = (0..<n).map { (d(fs[$0], features(painted[$0], $0)), d(ps[$0], pixels(painted[$0], $0))) }
        let grade = (0..<n).map { (d(fs[$0], features(graded[$0], $0)), d(ps[$0], pixels(graded[$0], $0))) }
        let eSimilar = mean(similar.map(\.e)), pSimilar = mean(similar.map(\.p))
        print("Built-in expression encoder on \(video.lastPathComponent): \(n) frames at \(size)², head crops 1.3× the fitted head, \(settings.size)² crop, \(settings.cells)² cells, blur σ \(settings.blur)")
        print("Distances are mean squared differences; each column is also given relative to frame pairs with similar expressions.")
        print("")
        print("| pair of images | encoder | ÷ similar | raw luminance | ÷ similar |")
        print("| --- | --- | --- | --- | --- |")
        func row(_ name: String, _ e: Double, _ p: Double) {
            print("| \(name) | \(String(format: "%.4f", e)) | \(String(format: "%.2f", e / eSimilar)) | \(String(format: "%.5f", p)) | \(String(format: "%.2f", p / pSimilar)) |")
        }
        row("frames with similar expressions (lowest 25% blendshape distance)", eSimilar, pSimilar)
        row("frames with different expressions (highest 25%)", mean(different.map(\.e)), mean(different.map(\.p)))
        row("a frame and its style transfer (style 19)", mean(style.map(\.0)), mean(style.map(\.1)))
        row("a frame and its style transfer (style 10, Graphs/edit.json's default)", mean(style10.map(\.0)), mean(style10.map(\.1)))
        row("a frame and its OpenCV stylization", mean(paint.map(\.0)), mean(paint.map(\.1)))
        row("a frame and its colour grade", mean(grade.map(\.0)), mean(grade.map(\.1)))
        print("")
        print("correlation with MediaPipe's blendshape distance over \(pairs.count) frame pairs: encoder \(String(format: "%.2f", correlation(pairs.map(\.blend), pairs.map(\.e)))), raw pixels \(String(format: "%.2f", correlation(pairs.map(\.blend), pairs.map(\.p))))")
    }
}
