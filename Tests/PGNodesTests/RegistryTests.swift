import Foundation
import PGFlow
import PGNodes
import Testing

/// The repository's `Nodes/` folder, found from this file's location.
let repositoryRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
let shippedCatalog = repositoryRoot.appendingPathComponent("Nodes")

@Test func everyCatalogEntryHasAnImplementationAndViceVersa() throws {
    let catalog = try Catalog.load(shippedCatalog)
    let implemented = Set(Registry.operators.map { $0.type })
    let described = Set(catalog.types)
    #expect(!described.isEmpty)
    #expect(described.subtracting(implemented).isEmpty, "catalog entries without an implementation: \(described.subtracting(implemented).sorted())")
    #expect(implemented.subtracting(described).isEmpty, "implementations without a catalog entry: \(implemented.subtracting(described).sorted())")
    #expect(Registry.operators.count == implemented.count, "a type is registered twice")
}

@Test func everyShippedNodeHasDocsAndACallableShape() throws {
    let catalog = try Catalog.load(shippedCatalog)
    for type in catalog.types {
        let spec = catalog[type]!
        #expect(spec.doc.count >= 40, "\(type) needs a real one-paragraph doc")
        let op = Registry.lookup(type)!
        switch spec.role {
        case .source: #expect(op is any FrameSource.Type, "\(type) has per-frame outputs only, so it must be a FrameSource")
        case .sink: #expect(op is any FrameSink.Type, "\(type) consumes frames into static outputs, so it must be a FrameSink")
        case .map, .staticNode: break
        }
        for p in spec.params { #expect(!p.doc.isEmpty, "\(type).\(p.name) has no doc") }
    }
}

/// A port marked differentiable on a node with no backward pass would train with zero gradient
/// silently: the catalog is checked against the implementations when pgflow loads it.
@Test func theCatalogAndTheImplementationsAgreeOnGradientsAndParameters() throws {
    let catalog = try Catalog.load(shippedCatalog)
    #expect(catalog.implementationProblems(Registry.operators).isEmpty, "\(catalog.implementationProblems(Registry.operators))")
    var encoder = catalog["Encoder"]!
    encoder.inputs[0].differentiable = true
    encoder.trainable = true
    let wrong = Catalog(specs: [encoder]).implementationProblems(Registry.operators).map(\.message)
    #expect(wrong.contains { $0.contains("Encoder: ports frames are marked differentiable, but its implementation has no backward pass") }, "\(wrong)")
    #expect(wrong.contains { $0.contains("Encoder is marked trainable, but its implementation owns no parameters") }, "\(wrong)")
}
