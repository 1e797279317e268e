/// Checks one param value against its spec; returns what is wrong, or nil.
enum ParamCheck {
    /// Every problem with a set of given params (a node's, or a plugin's inside a node): unknown
    /// names with a "did you mean", values that do not fit. `owner` names who has the params in
    /// "X has no param …"; `subject` names one param in "… should be …" messages.
    static func problems(_ given: [(key: String, value: JSON)], _ specs: [ParamSpec], owner: String,
                         subject: (String) -> String) -> [(name: String, atKey: Bool, message: String)] {
        var out: [(String, Bool, String)] = []
        for (name, value) in given {
            guard let p = specs.first(where: { $0.name == name }) else {
                out.append((name, true, "\(owner) has no param \"\(name)\"" + Suggest.hint(name, specs.map(\.name))
                            + (specs.isEmpty ? "" : " (params: \(specs.map(\.name).joined(separator: ", ")))")))
                continue
            }
            if value == .null && !p.required { continue }
            if let msg = check(value, against: p) { out.append((name, false, "\(subject(name)) \(msg)")) }
        }
        return out
    }

    static func check(_ v: JSON, against spec: ParamSpec) -> String? {
        func range(_ d: Double) -> String? {
            if let lo = spec.min, d < lo { return "is \(fmt(d)), below the minimum \(fmt(lo))" }
            if let hi = spec.max, d > hi { return "is \(fmt(d)), above the maximum \(fmt(hi))" }
            return nil
        }
        switch spec.kind {
        case .int:
            guard let i = v.int else { return "should be an integer, got \(v.kindName) \(v.text)" }
            return range(Double(i))
        case .number:
            guard let d = v.double else { return "should be a number, got \(v.kindName) \(v.text)" }
            return range(d)
        case .bool:
            return v.bool == nil ? "should be true or false, got \(v.kindName) \(v.text)" : nil
        case .string:
            return v.string == nil ? "should be a string, got \(v.kindName) \(v.text)" : nil
        case .path, .outpath, .model:
            guard let s = v.string else { return "should be a file path string, got \(v.kindName) \(v.text)" }
            return s.isEmpty ? "should be a file path, got an empty string" : nil
        case .enum:
            guard let s = v.string, spec.values.contains(s) else {
                return "should be one of \(spec.values.map { "\"\($0)\"" }.joined(separator: ", ")), got \(v.text)"
            }
            return nil
        case .enums:
            let quoted = spec.values.map { "\"\($0)\"" }.joined(separator: ", ")
            let elems = v.array ?? [v]   // a single value for every element
            if let n = spec.count, v.array != nil, elems.count != n {
                return "should have \(n) element\(n == 1 ? "" : "s"), got \(elems.count)"
            }
            for (i, e) in elems.enumerated() where !(e.string.map(spec.values.contains) ?? false) {
                return (v.array == nil ? "" : "element \(i) ") + "should be one of \(quoted), got \(e.text)"
            }
            return nil
        case .ints, .numbers:
            let isInt = spec.kind == .ints
            let elems: [JSON]
            if let a = v.array { elems = a }
            else if isInt, spec.count == nil, let i = v.int { return range(Double(i)) }   // one integer for every element
            else if !isInt, v.double != nil { return range(v.double!) }   // one number for every element
            else { return "should be an array of \(isInt ? "integers" : "numbers"), got \(v.kindName) \(v.text)" }
            if let n = spec.count, elems.count != n {
                return "should have \(n) element\(n == 1 ? "" : "s"), got \(elems.count)"
            }
            for (i, e) in elems.enumerated() {
                if isInt, e.int == nil { return "element \(i) should be an integer, got \(e.text)" }
                guard let d = e.double else { return "element \(i) should be a number, got \(e.text)" }
                if let r = range(d) { return "element \(i) " + r }
            }
            return nil
        case .plugin:
            guard let s = v.string, !s.isEmpty else { return "should be a plugin name, got \(v.kindName) \(v.text)" }
            return nil
        case .json:
            return nil
        }
    }

    static func fmt(_ d: Double) -> String {
        d.rounded() == d && abs(d) < 1e15 ? String(Int64(d)) : String(d)
    }
}
