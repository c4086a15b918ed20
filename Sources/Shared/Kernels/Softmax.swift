// The softmax of a vocabulary row, vectorized in C (CQuantKernels/softmax.c): v*'s loss and gradient
// (ComputeZ.swift) and the evaluation's log-probabilities (TargetScorer, GeneralCapability) run it over
// every token of the vocabulary for every scored row.
import CQuantKernels
import Foundation

public enum Softmax {
    /// log Σ e^x over x[0..<n] (n ≥ 1), as max + log Σ e^(x − max) with the sum in Double.
    public static func logSumExp(_ x: UnsafePointer<Float>, count n: Int) -> Double {
        let (mx, sum) = sumExp(x, count: n)
        return Double(mx) + Foundation.log(sum)
    }

    /// The row's largest value and Σ e^(x − max) in Double (the same bits on AVX2 and AVX-512).
    public static func sumExp(_ x: UnsafePointer<Float>, count n: Int) -> (max: Float, sum: Double) {
        precondition(n >= 1, "softmax of an empty row")
        var mx: Float = 0, sum: Double = 0
        _ = qk_sum_exp(qk_best_isa(), x, Int64(n), &mx, &sum)  // fails only for an ISA the CPU lacks
        return (mx, sum)
    }

    /// y[i] = e^(x[i] − shift) · scale (y may be x).
    public static func expScaled(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count n: Int, shift: Float, scale: Float = 1) {
        _ = qk_exp_scaled(qk_best_isa(), x, y, Int64(n), shift, scale)
    }

    /// log Σ e^x over a slice of logits.
    public static func logSumExp(_ row: ArraySlice<Float>) -> Double {
        row.withUnsafeBufferPointer { logSumExp($0.baseAddress!, count: $0.count) }
    }
}
