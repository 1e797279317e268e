import ArgumentParser
import Foundation
import PGKernels
import PGTensor

struct Model: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Export or inspect parametric head/body models (builtin:head, SMPL-X, FLAME).",
        discussion: helpText("""
        pgflow reads SMPL-X and FLAME from NPZ files with their standard keys (convert the official
        .pkl releases with Scripts/convert-model.py) and builds its own head-and-shoulders model,
        builtin:head, which `export` writes in the same layout.

        Examples:
          pgflow model export builtin:head head.npz
          pgflow model info models/SMPLX_NEUTRAL.npz
        """),
        subcommands: [Export.self, Info.self])

    static func load(_ name: String) throws -> ParametricModel {
        if name == HeadModel.name { return HeadModel.model }
        if name.hasPrefix("builtin:") { throw ExitMessage(code: 2, "no built-in model \"\(name)\"; the built-in model is \"\(HeadModel.name)\"") }
        do { return try ParametricModel(npz: URL(fileURLWithPath: name)) } catch {
            throw ExitMessage(code: 1, "\(error)")
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write a model as NPZ (SMPL-X / FLAME key names plus pgflow's num_betas, num_expression_coeffs, jaw_joint, vertex_region).")

        @Argument(help: "builtin:head, or a model NPZ to rewrite.")
        var model: String
        @Argument(help: "The NPZ to write.", completion: .file(extensions: ["npz"]))
        var output: String
        @Option(help: ArgumentHelp("Also write builtin:head's procedural skin texture as a [3, R, R] .npy.", valueName: "path"))
        var texture: String?
        @Option(name: .customLong("texture-size"), help: "Texture resolution R.")
        var textureSize: Int = 512

        func run() throws {
            try reportingErrors {
                let m = try Model.load(model)
                do { try m.write(npz: URL(fileURLWithPath: output)) } catch { throw ExitMessage(code: 1, "\(error)") }
                print("wrote \(output): \(Model.summary(m))")
                if let texture {
                    guard m.name == HeadModel.name else { throw ExitMessage(code: 2, "--texture is only available for \(HeadModel.name)") }
                    guard textureSize >= 1 && textureSize <= 8192 else { throw ExitMessage(code: 2, "--texture-size must be 1…8192") }
                    let t = Tensor(shape: [3, textureSize, textureSize], scalars: HeadModel.texture(resolution: textureSize))
                    do { try t.writeNPY(to: URL(fileURLWithPath: texture)) } catch { throw ExitMessage(code: 1, "\(error)") }
                    print("wrote \(texture): texture [3, \(textureSize), \(textureSize)]")
                }
            }
        }
    }

    struct Info: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a model's sizes: vertices, faces, joints, shape and expression spaces, UV layout, landmarks.")

        @Argument(help: "builtin:head, or a model NPZ.")
        var model: String

        func run() throws {
            try reportingErrors {
                let m = try Model.load(model)
                print("\(m.name): \(Model.summary(m))")
                print("parents: \(m.parents.map(String.init).joined(separator: " "))")
                if m.name == HeadModel.name {
                    print("joints: \(HeadModel.jointNames.joined(separator: ", "))")
                    print("shape modes: \(HeadModel.shapeNames.joined(separator: ", "))")
                    print("expression modes: \(HeadModel.expressionNames.joined(separator: ", "))")
                }
                var counts = [Int](repeating: 0, count: ParametricModel.Region.allCases.count)
                for r in m.vertexRegions { counts[Int(r)] += 1 }
                print("regions: " + ParametricModel.Region.allCases.map { "\($0) \(counts[Int($0.rawValue)])" }.joined(separator: ", "))
            }
        }
    }

    static func summary(_ m: ParametricModel) -> String {
        "\(m.vertexCount) vertices, \(m.faceCount) faces, \(m.jointCount) joints\(m.jawJoint.map { " (jaw \($0))" } ?? ""), "
            + "\(m.shapeCount) shape + \(m.expressionCount) expression directions, "
            + (m.poseDirections.isEmpty ? "no pose correctives, " : "\(m.poseBasisCount) pose correctives, ")
            + (m.hasUVLayout ? "UV layout with \(m.uvs.count / 2) UV vertices, " : "no UV layout, ")
            + "\(m.landmarkCount) landmarks"
    }
}
