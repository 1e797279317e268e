import Foundation

/// Draws a report as one self-contained HTML page: inline CSS, inline SVG and PNG (data URIs), no
/// script and nothing fetched, so it opens anywhere, offline, and can be mailed as one file.
public enum ReportPage {
    /// - Parameters:
    ///   - images: PNG bytes by name: `frame-<column>-<frame>`, `strip-<column>`.
    ///   - graphSVG: the graph drawn by Graphviz, if it could be.
    public static func html(_ d: ReportData, images: [String: Data], graphSVG: String?) -> String {
        let e = SVGChart.escape
        var h = """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>pgflow report: \(e(d.graph))</title>
        <style>
        body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px auto; max-width: 1280px; color: #222; padding: 0 16px; }
        h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
        .meta { color: #555; font-size: 13px; } code { background: #f4f4f4; padding: 1px 4px; border-radius: 3px; font-size: 12px; }
        table { border-collapse: collapse; font-size: 13px; margin: 8px 0; } td, th { border: 1px solid #ddd; padding: 4px 8px; text-align: right; }
        th { background: #f6f6f6; } td.l, th.l { text-align: left; }
        .problems { background: #fff4e5; border: 1px solid #f0b45b; padding: 8px 12px; border-radius: 4px; }
        .frames { display: grid; gap: 6px; align-items: start; justify-content: start; } .frames img { width: 100%; image-rendering: pixelated; }
        .frames .head { font-size: 12px; color: #555; text-align: center; }
        .charts { display: flex; flex-wrap: wrap; gap: 12px; }
        #log:checked ~ .stages .linear { display: none; } #log:not(:checked) ~ .stages .logscale { display: none; }
        .frames img.strip { height: 200px; } .cached { color: #2a7d2a; } .willrun { color: #b25f00; } .graph svg { max-width: 100%; height: auto; }
        </style></head><body>
        <h1>pgflow report: \(e(d.graph))</h1>
        <div class="meta">
        """
        h += "graph <code>\(e(d.graphFile))</code> (SHA-256 <code>\(d.graphSHA256.prefix(16))…</code>), pgflow \(e(d.pgflow)), \(e(d.machine))<br>\n"
        if let c = d.command {
            h += "last run: <code>\(e(c))</code>"
            if let at = d.ranAt { h += " at \(e(at))" }
            if let s = d.runSeconds { h += ", \(String(format: "%.1f", s)) s" }
            if let x = d.runExit { h += x == 0 ? ", finished" : ", ended with exit status \(x)" }
            h += "<br>\n"
        }
        if let n = d.frameCount { h += "\(n) frames; " }
        h += "report made \(e(d.generated))</div>\n"
        if !d.problems.isEmpty {
            h += "<h2>What is missing</h2><div class=\"problems\"><ul>\n"
            for p in d.problems { h += "<li>\(e(p))</li>\n" }
            h += "</ul></div>\n"
        }

        // Loss curves, one chart per stage, linear or log by a CSS-only switch.
        h += "<h2>Loss curves</h2>\n"
        if d.stages.isEmpty {
            h += "<p>No optimize stage has a loss history (the graph trains nothing, or no stage has run yet).</p>\n"
        } else {
            h += "<input type=\"checkbox\" id=\"log\" checked> <label for=\"log\">log scale</label>\n<div class=\"stages charts\">\n"
            for s in d.stages {
                let series = s.terms.enumerated().compactMap { (j, name) -> SVGChart.Series? in
                    let pts = s.rows.enumerated().map { (x: Double($0 + 1), y: j < $1.count ? $1[j] : .nan) }
                    // Terms that are zero throughout (weights off) would only clutter the chart.
                    return pts.contains { $0.y != 0 && $0.y.isFinite } ? SVGChart.Series(name: name, points: pts) : nil
                }
                let title = "stage \(s.name): \(s.rows.count) steps\(s.complete ? "" : " (interrupted: last checkpoint)") — from \(s.source)"
                h += "<figure><figcaption>\(e(title))</figcaption>"
                h += "<div class=\"linear\">\(SVGChart.lines(series, yLabel: "loss"))</div>"
                h += "<div class=\"logscale\">\(SVGChart.lines(series, logY: true, yLabel: "loss"))</div></figure>\n"
            }
            h += "</div>\n"
        }

        h += "<h2>Metrics</h2>\n"
        if d.metrics.isEmpty {
            h += "<p>No Metrics node has a result in the cache.</p>\n"
        } else {
            let keys = ["psnr", "ssim", "l1", "flicker", "reference_flicker", "relative_flicker", "frames"]
            let extra = Set(d.metrics.flatMap(\.values.keys)).subtracting(keys).sorted()
            let columns = keys.filter { k in d.metrics.contains { $0.values[k] != nil } } + extra
            h += "<table><tr><th class=\"l\">node</th><th class=\"l\">label</th>" + columns.map { "<th>\(e($0))</th>" }.joined() + "<th class=\"l\">from</th></tr>\n"
            for m in d.metrics {
                h += "<tr><td class=\"l\">\(e(m.node))</td><td class=\"l\">\(e(m.label))</td>"
                h += columns.map { k in "<td>\(m.values[k].map(number) ?? "")</td>" }.joined()
                h += "<td class=\"l\">\(e(m.source))</td></tr>\n"
            }
            h += "</table>\n"
        }

        h += "<h2>Frames</h2>\n"
        if let f = d.frames, !f.frames.isEmpty {
            h += "<div class=\"frames\" style=\"grid-template-columns: 60px repeat(\(f.columns.count), minmax(0, 300px));\">\n<div></div>"
            h += f.columns.map { "<div class=\"head\">\(e($0))</div>" }.joined() + "\n"
            for t in f.frames {
                h += "<div class=\"head\">frame \(t)</div>"
                for c in f.columns.indices {
                    h += images["frame-\(c)-\(t)"].map { "<img alt=\"frame \(t), \(e(f.columns[c]))\" src=\"data:image/png;base64,\($0.base64EncodedString())\">" }
                        ?? "<div class=\"head\">not cached</div>"
                }
                h += "\n"
            }
            h += "</div>\n"
            if let row = f.stripRow {
                h += "<p class=\"meta\">Over time: row \(row) of every frame, stacked top to bottom (frame 0 at the top). Still content makes vertical lines; flicker shows as horizontal streaks.</p>\n"
                h += "<div class=\"frames\" style=\"grid-template-columns: 60px repeat(\(f.columns.count), minmax(0, 300px));\"><div class=\"head\">time ↓</div>"
                for c in f.columns.indices {
                    h += images["strip-\(c)"].map { "<img class=\"strip\" alt=\"row \(row) over time, \(e(f.columns[c]))\" src=\"data:image/png;base64,\($0.base64EncodedString())\">" }
                        ?? "<div class=\"head\">not cached</div>"
                }
                h += "</div>\n"
            }
        } else {
            h += "<p>No frames to show: the graph has no Metrics node with cached image and reference frames.</p>\n"
        }

        h += "<h2>Graph</h2>\n"
        h += graphSVG.map { "<div class=\"graph\">\($0)</div>\n" } ?? "<p>Graphviz (`dot`) is not installed, so the graph is not drawn (apt-get install graphviz).</p>\n"
        h += "<table><tr><th class=\"l\">node</th><th class=\"l\">type</th><th class=\"l\">cache</th><th>last run (s)</th><th>cache entries</th><th>cache size</th></tr>\n"
        for n in d.nodes {
            h += "<tr><td class=\"l\">\(e(n.id))</td><td class=\"l\">\(e(n.type))</td>"
            h += "<td class=\"l \(n.status == "cached" ? "cached" : "willrun")\">\(e(n.status))</td>"
            h += "<td>\(n.seconds.map { String(format: "%.2f", $0) } ?? "")</td><td>\(n.cacheEntries)</td><td>\(bytes(n.cacheBytes))</td></tr>\n"
        }
        let total = d.nodes.reduce(Int64(0)) { $0 + $1.cacheBytes }
        h += "<tr><th class=\"l\" colspan=\"5\">total</th><th>\(bytes(total))</th></tr></table>\n"
        h += "</body></html>\n"
        return h
    }

    static func number(_ v: Double) -> String {
        guard v.isFinite else { return v.isNaN ? "NaN" : (v > 0 ? "∞" : "−∞") }
        if v.rounded() == v && abs(v) < 1e6 { return String(Int(v)) }
        return String(format: abs(v) < 0.01 ? "%.3g" : "%.4g", v)
    }

    static func bytes(_ n: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB"]
        var v = Double(n), u = 0
        while v >= 1024 && u < units.count - 1 { v /= 1024; u += 1 }
        return u == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[u])
    }
}
