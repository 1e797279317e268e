import Foundation
import PGFlow
import PGMedia
import PGNodes
import PGReport
import PGTensor
import Testing

let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].first { FileManager.default.isExecutableFile(atPath: $0) }

/// A small trained run: a renderer fitted to six photos, with a Metrics node and a loss history.
struct TrainedRun {
    let dir: URL
    let graph: Graph
    let catalog: Catalog
    var cache: URL { dir.appendingPathComponent("cache") }

    init() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("pgflow-report-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("frames"), withIntermediateDirectories: true)
        for t in 0..<6 {
            var img = Tensor(zeros: [3, 24, 24])
            for y in 0..<24 { for x in 0..<24 {
                img[0, y, x] = Float(x) / 24; img[1, y, x] = Float((y + t * 2) % 24) / 24; img[2, y, x] = 0.4
            } }
            try PNGImage.write(img, to: dir.appendingPathComponent(String(format: "frames/f%02d.png", t)))
        }
        try Data("""
        {"pgflow": 1, "name": "fit", "vars": {"out": "out"},
         "nodes": {
           "photo":   {"type": "VideoSource", "params": {"path": "frames"}},
           "noise":   {"type": "Noise", "params": {"channels": 4, "width": 24, "height": 24, "seed": 2}},
           "render":  {"type": "NeuralRenderer", "in": {"features": "noise.image"}, "params": {"channels": 4, "hidden": [8], "seed": 1}},
           "loss":    {"type": "Loss", "in": {"image": "render.rgb", "target": "photo.frames"}, "params": {"w_l1": 1, "w_dssim": 0.2}},
           "metrics": {"type": "Metrics", "in": {"image": "render.rgb", "reference": "photo.frames"}, "params": {"path": "out/metrics.json", "label": "fit"}}
         },
         "stages": [{"name": "fit", "optimize": {"loss": "loss.loss", "train": ["render"], "steps": 25, "lr": 0.02, "eps": 1e-8,
                     "history": "out/loss.csv"}}],
         "outputs": ["metrics.metrics"]}
        """.utf8).write(to: dir.appendingPathComponent("fit.json"))
        catalog = try Catalog.load(repository.appendingPathComponent("Nodes"))
        graph = try Graph.load(dir.appendingPathComponent("fit.json"), catalog: catalog)
        _ = try Engine(graph: graph, catalog: catalog, operators: Registry.operators, cacheDirectory: dir.appendingPathComponent("cache")).run()
    }
    func remove() { try? FileManager.default.removeItem(at: dir) }
}

@Suite(.serialized) struct ReportTests {
    @Test func aReportShowsCurvesMetricsFramesAndNodesFromTheRunsFiles() throws {
        let run = try TrainedRun()
        defer { run.remove() }
        let r = try ReportBuilder.build(graph: run.graph, catalog: run.catalog, cacheDirectory: run.cache)
        let d = r.data
        #expect(d.stages.count == 1 && d.stages[0].rows.count == 25 && d.stages[0].source == "out/loss.csv", "\(d.stages.map(\.source))")
        #expect(d.stages[0].terms.contains("terms.l1"))
        #expect(d.metrics.count == 1 && d.metrics[0].source == "out/metrics.json" && d.metrics[0].values["psnr"] != nil)
        #expect(d.frames?.frames == [0, 2, 3, 5] && d.frames?.columns.count == 2, "\(String(describing: d.frames))")
        #expect(r.images["frame-0-0"] != nil && r.images["frame-1-5"] != nil && r.images["strip-1"] != nil)
        #expect(d.nodes.first { $0.id == "render" }?.status == "cached")
        #expect(d.nodes.first { $0.id == "photo" }.map { $0.cacheEntries == 7 && $0.cacheBytes > 0 } == true, "6 frames and meta")
        // Run through the engine, not `pgflow exec`: no run log, and the page says so.
        #expect(d.problems.count == 1 && d.problems[0].contains("No run log"), "\(d.problems)")
        let page = ReportPage.html(d, images: r.images, graphSVG: r.graphSVG)
        #expect(page.contains("stage fit: 25 steps") && page.contains("data:image/png;base64,"))
        #expect(!page.contains("<script") && !page.contains("http://") || page.contains("xmlns=\"http://www.w3.org/2000/svg\""))
        // The numbers on the page are the JSON's: the same psnr, formatted.
        let psnr = d.metrics[0].values["psnr"]!
        #expect(page.contains(String(format: "%.4g", psnr)))
    }

    @Test func missingAndTruncatedFilesAreNamedAndTheCacheFillsIn() throws {
        let run = try TrainedRun()
        defer { run.remove() }
        let csv = run.dir.appendingPathComponent("out/loss.csv")
        let text = try Data(contentsOf: csv)
        try text.prefix(text.count * 2 / 3).write(to: csv)   // cut mid-row
        let json = run.dir.appendingPathComponent("out/metrics.json")
        try Data(try Data(contentsOf: json).prefix(40)).write(to: json)
        let r = try ReportBuilder.build(graph: run.graph, catalog: run.catalog, cacheDirectory: run.cache)
        let problems = r.data.problems.joined(separator: "\n")
        #expect(problems.contains("loss.csv is truncated or damaged at line") || problems.contains("loss.csv ends in the middle of a line"), "\(problems)")
        #expect(problems.contains("metrics.json is not readable JSON"), "\(problems)")
        #expect(r.data.stages.first?.source == "the cache" && r.data.stages.first?.rows.count == 25)
        #expect(r.data.metrics.first?.source == "the cache")
        try FileManager.default.removeItem(at: csv)
        try FileManager.default.removeItem(at: run.cache)
        let bare = try ReportBuilder.build(graph: run.graph, catalog: run.catalog, cacheDirectory: run.cache)
        let all = bare.data.problems.joined(separator: "\n")
        #expect(all.contains("loss.csv is missing") && all.contains("has no result in the cache"), "\(all)")
        #expect(ReportPage.html(bare.data, images: bare.images, graphSVG: bare.graphSVG).contains("What is missing"))
    }

    @Test(.enabled(if: chromium != nil, "needs Chromium (apt-get install chromium; CI installs it)"))
    func chromiumLoadsThePageWithoutErrorsAndDrawsCurvesAndFrames() throws {
        let run = try TrainedRun()
        defer { run.remove() }
        let r = try ReportBuilder.build(graph: run.graph, catalog: run.catalog, cacheDirectory: run.cache)
        let page = run.dir.appendingPathComponent("report.html"), shot = run.dir.appendingPathComponent("shot.png")
        try Data(ReportPage.html(r.data, images: r.images, graphSVG: r.graphSVG).utf8).write(to: page)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: chromium!)
        p.arguments = ["--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr", "--v=0",
                       "--user-data-dir=\(run.dir.appendingPathComponent("chrome").path)",
                       "--window-size=1200,1600", "--screenshot=\(shot.path)", page.absoluteString]
        let errors = Pipe()
        p.standardError = errors
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        let log = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "\(log)")
        let console = log.split(separator: "\n").filter { $0.contains("CONSOLE") || $0.contains("Uncaught") || $0.contains("Failed to load") }
        #expect(console.isEmpty, "console: \(console)")
        let image = try PNGImage.read(shot).pixels
        let (h, w) = (image.shape[1], image.shape[2])
        // The first series' colour (#1f77b4) is drawn: the curves are there.
        var curve = 0, colourful = Set<Int>()
        for y in 0..<h { for x in 0..<w {
            let (r8, g8, b8) = (Int(image[0, y, x] * 255), Int(image[1, y, x] * 255), Int(image[2, y, x] * 255))
            if abs(r8 - 31) < 12 && abs(g8 - 119) < 12 && abs(b8 - 180) < 12 { curve += 1 }
            colourful.insert((r8 / 8) << 10 | (g8 / 8) << 5 | b8 / 8)
        } }
        #expect(curve > 100, "curve pixels: \(curve)")
        #expect(colourful.count > 300, "the frames add many colours: \(colourful.count)")
    }
}
