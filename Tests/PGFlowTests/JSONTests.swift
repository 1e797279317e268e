import Testing
@testable import PGFlow

@Test func canonicalJSONSortsKeysAndIgnoresIntDoubleSpelling() {
    let a = JSON.object([("b", .int(1)), ("a", .array([.double(2.0), .string("x\"y")]))])
    let b = JSON.object([("a", .array([.int(2), .string("x\"y")])), ("b", .double(1))])
    #expect(a.canonical == #"{"a":[2,"x\"y"],"b":1}"#)
    #expect(a.canonical == b.canonical)
}
