import Foundation
import PGFlow
import PGNodes
import PGTensor

/// `pgbench editor`: what EditorCall adds around an editor, per frame at 512² — writing the frame
/// (and source) as .npy, the JSON request and reply, the plugin reading and writing its files,
/// and reading the result back — next to the editor's own compute time, which the plugin reports.
/// Every editor runs in one worker for all frames, as in a graph run.
enum EditorBench {
    static func run(_ arguments: [String]) {
        var frames = 20
        var size = 512
        var editors = ["echo", "style", "opencv", "lut"]
        var i = 0
        func value() -> String {
            i += 1
            guard i < arguments.count else { ConvBench.fail("\(arguments[i - 1]) needs a value") }
            return arguments[i]
        }
        while i < arguments.count {
            switch arguments[i] {
            case "--frames": frames = max(1, Int(value()) ?? 20)
            case "--size": size = max(32, Int(value()) ?? 512)
            case "--editors": editors = value().split(separator: ",").map(String.init)
            case "-h", "--help":
                print("pgbench editor [--frames 20] [--size 512] [--editors echo,style,opencv,lut]"); return
            default: ConvBench.fail("unknown option \(arguments[i])")
            }
            i += 1
        }
        guard let nodes = Catalog.defaultDirectory(executable: URL(fileURLWithPath: CommandLine.arguments[0]).absoluteURL,
                                                   environment: ProcessInfo.processInfo.environment),
              // The test plugins (echo: the protocol alone) sit beside the catalog in a checkout.
              let catalog = try? Catalog.load(nodes, pluginFolders: [nodes.deletingLastPathComponent().appendingPathComponent("Tests/Fixtures/plugins")]
                                              + (ProcessInfo.processInfo.environment["PGFLOW_PLUGIN_PATH"] ?? "").split(separator: ":").map { URL(fileURLWithPath: String($0)) }) else { ConvBench.fail("cannot find the node catalog (Nodes/); set PGFLOW_NODES") }
        let python = PluginHost.defaultPython(catalogDirectory: catalog.directory, environment: ProcessInfo.processInfo.environment)
        let trace = ProcessInfo.processInfo.environment["TRACE"] != nil
        let host = PluginHost(catalog: catalog.plugins, python: python, threads: ProcessInfo.processInfo.activeProcessorCount,
                              log: { p, line in if trace { print("[\(p)] \(line)") } })
        defer { host.shutdown() }
        let context = RunContext(nodeID: "edit", nodeType: "EditorCall", graphDirectory: nodes, plugins: host)
        let lut = FileManager.default.temporaryDirectory.appendingPathComponent("pgbench-\(getpid()).cube")
        defer { try? FileManager.default.removeItem(at: lut) }
        try? writeWarmLUT(lut)

        var rng = SplitMix64(seed: 5)
        let images = (0..<min(frames, 4)).map { _ in Tensor(shape: [3, size, size], scalars: (0..<(3 * size * size)).map { _ in Float.random(in: 0...1, using: &rng) }) }
        print("EditorCall per frame at \(size)², \(frames) frames after 2 warm-up frames (worker start and model load);")
        print("image and source both sent. Times in ms; 'editor' is the compute time the plugin reports,")
        print("'overhead' is everything else: pgflow's .npy files, IPC, the plugin reading and writing its files.\n")
        // pgflow's own share of the overhead: writing one frame as .npy [H, W, C] and reading it back.
        let probe = URL(fileURLWithPath: access("/dev/shm", W_OK) == 0 ? "/dev/shm" : NSTemporaryDirectory())
            .appendingPathComponent("pgbench-\(getpid()).npy")
        var writeTimes: [Double] = [], readTimes: [Double] = []
        for k in 0..<max(frames, 5) {
            let t0 = Date()
            _ = FileManager.default.createFile(atPath: probe.path, contents: images[k % images.count].npyDataHWC())
            let t1 = Date()
            _ = try? Tensor(npyHWC: Data(contentsOf: probe, options: .alwaysMapped))
            let t2 = Date()
            try? FileManager.default.removeItem(at: probe)
            writeTimes.append(t1.timeIntervalSince(t0)); readTimes.append(t2.timeIntervalSince(t1))
        }
        print("pgflow's side, median of \(writeTimes.count): write one frame \(ms(median(writeTimes))) ms, read one back \(ms(median(readTimes))) ms\n")
        print("| editor | per frame | editor | overhead | overhead / editor |")
        print("| --- | ---: | ---: | ---: | ---: |")
        for name in editors {
            guard let manifest = catalog.plugins[name] else { print("| \(name) | not in the catalog | | | |"); continue }
            let params: JSON = name == "lut" ? .object([("lut", .string(lut.path))]) : .object([])
            let op: EditorCall
            do {
                op = try EditorCall(params: Params(["plugin": .string(name), "params": params, "seed": .int(0)], baseDirectory: nodes))
            } catch { print("| \(name) | \(error) | | | |"); continue }
            func edit(_ t: Int) throws {
                let image = images[t % images.count]
                _ = try op.evaluate(Inputs(["image": .tensor(image), "source": .tensor(image)]), frame: t, context: context)
            }
            do {
                try edit(0); try edit(1)
                let before = host.usage(name)
                let start = Date()
                for t in 0..<frames { try edit(t) }
                let wall = Date().timeIntervalSince(start) / Double(frames)
                let after = host.usage(name)
                // A built-in editor reports nothing: all its time is its own.
                let own = manifest.builtin ? wall : (after.reported - before.reported) / Double(frames)
                let overhead = wall - own
                print("| \(name) | \(ms(wall)) | \(ms(own)) | \(ms(overhead)) | \(String(format: "%.1f%%", 100 * overhead / max(own, 1e-9))) |")
            } catch {
                print("| \(name) | failed: \(String("\(error)".prefix(120))) | | | |")
            }
        }
    }

    static func ms(_ s: Double) -> String { String(format: "%.1f", s * 1000) }
    static func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }

    static func writeWarmLUT(_ url: URL) throws {
        var lines = ["LUT_3D_SIZE 17"]
        for b in 0..<17 { for g in 0..<17 { for r in 0..<17 {
            lines.append("\(min(1, Double(r) / 16 * 1.2)) \(Double(g) / 16) \(Double(b) / 16 * 0.8)")
        } } }
        try lines.joined(separator: "\n").write(to: url, atomically: true, encoding: .utf8)
    }
}
