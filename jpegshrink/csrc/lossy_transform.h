// Pixels -> unquantised DCT coefficients for the lossy high-bitrate mode (jpegshrink/lossy/transform.py
// documents the arithmetic; these are its hot loops). Integer-only, the same numbers on every CPU.
#pragma once

#include "common.h"

namespace jsk {
namespace lossy {

constexpr int SAMPLE_FRAC_BITS = 4;    // fractional bits of the samples the DCT sees
constexpr int MATRIX_FRAC_BITS = 13;   // of the DCT matrix

// round(8192 * orthonormal DCT-II basis), row = frequency (transform.DCT_MATRIX).
extern const i64 DCT_MATRIX[8][8];

// rgb uint8 [n][3] -> y, cb, cr int64 [n] each: JFIF full-range BT.601 with libjpeg's 16-bit constants,
// kept with SAMPLE_FRAC_BITS fractional bits, Y level-shifted by -128.
void rgb_to_ycbcr(const std::uint8_t* rgb, i64 n, i64* y, i64* cb, i64* cr);

// plane int64 [rows][cols] (multiples of 8) -> out int64 [rows/8][cols/8][64] (natural order), the 8x8
// DCT-II as M X M^T rounded to COEF_FRAC_BITS fractional bits.
void forward_dct(const i64* plane, i64 rows, i64 cols, i64* out);

}  // namespace lossy
}  // namespace jsk
