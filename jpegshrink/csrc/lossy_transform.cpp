#include "lossy_transform.h"

#include "lossy_rdo.h"

namespace jsk {
namespace lossy {

const i64 DCT_MATRIX[8][8] = {
    {2896, 2896, 2896, 2896, 2896, 2896, 2896, 2896},     {4017, 3406, 2276, 799, -799, -2276, -3406, -4017},
    {3784, 1567, -1567, -3784, -3784, -1567, 1567, 3784}, {3406, -799, -4017, -2276, 2276, 4017, 799, -3406},
    {2896, -2896, -2896, 2896, 2896, -2896, -2896, 2896}, {2276, -4017, 799, 3406, -3406, -799, 4017, -2276},
    {1567, -3784, 3784, -1567, -1567, 3784, -3784, 1567}, {799, -2276, 3406, -4017, 4017, -3406, 2276, -799}};

namespace {

// Python's ``v >> n`` (floor division by 2^n) for any sign, without implementation-defined shifts.
JSK_INLINE i64 sar(i64 v, int n) { return v >= 0 ? (v >> n) : ~((~v) >> n); }

// libjpeg jccolor.c: FIX(x) = round(x * 65536)
constexpr i64 F_R_Y = 19595, F_G_Y = 38470, F_B_Y = 7471;
constexpr i64 F_R_CB = 11059, F_G_CB = 21709, F_HALF = 32768;
constexpr i64 F_G_CR = 27439, F_B_CR = 5329;

}  // namespace

void rgb_to_ycbcr(const std::uint8_t* rgb, i64 n, i64* y, i64* cb, i64* cr) {
    constexpr int shift = 16 - SAMPLE_FRAC_BITS;
    constexpr i64 half = i64(1) << (shift - 1);
    constexpr i64 level = i64(128) << SAMPLE_FRAC_BITS;
    for (i64 i = 0; i < n; ++i) {
        const i64 r = rgb[3 * i], g = rgb[3 * i + 1], b = rgb[3 * i + 2];
        y[i] = sar(F_R_Y * r + F_G_Y * g + F_B_Y * b + half, shift) - level;
        cb[i] = sar(-F_R_CB * r - F_G_CB * g + F_HALF * b + half, shift);
        cr[i] = sar(F_HALF * r - F_G_CR * g - F_B_CR * b + half, shift);
    }
}

void forward_dct(const i64* plane, i64 rows, i64 cols, i64* out) {
    constexpr int shift = 2 * MATRIX_FRAC_BITS + SAMPLE_FRAC_BITS - COEF_FRAC_BITS;
    constexpr i64 round = i64(1) << (shift - 1);
    const i64 bcols = cols / 8;
    for (i64 by = 0; by < rows / 8; ++by)
        for (i64 bx = 0; bx < bcols; ++bx) {
            i64 a[8][8];  // a[r][u] = sum_j X[r][j] M[u][j]  (rows of the block)
            for (int r = 0; r < 8; ++r) {
                const i64* x = plane + (by * 8 + r) * cols + bx * 8;
                for (int u = 0; u < 8; ++u) {
                    i64 s = 0;
                    for (int j = 0; j < 8; ++j) s += x[j] * DCT_MATRIX[u][j];
                    a[r][u] = s;
                }
            }
            i64* o = out + (by * bcols + bx) * 64;
            for (int v = 0; v < 8; ++v)      // vertical frequency: out[v * 8 + u] = sum_r M[v][r] a[r][u]
                for (int u = 0; u < 8; ++u) {
                    i64 s = 0;
                    for (int r = 0; r < 8; ++r) s += DCT_MATRIX[v][r] * a[r][u];
                    o[v * 8 + u] = sar(s + round, shift);
                }
        }
}

}  // namespace lossy
}  // namespace jsk
