import PGFlow

/// Every node type pgflow ships. A test asserts this list and `Nodes/*.json` name the same types.
public enum Registry {
    public static let operators: [any Operator.Type] = [
        VideoSource.self,
        Encoder.self,
        Composite.self,
        CameraFile.self,
        GaussianCloud.self,
        GaussianExport.self,
        Splat.self,
        GaussianField.self,
        NeuralRenderer.self,
        Loss.self,
        Metrics.self,
        Noise.self,
        Performance.self,
        HeadTexture.self,
        Landmarks.self,
        TrackingExport.self,
        Tracker.self,
        EditorCall.self,
        FaceLandmarks.self,
        Collect.self,
        Matte.self,
        ExprLoss.self,
        PerceptualLoss.self,
        PoseRefine.self,
    ]

    public static func lookup(_ type: String) -> (any Operator.Type)? {
        operators.first { $0.type == type }
    }
}
