import Foundation
import PGFlow
import Testing

struct ValidationTests {
    func problems(_ text: String, set: [(String, String)] = []) throws -> [Diagnostic] {
        let box = try Sandbox()
        defer { box.remove() }
        let url = try box.write("g.json", text)
        do {
            _ = try Graph.load(url, catalog: box.catalog, overrides: set)
            return []
        } catch let e as ValidationError {
            return e.diagnostics
        }
    }

    @Test func sixPlantedErrorsAreAllReportedWithPathAndLineColumn() throws {
        let text = """
        {
          "pgflow": 1,
          "nodes": {
            "src":   {"type": "Rampp", "params": {"count": 3}},
            "src2":  {"type": "Ramp", "params": {"count": -1, "colour": 1}},
            "scale": {"type": "Scale", "in": {"in": "nowhere.out"}, "params": {"factor": "big"}},
            "total": {"type": "Total", "in": {"in": "off.out"}},
            "off":   {"type": "Constant"}
          },
          "outputs": ["total.sum"]
        }
        """
        let found = try problems(text)
        let rendered = found.map(\.description)
        let expected: [(String, String, String)] = [
            ("4:23", "nodes.src.type", "unknown node type \"Rampp\""),
            ("5:51", "nodes.src2.params.count", "below the minimum 0"),
            ("5:55", "nodes.src2.params.colour", "Ramp has no param \"colour\""),
            ("6:45", "nodes.scale.in.in", "names no node \"nowhere\""),
            ("6:82", "nodes.scale.params.factor", "should be a number"),
            ("7:45", "nodes.total.in.in", "expects Tensor, got Scalar from off.out"),
            ("8:14", "nodes.off", "missing the required param \"value\""),
        ]
        for (loc, path, text) in expected {
            #expect(rendered.contains { $0.contains(":\(loc): \(path): ") && $0.contains(text) },
                    "missing \(loc) \(path) \(text) in:\n\(rendered.joined(separator: "\n"))")
        }
    }

    @Test func strictJSONRejectsWhatJSONCLetsThrough() throws {
        let cases: [(String, String)] = [
            ("{\"pgflow\": 1,}", "1:14"),
            ("{\"pgflow\": NaN}", "1:12"),
            ("{\"pgflow\": 1 /* c */}", "1:14"),
            ("{\n  \"pgflow\": 'x'\n}", "2:13"),
            ("{\"pgflow\": 1e999}", "1:12"),
        ]
        for (text, loc) in cases {
            let found = try problems(text)
            #expect(found.count == 1 && found[0].description.contains(":\(loc): ") && found[0].message.hasPrefix("invalid JSON"),
                    "\(text): \(found.map(\.description))")
        }
        let dup = try problems("{\"pgflow\": 1, \"nodes\": {\"a\": {\"type\": \"Constant\", \"params\": {\"value\": 1}}, \"a\": {\"type\": \"Constant\"}}, \"outputs\": [\"a.out\"]}")
        #expect(dup.contains { $0.message.contains("duplicate key \"a\"") && $0.path == "nodes.a" })
    }

    @Test func aPerFrameValueIntoAStaticInputIsARateMismatch() throws {
        let text = """
        {"pgflow": 1, "nodes": {
          "ramp": {"type": "Ramp", "params": {"count": 3}},
          "fit":  {"type": "Affine", "in": {"x": "ramp.out", "w": "ramp.out"}},
          "sum":  {"type": "Total", "in": {"in": "fit.out"}}
        }, "outputs": ["sum.sum"]}
        """
        let found = try problems(text).map(\.description)
        #expect(found.count == 1, "\(found)")
        #expect(found.contains { $0.contains(":3:59: nodes.fit.in.w: ")
                && $0.contains("input \"w\" of node \"fit\" takes one static value, but ramp.out gives one value per frame") },
                "\(found)")
    }

    @Test func cyclesAreNamedAndNothingToRunIsReported() throws {
        let text = """
        {"pgflow": 1, "nodes": {
          "a": {"type": "Scale", "in": {"in": "c.out"}},
          "b": {"type": "Scale", "in": {"in": "a.out"}},
          "c": {"type": "Scale", "in": {"in": "b.out"}}
        }}
        """
        let found = try problems(text).map(\.message)
        #expect(found.contains { $0.contains("cycle:") && $0.contains("a") && $0.contains("b") && $0.contains("c") })
        #expect(found.contains { $0.contains("nothing to run") })
    }

    @Test func varsSubstituteAndOverridesAreChecked() throws {
        let text = """
        {"pgflow": 1, "vars": {"n": 3, "name": "x"},
         "nodes": {"src": {"type": "Ramp", "params": {"count": "$n", "value": "$missing"}},
                   "t": {"type": "Total", "in": {"in": "src.out"}}},
         "stages": [{"name": "all", "run": ["t", "ghost.port"]}]}
        """
        let found = try problems(text, set: [("nope", "1")]).map(\.description)
        #expect(found.contains { $0.contains("unknown var \"$missing\"") })
        #expect(found.contains { $0.contains("--set nope=…: the graph has no var \"nope\"") })
        #expect(found.contains { $0.contains("stages[0].run[1]") && $0.contains("names no node \"ghost\"") })
    }

    @Test func twoStagesWithOneNameAreRefused() throws {
        let text = """
        {"pgflow": 1, "nodes": {"src": {"type": "Ramp", "params": {"count": 3}}, "t": {"type": "Total", "in": {"in": "src.out"}}},
         "stages": [{"name": "all", "run": ["t"]}, {"name": "all", "run": ["t"]}]}
        """
        let found = try problems(text).map(\.description)
        #expect(found.contains { $0.contains("stages[1].name: stage name \"all\" is already used by stages[0]") }, "\(found)")
    }
}
