#include "lossy_rdo.h"

namespace jsk {
namespace lossy {

namespace {

JSK_INLINE int capped(int v, int n) { return v < n ? v : n - 1; }

// Context of coefficient k of block (by, bx): bit length of |above| + |left| in q, capped.
JSK_INLINE int context(const i64* q, i64 cols, i64 by, i64 bx, int k) {
    i64 s = 0;
    if (by > 0) s += iabs(q[((by - 1) * cols + bx) * 64 + k]);
    if (bx > 0) s += iabs(q[(by * cols + bx - 1) * 64 + k]);
    return capped(bit_length(s), N_CTX);
}

// Python's round-half-up of a / s for a >= 0, s > 0: (a + s // 2) // s.
JSK_INLINE i64 round_div(i64 a, i64 s) { return (a + s / 2) / s; }

// Distortion of zeroing a coefficient of more than 256 steps (see rdo_quantise); 49 * (DZ_CAP + 2^48) < 2^62.
constexpr i64 DZ_CAP = i64(1) << 56;

// First row, then first column: the two edge runs our coder codes, each after its own nonzero count.
constexpr int EDGE_ROW[7] = {1, 2, 3, 4, 5, 6, 7};
constexpr int EDGE_COL[7] = {8, 16, 24, 32, 40, 48, 56};

// Truncation of one run (positions pos[0..n) in coding order) of block b: our coder sends the run's
// nonzero count first and stops at its last nonzero, so zeros after it cost nothing. j[p] is the
// chosen value's D + lambda R (zeros priced as the cost table's zero class), dz[p] the distortion of 0.
// Zeroes the run's tail after the position L that minimises sum_{i <= L} j + sum_{i > L} dz (L one of
// the nonzeros, or none); ties keep the later L, i.e. the per-coefficient decisions.
void truncate_run(const int* pos, int n, const i64* j, const i64* dz, i64* b) {
    i64 tail = 0;                 // sum of dz after the candidate L
    for (int i = 0; i < n; ++i) tail += dz[pos[i]];
    i64 best = tail;              // L = none: the whole run zero
    int best_l = -1;
    i64 head = 0;
    for (int i = 0; i < n; ++i) {
        head += j[pos[i]];
        tail -= dz[pos[i]];
        if (b[pos[i]] != 0 && head + tail <= best) {
            best = head + tail;
            best_l = i;
        }
    }
    for (int i = best_l + 1; i < n; ++i) b[pos[i]] = 0;
}

}  // namespace

i64 log2_fp8(i64 x) {
    const int n = bit_length(x) - 1;
    i64 y = n <= 30 ? (x << (30 - n)) : (x >> (n - 30));
    i64 frac = 0;
    for (int i = 0; i < 8; ++i) {
        y = (y * y) >> 30;     // y in [2^30, 2^31): y * y < 2^62
        frac <<= 1;
        if (y >= (i64(2) << 30)) {
            y >>= 1;
            frac |= 1;
        }
    }
    return n * 256 + frac;
}

void count_contexts(const i64* q, i64 rows, i64 cols, i64* hist) {
    for (i64 by = 0; by < rows; ++by)
        for (i64 bx = 0; bx < cols; ++bx) {
            const i64* b = q + (by * cols + bx) * 64;
            for (int k = 1; k < 64; ++k) {
                const int m = capped(bit_length(iabs(b[k])), N_MAG);
                ++hist[(k * N_CTX + context(q, cols, by, bx, k)) * N_MAG + m];
            }
        }
}

void costs_from_counts(const i64* hist, i64* out) {
    for (int k = 0; k < 64; ++k)
        for (int c = 0; c < N_CTX; ++c) {
            const i64* h = hist + (k * N_CTX + c) * N_MAG;
            i64 total = 0;
            for (int m = 0; m < N_MAG; ++m) total += h[m];
            const i64 lt = log2_fp8(total + N_MAG);
            for (int m = 0; m < N_MAG; ++m) {
                const i64 extra = m == 0 ? 0 : ONE * m;   // sign + (m - 1) mantissa bits
                out[(k * N_CTX + c) * N_MAG + m] = lt - log2_fp8(h[m] + 1) + extra;
            }
        }
}

void rdo_quantise(const i64* c, i64 rows, i64 cols, const i64* qt, const i64* weight, i64 lam, const i64* costs,
                  i64 deadzone, i64 truncate, i64* out) {
    const i64 one_step = i64(1) << COEF_FRAC_BITS;
    const bool trellis = truncate != 0 && costs != nullptr;
    i64 jc[64] = {0}, dz[64] = {0};
    for (i64 by = 0; by < rows; ++by)
        for (i64 bx = 0; bx < cols; ++bx) {
            const i64 blk = (by * cols + bx) * 64;
            const i64 w = weight[by * cols + bx];
            const i64 x0 = c[blk];
            const i64 s0 = qt[0] * one_step;
            out[blk] = x0 >= 0 ? round_div(x0, s0) : -round_div(-x0, s0);
            for (int k = 1; k < 64; ++k) {
                const i64 x = c[blk + k];
                const i64 a = iabs(x);
                const i64 q = qt[k];
                const i64 s = q * one_step;
                const i64 v0 = round_div(a, s);
                i64 best = 0;
                if (trellis) {   // cost of the zero, and its D + lambda R while no decision below changes it
                    const i64* row = costs + (k * N_CTX + context(out, cols, by, bx, k)) * N_MAG;
                    const i64 en = floordiv(a * 16, q);   // a <= MAX_COEF: a * 16 < 2^45
                    // beyond 2^20 (256 steps) en^2 * w could overflow; DZ_CAP exceeds any run's rate
                    // (49 * MAX_LAMBDA * MAX_COST < 2^54), so such a coefficient is never cut
                    dz[k] = en > (i64(1) << 20) ? DZ_CAP : (en * en * w) >> 8;
                    jc[k] = dz[k] + lam * row[0];
                }
                if (v0 > 0) {
                    if (costs == nullptr) {   // no cost table yet: plain rounding with a dead zone
                        best = a * 256 >= s * deadzone ? v0 : 0;
                    } else {
                        const i64* row = costs + (k * N_CTX + context(out, cols, by, bx, k)) * N_MAG;
                        i64 best_cost = -1;
                        // candidates, in this order: v0, v0 - 1 (when > 0), 0 (when v0 <= 2); ties keep the first
                        const i64 cand[3] = {v0, v0 - 1, 0};
                        const int n_cand = v0 <= 2 ? (v0 == 1 ? 2 : 3) : 2;
                        for (int i = 0; i < n_cand; ++i) {
                            const i64 v = cand[i];
                            const i64 err = a - v * s;
                            // error in 1/4096 step: en^2 is 2^24 per step^2, as lam * cost is 2^24 per
                            // (lambda in step^2/bit) * bit (lam: 1/65536, cost: 1/256 bit)
                            const i64 en = floordiv(err * 16, q);
                            const i64 cost = ((en * en * w) >> 8) + lam * row[capped(bit_length(v), N_MAG)];
                            if (best_cost < 0 || cost < best_cost) {
                                best_cost = cost;
                                best = v;
                            }
                        }
                        if (trellis) jc[k] = best_cost;
                    }
                }
                out[blk + k] = x >= 0 ? best : -best;
            }
            if (trellis) {
                truncate_run(INTERIOR.pos, N_INTERIOR, jc, dz, out + blk);
                truncate_run(EDGE_ROW, 7, jc, dz, out + blk);
                truncate_run(EDGE_COL, 7, jc, dz, out + blk);
            }
        }
}

}  // namespace lossy
}  // namespace jsk
