public enum RelayProtocolVersion { public static let compatible = "ai-relay 0.4.46" }
