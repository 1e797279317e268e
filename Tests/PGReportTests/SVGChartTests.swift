import PGReport
import Testing

/// Charts are SVG text, so what they draw can be read back.
struct SVGChartTests {
    @Test func eachSeriesIsOnePathInItsColourWithALegend() {
        let a = SVGChart.Series(name: "terms.l1", points: (1...10).map { (Double($0), 1 / Double($0)) })
        let b = SVGChart.Series(name: "loss & <all>", points: (1...10).map { (Double($0), 2 / Double($0)) })
        let svg = SVGChart.lines([a, b], logY: false)
        #expect(svg.hasPrefix("<svg") && svg.hasSuffix("</svg>"))
        #expect(svg.components(separatedBy: "class=\"series\"").count - 1 == 2)
        #expect(svg.contains("stroke=\"\(SVGChart.palette[0])\"") && svg.contains("stroke=\"\(SVGChart.palette[1])\""))
        #expect(svg.contains(">terms.l1<") && svg.contains("loss &amp; &lt;all&gt;"), "names are escaped")
        // 10 points: one move and nine lines.
        let path = svg.components(separatedBy: "data-name=\"terms.l1\" d=\"")[1].prefix { $0 != "\"" }
        #expect(path.filter { $0 == "M" }.count == 1 && path.filter { $0 == "L" }.count == 9)
    }

    @Test func aLogScaleLeavesOutWhatItCannotDrawAndSaysSo() {
        let zero = SVGChart.Series(name: "off", points: (1...5).map { (Double($0), 0) })
        let mixed = SVGChart.Series(name: "mixed", points: [(1, 1), (2, -1), (3, .nan), (4, 0.01)])
        let svg = SVGChart.lines([zero, mixed], logY: true)
        #expect(svg.contains("off (not above 0)"))
        let path = svg.components(separatedBy: "data-name=\"mixed\" d=\"")[1].prefix { $0 != "\"" }
        #expect(path.filter { $0 == "L" }.count == 1, "two drawable points: \(path)")
        #expect(svg.contains(">1<") && svg.contains(">0.1<") && svg.contains(">0.01<"), "decade ticks")
        #expect(SVGChart.lines([zero], logY: true).contains("no data above 0"))
        #expect(SVGChart.lines([]).contains("no data"))
    }

    @Test func ticksAreRoundNumbersCoveringTheRange() {
        #expect(SVGChart.ticks(0, 10) == [0, 2, 4, 6, 8, 10])
        #expect(SVGChart.ticks(0.013, 0.048) == [0.02, 0.03, 0.04])
        #expect(SVGChart.ticks(-3, 3) == [-2, 0, 2])
    }
}
