// A tiny seeded PRNG (Steele, Lea & Flood's SplitMix64, the seeding generator of xoshiro) so synthetic
// models, sampling and randomized tests give the same numbers on every machine and every run.

import Foundation

public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [-scale, scale) from 24 random bits, so every draw is exact in Float.
    public mutating func symmetric(_ scale: Float) -> Float {
        (Float(next() >> 40) * 0x1p-23 - 1) * scale
    }

    /// Standard normal (Box–Muller on two 53-bit uniforms; the second value is discarded).
    public mutating func gaussian() -> Float {
        let u1 = (Double(next() >> 11) + 1) * 0x1p-53, u2 = Double(next() >> 11) * 0x1p-53
        return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }
}
