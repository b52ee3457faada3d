// Rate-distortion optimised quantisation of the lossy high-bitrate mode (jpegshrink/lossy/quant.py
// describes the method; this is its kernel). Integer-only: the same coefficients on every CPU.
//
// The cost table is int64 [64][N_CTX][N_MAG] (bits in 1/256): zigzag-free natural position k, the
// context (bit length, capped, of |above| + |left| of the same coefficient) and the magnitude class
// (bit length of |v|, capped). It was a numba kernel; its output is pinned by tests/test_lossy.py.
#pragma once

#include "common.h"

namespace jsk {
namespace lossy {

constexpr int N_CTX = 6;              // neighbour-magnitude contexts
constexpr int N_MAG = 12;             // magnitude classes
constexpr i64 ONE = 256;              // fixed point of block weights and of costs (1/256 bit)
constexpr int COEF_FRAC_BITS = 8;     // fractional bits of the unquantised coefficients

// Bounds the binding enforces so that no intermediate can overflow int64.
constexpr i64 MAX_COEF = i64(1) << 40;     // |unquantised coefficient| and |quantised value|
constexpr i64 MAX_STEP = 65535;            // quantiser step (baseline JPEG: 255)
constexpr i64 MAX_WEIGHT = i64(1) << 16;   // block weight (256 = 1.0)
constexpr i64 MAX_LAMBDA = i64(1) << 24;   // Lagrange multiplier (1/65536 step^2 per bit)
constexpr i64 MAX_COST = i64(1) << 24;     // cost table entry (1/256 bit)
constexpr i64 MAX_DEADZONE = i64(1) << 16; // dead zone (1/256 step)

// floor(256 * log2(x)) for x >= 1, by repeated squaring (no floating point).
i64 log2_fp8(i64 x);

// hist[k][ctx][mag] += 1 for every AC coefficient of q [rows][cols][64] (contexts from q itself).
void count_contexts(const i64* q, i64 rows, i64 cols, i64* hist);

// out[k][ctx][mag] = bits (1/256) of magnitude class mag: -log2 of its smoothed frequency + sign/mantissa bits.
void costs_from_counts(const i64* hist, i64* out);

// Quantise c [rows][cols][64] with steps qt[64] into out [rows][cols][64] (see quant.py). costs == nullptr:
// plain rounding with a dead zone (1/256 step) instead of rate-distortion decisions. truncate != 0 (with
// costs): then each block's interior, first row and first column runs are cut after the last nonzero that
// minimises D + lambda R with the run's trailing zeros free (our coder sends nonzero counts).
void rdo_quantise(const i64* c, i64 rows, i64 cols, const i64* qt, const i64* weight, i64 lam, const i64* costs,
                  i64 deadzone, i64 truncate, i64* out);

}  // namespace lossy
}  // namespace jsk
