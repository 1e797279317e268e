/// pgflow's release, printed by `pgflow --version` and written into run reports. Bump it with
/// every release; node implementation versions (in cache keys) are separate.
public enum PGFlowVersion {
    public static let string = "0.5.0"
}
