import Foundation

/// Line charts as SVG text: no script, no external font or stylesheet, so a report stays one
/// self-contained file and a test can read what was drawn.
public enum SVGChart {
    public struct Series: Sendable {
        public var name: String
        public var points: [(x: Double, y: Double)]
        public init(name: String, points: [(x: Double, y: Double)]) { self.name = name; self.points = points }
    }

    /// Colours of the series, in order (matplotlib's tab10, which people read easily).
    public static let palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]

    /// A chart of `series` over a shared x axis. With `logY`, values ≤ 0 cannot be drawn and are
    /// left out (a series with none left says so in the legend). Non-finite values are left out.
    public static func lines(_ series: [Series], width: Int = 640, height: Int = 300, logY: Bool = false,
                             xLabel: String = "step", yLabel: String = "") -> String {
        let left = 64.0, right = 16.0, top = 12.0, bottom = 40.0
        let legendHeight = 18.0 * Double((series.count + 2) / 3)
        let W = Double(width), H = Double(height) + legendHeight
        let plotW = W - left - right, plotH = Double(height) - top - bottom
        func usable(_ p: (x: Double, y: Double)) -> Bool { p.x.isFinite && p.y.isFinite && (!logY || p.y > 0) }
        let all = series.flatMap { $0.points.filter(usable) }
        var out = "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" width=\"\(width)\" height=\"\(Int(H))\" viewBox=\"0 0 \(width) \(Int(H))\" font-family=\"sans-serif\" font-size=\"11\">\n"
        out += "<rect x=\"0\" y=\"0\" width=\"\(width)\" height=\"\(Int(H))\" fill=\"white\"/>\n"
        guard let xMin0 = all.map(\.x).min(), let xMax0 = all.map(\.x).max(),
              let yMin0 = all.map(\.y).min(), let yMax0 = all.map(\.y).max() else {
            out += "<text x=\"\(width / 2)\" y=\"\(Int(H / 2))\" text-anchor=\"middle\" fill=\"#666\">no data\(logY ? " above 0" : "")</text>\n</svg>"
            return out
        }
        let (xMin, xMax) = xMin0 == xMax0 ? (xMin0 - 1, xMax0 + 1) : (xMin0, xMax0)
        let ty: (Double) -> Double = logY ? { log10($0) } : { $0 }
        var (yLo, yHi) = (ty(yMin0), ty(yMax0))
        if yLo == yHi { yLo -= 1; yHi += 1 }
        if !logY { let pad = (yHi - yLo) * 0.05; yLo -= pad; yHi += pad }
        func px(_ x: Double) -> Double { left + (x - xMin) / (xMax - xMin) * plotW }
        func py(_ y: Double) -> Double { top + (1 - (ty(y) - yLo) / (yHi - yLo)) * plotH }
        // Axes and ticks.
        out += "<g stroke=\"#999\" stroke-width=\"1\"><line x1=\"\(f(left))\" y1=\"\(f(top + plotH))\" x2=\"\(f(left + plotW))\" y2=\"\(f(top + plotH))\"/>"
        out += "<line x1=\"\(f(left))\" y1=\"\(f(top))\" x2=\"\(f(left))\" y2=\"\(f(top + plotH))\"/></g>\n"
        for x in ticks(xMin, xMax) {
            out += "<line x1=\"\(f(px(x)))\" y1=\"\(f(top + plotH))\" x2=\"\(f(px(x)))\" y2=\"\(f(top + plotH + 4))\" stroke=\"#999\"/>"
            out += "<text x=\"\(f(px(x)))\" y=\"\(f(top + plotH + 16))\" text-anchor=\"middle\" fill=\"#333\">\(label(x))</text>\n"
        }
        let yTicks: [Double] = logY ? (Int(yLo.rounded(.down))...Int(yHi.rounded(.up))).map { pow(10, Double($0)) }
            .filter { ty($0) >= yLo - 1e-9 && ty($0) <= yHi + 1e-9 } : ticks(yLo, yHi)
        for y in yTicks {
            out += "<line x1=\"\(f(left - 4))\" y1=\"\(f(py(y)))\" x2=\"\(f(left + plotW))\" y2=\"\(f(py(y)))\" stroke=\"#eee\"/>"
            out += "<text x=\"\(f(left - 6))\" y=\"\(f(py(y) + 4))\" text-anchor=\"end\" fill=\"#333\">\(label(y))</text>\n"
        }
        out += "<text x=\"\(f(left + plotW / 2))\" y=\"\(f(top + plotH + 32))\" text-anchor=\"middle\" fill=\"#333\">\(escape(xLabel))</text>\n"
        if !yLabel.isEmpty {
            out += "<text x=\"12\" y=\"\(f(top + plotH / 2))\" text-anchor=\"middle\" fill=\"#333\" transform=\"rotate(-90 12 \(f(top + plotH / 2)))\">\(escape(yLabel))\(logY ? " (log)" : "")</text>\n"
        }
        // Lines, then the legend.
        for (i, s) in series.enumerated() {
            let points = s.points.filter(usable)
            guard !points.isEmpty else { continue }
            let d = points.enumerated().map { ($0 == 0 ? "M" : "L") + f(px($1.x)) + " " + f(py($1.y)) }.joined(separator: " ")
            out += "<path class=\"series\" data-name=\"\(escape(s.name))\" d=\"\(d)\" fill=\"none\" stroke=\"\(palette[i % palette.count])\" stroke-width=\"1.5\"/>\n"
        }
        for (i, s) in series.enumerated() {
            let x = left + Double(i % 3) * (plotW / 3), y = Double(height) + 4 + Double(i / 3) * 18
            let empty = s.points.filter(usable).isEmpty
            out += "<rect x=\"\(f(x))\" y=\"\(f(y))\" width=\"12\" height=\"3\" fill=\"\(palette[i % palette.count])\"/>"
            out += "<text x=\"\(f(x + 16))\" y=\"\(f(y + 5))\" fill=\"#333\">\(escape(s.name))\(empty ? (logY ? " (not above 0)" : " (no values)") : "")</text>\n"
        }
        return out + "</svg>"
    }

    /// About five round ticks between `lo` and `hi` (steps of 1, 2 or 5 × 10^k).
    public static func ticks(_ lo: Double, _ hi: Double, count: Int = 5) -> [Double] {
        guard hi > lo, lo.isFinite, hi.isFinite else { return [lo] }
        let raw = (hi - lo) / Double(count)
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? magnitude * 10
        var out: [Double] = []
        var v = ceil(lo / step) * step
        while v <= hi + step * 1e-9 { out.append(abs(v) < step * 1e-9 ? 0 : v); v += step }
        return out
    }

    static func label(_ v: Double) -> String {
        if v == 0 { return "0" }
        if abs(v) >= 1e4 || abs(v) < 1e-3 { return String(format: "%.0e", v) }
        return v.rounded() == v ? String(Int(v)) : String(format: "%g", (v * 1e4).rounded() / 1e4)
    }

    static func f(_ v: Double) -> String { String(format: "%.1f", v) }

    public static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
