import PGTensor

/// What flows along an edge: one value per frame on a per-frame port, one value on a static port.
///
/// Structured port types are records with documented keys, so every value can be cached,
/// hashed and inspected the same way:
/// - `Image`: `.tensor` `[C, H, W]`, linear 0…1.
/// - `Camera`: `.record` with numbers `fx fy cx cy width height` and tensor `world_to_camera` `[4, 4]`
///   (OpenCV axes, row-major, p_cam = R·p + t).
/// - `Gaussians`: `.record` with tensors `means [N,3]`, `log_scales [N,3]` (or `[N,1]` isotropic),
///   `quats [N,4]` (w x y z), `opacity_logits [N]`, `features [N,C]`.
/// - `Tracking`: `.record` with string `model` (`"builtin:head"` or the model file) and tensors
///   `shape [S]` (β), `expression [E]` (ψ), `pose [J,3]` (axis-angle per joint relative to its parent,
///   in the model's kintree order), `rotation [3]` (global axis-angle about the root joint, applied
///   after `pose[0]`), `translation [3]` and `jaw [3]` (axis-angle composed onto the model's jaw joint
///   after `pose[jaw]`). Absent tensors are zeros; β and ψ shorter than the model's are zero-padded.
///   Model space is y up, the face looking along +z (SMPL-X / FLAME). PGNodes' `Tracking` reads and writes it.
/// - `File`: `.record` with strings `path` and `sha256` (content hash of what was written/read).
/// - `Scalar`: `.number`, or a rank-0 `.tensor` when it carries gradients.
/// - `Record`: `.record` of named numbers (a Loss node's terms, a Metrics node's summary).
public enum Value: Sendable, Equatable {
    case tensor(Tensor)
    case number(Double)
    case string(String)
    case list([Value])
    case record([String: Value])

    public var tensor: Tensor? { if case .tensor(let t) = self { return t }; return nil }
    public var number: Double? {
        switch self {
        case .number(let d): return d
        case .tensor(let t) where t.count == 1: return Double(t.scalars[0])
        default: return nil
        }
    }
    public var string: String? { if case .string(let s) = self { return s }; return nil }
    public var list: [Value]? { if case .list(let l) = self { return l }; return nil }
    public var record: [String: Value]? { if case .record(let r) = self { return r }; return nil }

    public subscript(key: String) -> Value? { record?[key] }

    /// Short human description for logs and error messages.
    public var summary: String {
        switch self {
        case .tensor(let t): return "tensor \(t.shape)"
        case .number(let d): return "number \(d)"
        case .string(let s): return "string \"\(s.prefix(40))\""
        case .list(let l): return "list of \(l.count)"
        case .record(let r): return "record {\(r.keys.sorted().joined(separator: ", "))}"
        }
    }
}
