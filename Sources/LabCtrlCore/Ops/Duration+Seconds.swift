extension Duration {
    /// A `Duration` from seconds given as `Double` (config values).
    static func seconds(double s: Double) -> Duration { .nanoseconds(Int64((s * 1e9).rounded())) }

    var secondsDouble: Double {
        let (s, atto) = components
        return Double(s) + Double(atto) / 1e18
    }
}
