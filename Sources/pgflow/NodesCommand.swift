import ArgumentParser
import Foundation
import PGFlow

struct NodesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nodes",
        abstract: "List the node catalog, or describe one node type.",
        discussion: "Without a type: one line per node type. With a type: its doc, ports (type, rate) and params (type, default, range).")

    @Argument(help: "A node type to describe, e.g. VideoSource.")
    var type: String?

    @Option(name: .customLong("nodes"), help: ArgumentHelp("The node catalog folder.", valueName: "dir"))
    var nodesDirectory: String?

    func run() throws {
        try reportingErrors {
            let catalog = try loadCatalog(nodesDirectory)
            guard let type else {
                let width = catalog.types.map(\.count).max() ?? 0
                for t in catalog.types {
                    let spec = catalog[t]!
                    let first = firstSentence(spec.doc)
                    print(t.padding(toLength: width + 2, withPad: " ", startingAt: 0) + first)
                }
                print("\n`pgflow nodes TYPE` describes one.")
                return
            }
            guard let spec = catalog[type] ?? catalog.types.first(where: { $0.lowercased() == type.lowercased() }).flatMap({ catalog[$0] }) else {
                throw ExitMessage(code: 2, "no node type \"\(type)\" in \(catalog.directory?.path ?? "the catalog")\(Suggest.hint(type, catalog.types)); known: \(catalog.types.joined(separator: ", "))")
            }
            print(describe(spec))
        }
    }

    func describe(_ spec: NodeSpec) -> String {
        var out = "\(spec.type)  (\(spec.role.rawValue) node\(spec.trainable ? ", trainable" : "")\(spec.differentiable ? ", differentiable" : ""))\n\n"
        out += wrap(spec.doc, indent: "  ") + "\n"
        func port(_ p: PortSpec, _ isInput: Bool) -> String {
            var flags = [p.type.rawValue, p.rate.rawValue]
            if isInput && p.optional { flags.append("optional") }
            if p.differentiable { flags.append("differentiable") }
            return "  \(p.name)  (\(flags.joined(separator: ", ")))\n" + (p.doc.isEmpty ? "" : wrap(p.doc, indent: "      ") + "\n")
        }
        if !spec.inputs.isEmpty { out += "\nInputs:\n" + spec.inputs.map { port($0, true) }.joined() }
        if !spec.outputs.isEmpty { out += "\nOutputs:\n" + spec.outputs.map { port($0, false) }.joined() }
        if !spec.params.isEmpty { out += "\nParams:\n" + describeParams(spec.params) }
        return out
    }

}

/// One entry per param: type, values, default or required, range, then the doc wrapped.
func describeParams(_ params: [ParamSpec]) -> String {
    func fmt(_ d: Double) -> String { d.rounded() == d && abs(d) < 1e15 ? String(Int64(d)) : String(d) }
    var out = ""
    for p in params {
        var flags = [p.kind.rawValue]
        if p.kind == .enum || p.kind == .enums { flags.append(p.values.joined(separator: "|")) }
        if let k = p.pluginKind { flags.append("\(k) plugin") }
        if let c = p.count { flags.append("\(c) elements") }
        if let d = p.defaultValue { flags.append("default \(d.text)") } else if p.required { flags.append("required") } else { flags.append("optional") }
        // "range 0…1", "≥ 0", "≤ 64": an open end is left out rather than drawn as "……".
        switch (p.min, p.max) {
        case let (lo?, hi?): flags.append("range \(fmt(lo))…\(fmt(hi))")
        case let (lo?, nil): flags.append("≥ \(fmt(lo))")
        case let (nil, hi?): flags.append("≤ \(fmt(hi))")
        case (nil, nil): break
        }
        out += "  \(p.name)  (\(flags.joined(separator: ", ")))\n" + (p.doc.isEmpty ? "" : wrap(p.doc, indent: "      ") + "\n")
    }
    return out
}

func wrap(_ text: String, indent: String, width: Int = 96) -> String {
    var lines: [String] = []
    var line = indent
    for word in text.split(separator: " ") {
        if line.count + word.count + 1 > width && line != indent { lines.append(line); line = indent }
        line += (line == indent ? "" : " ") + word
    }
    if line != indent { lines.append(line) }
    return lines.joined(separator: "\n")
}

/// The doc's first sentence: up to the first ". " that ends a word (not "§3.2", ".mp4" or "e.g.").
func firstSentence(_ doc: String) -> String {
    let chars = Array(doc)
    for i in chars.indices where chars[i] == "." && i + 1 < chars.count && chars[i + 1] == " " && i > 0 {
        let word = String(chars[..<i]).split(separator: " ").last ?? ""
        if ["e.g", "i.e", "cf", "vs", "etc", "eq", "fig", "sec"].contains(word.lowercased()) { continue }
        return String(chars[...i])
    }
    return doc
}
