#include "adaptive_model.h"

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <system_error>
#include <thread>
#include <vector>

namespace jsk {
namespace adaptive {

namespace {

// Remaining-nonzero bins for the 7x7 interior (0..49 -> 0..9).
constexpr int NZ_BIN[50] = {0, 1, 2, 3, 4, 4, 5, 5, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7, 8, 8, 8, 8, 8,
                            8, 8, 8, 8, 8, 8, 8, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9};

// Integer DCT basis: K[u][x] = round(2048 * sqrt(2) * C(u) * cos((2x + 1) u pi / 16)), C(0) = 1/sqrt(2).
// With it, 8 * pixel(x, y) * 2^22 = sum over (v, u) of K[v][y] * K[u][x] * coef[v, u] * q[v, u].
// Written out (not computed) so that every machine uses the same integers.
constexpr i64 K[8][8] = {
    {2048, 2048, 2048, 2048, 2048, 2048, 2048, 2048},     {2841, 2408, 1609, 565, -565, -1609, -2408, -2841},
    {2676, 1108, -1108, -2676, -2676, -1108, 1108, 2676}, {2408, -565, -2841, -1609, 1609, 2841, 565, -2408},
    {2048, -2048, -2048, 2048, 2048, -2048, -2048, 2048}, {1609, -2841, 565, 2408, -2408, -565, 2841, -1609},
    {1108, -2676, 2676, -1108, -1108, 2676, -2676, 1108}, {565, -1609, 2408, -2841, 2841, -2408, 1609, -565}};
// KG[v] = 3 K[v][0] - K[v][1]: twice the AC-only pixel value extrapolated half a pixel past row (column) 0.
constexpr i64 KG[8] = {3 * K[0][0] - K[0][1], 3 * K[1][0] - K[1][1], 3 * K[2][0] - K[2][1], 3 * K[3][0] - K[3][1],
                       3 * K[4][0] - K[4][1], 3 * K[5][0] - K[5][1], 3 * K[6][0] - K[6][1], 3 * K[7][0] - K[7][1]};

JSK_INLINE int cap(int n) { return n < PRIOR_BINS ? n : PRIOR_BINS - 1; }
JSK_INLINE int capped_bitlen(i64 a) { return cap(bit_length(a < 2047 ? a : 2047)); }
JSK_INLINE int sgn3(i64 v) { return v > 0 ? 1 : (v < 0 ? 2 : 0); }

template <class Coder>
struct Pass {
    Coder& c;
    const Component& m;
    const Counters& T;

    static constexpr bool enc = Coder::encoding;

    JSK_INLINE std::int16_t* block(i64 by, i64 bx) const { return m.co + (by * m.C + bx) * 64; }
    JSK_INLINE int hint(i64 by, i64 bx, int width, int j) const {
        return m.hint ? m.hint[(by * m.C + bx) * width + j] : 0;
    }
    // Hint j of a pass of width ``width`` coding natural coefficient ``pos`` (-1: the block's count): the
    // cross-channel one where the component has a reference, else the given one.
    JSK_INLINE int hint_of(i64 by, i64 bx, int width, int j, int pos) const {
        return m.ref ? cross_bucket(m, pos, cross_mean(m, by, bx, pos)) : hint(by, bx, width, j);
    }
    // hint_of for a coefficient, and (cross-channel) the sign of the reference's mean there (0 none, 1 +, 2 -).
    JSK_INLINE int coef_hint(i64 by, i64 bx, int width, int j, int pos, int& ref_sign) const {
        if (!m.ref) {
            ref_sign = 0;
            return hint(by, bx, width, j);
        }
        const i64 mean = cross_mean(m, by, bx, pos);
        ref_sign = sgn3(mean);
        return cross_bucket(m, pos, mean);
    }
    JSK_INLINE int bit(i64 ctx, int b) { return code_bit(c, T, ctx, b, LIMIT); }
    JSK_INLINE int bit_backoff(i64 ctx, i64 parent, int b) { return code_bit_backoff(c, T, ctx, parent, b, LIMIT); }
    // A decision whose context includes a hint h > 0 starts from (and keeps teaching) the same context
    // with hint 0, so an uninformative hint costs little.
    JSK_INLINE int hinted_bit(i64 ctx, int h, i64 h_stride, int b) {
        return h > 0 ? bit_backoff(ctx, ctx - h * h_stride, b) : bit(ctx, b);
    }
    JSK_INLINE void damaged() {
        if constexpr (!enc) c.set_damaged();
    }

    // Exp-Golomb binarisation: exponent e = bit length of |v| in unary, sign, then e-1 mantissa bits.
    // Mantissa bits use Mantissa[pos][e][bit]; when top_base >= 0 the first of them uses counter
    // top_base + e instead (a context that knows a prediction of the value). Returns the (decoded) value.
    JSK_INLINE i64 value(i64 exp_base, i64 parent_base, i64 sign_ctx, int mant_pos, i64 top_base, i64 v, int max_exp) {
        const i64 a = v >= 0 ? v : -v;
        const int e = enc ? bit_length(a) : 0;
        int n = 0;
        while (n < max_exp) {
            const int b = parent_base >= 0 ? bit_backoff(exp_base + n, parent_base + n, e > n)
                                           : bit(exp_base + n, e > n);
            if (b == 0) break;
            ++n;
        }
        if (n == 0) return 0;
        const int neg = bit(sign_ctx, v < 0);
        i64 r = 1;
        const i64 mbase = Mantissa::at(mant_pos, n, 0);
        for (int i = n - 2; i >= 0; --i) {
            const i64 ctx = (top_base >= 0 && i == n - 2) ? top_base + n : mbase + i;
            r = (r << 1) | bit(ctx, static_cast<int>((a >> i) & 1));
        }
        return neg ? -r : r;
    }

    // Pass 0: the number of nonzero interior (7x7) coefficients of every block (of rows r0..r1-1).
    void counts(i64 r0, i64 r1) {
        const i64 C = m.C;
        for (i64 by = r0; by < r1; ++by) {
            for (i64 bx = 0; bx < C; ++bx) {
                int cnt = 0;
                if (enc) {
                    const std::int16_t* co = block(by, bx);
                    for (int k = 0; k < N_INTERIOR; ++k) cnt += co[INTERIOR.pos[k]] != 0;
                }
                const i64* nz = m.nz7;
                i64 ctx;
                if (by > 0 && 0 < bx && bx < C - 1)
                    ctx = (2 * nz[(by - 1) * C + bx] + 2 * nz[by * C + bx - 1] + nz[(by - 1) * C + bx - 1] +
                           nz[(by - 1) * C + bx + 1] + 3) / 6;
                else if (by > 0 && bx > 0)
                    ctx = (nz[(by - 1) * C + bx] + nz[by * C + bx - 1] + 1) >> 1;
                else if (by > 0)
                    ctx = nz[(by - 1) * C + bx];
                else if (bx > 0)
                    ctx = nz[by * C + bx - 1];
                else
                    ctx = NZ_CTX - 1;
                const int h = hint_of(by, bx, 1, 0, -1);
                int node = 1;
                for (int i = 5; i >= 0; --i)
                    node = (node << 1) | hinted_bit(CountTree::at(h, ctx, node), h, CountTree::stride0, (cnt >> i) & 1);
                i64 c = node - 64;
                if (c > 49) {
                    damaged();
                    c = 49;
                }
                m.nz7[by * C + bx] = c;
                m.nzrem[by * C + bx] = c;
            }
        }
    }

    // Interior coefficients INTERIOR[z0:z1] of every block, skipping blocks with none left.
    void interior(int z0, int z1, i64 r0, i64 r1) {
        const i64 C = m.C;
        const int width = z1 - z0;
        for (i64 by = r0; by < r1; ++by) {
            for (i64 bx = 0; bx < C; ++bx) {
                i64 rem = m.nzrem[by * C + bx];
                if (rem == 0) continue;
                std::int16_t* co = block(by, bx);
                const std::int16_t* above = by > 0 ? block(by - 1, bx) : nullptr;
                const std::int16_t* left = bx > 0 ? block(by, bx - 1) : nullptr;
                const std::int16_t* aboveleft = by > 0 && bx > 0 ? block(by - 1, bx - 1) : nullptr;
                for (int k = z0; k < z1; ++k) {
                    const int pos = INTERIOR.pos[k];
                    i64 prior;
                    int sa = 0, sl = 0;
                    if (above && left) {
                        const i64 a = iabs(above[pos]), l = iabs(left[pos]), al = iabs(aboveleft[pos]);
                        prior = (13 * (a + l) + 6 * al + 16) >> 5;
                        sa = sgn3(above[pos]);
                        sl = sgn3(left[pos]);
                    } else if (above) {
                        prior = iabs(above[pos]);
                        sa = sgn3(above[pos]);
                    } else if (left) {
                        prior = iabs(left[pos]);
                        sl = sgn3(left[pos]);
                    } else {
                        prior = 0;
                    }
                    const int pb = capped_bitlen(prior);
                    int rs;
                    const int h = coef_hint(by, bx, width, k - z0, pos, rs);
                    const i64 eb = InteriorExp::at(h, NZ_BIN[rem], k, pb, 0);
                    const i64 parent = h > 0 ? eb - h * InteriorExp::stride0 : InteriorParent::at(k, pb, 0);
                    const i64 sctx = m.cross_sign ? CrossSign::at(k, sa, sl, rs) : InteriorSign::at(k, sa, sl);
                    i64 v = value(eb, parent, sctx, pos, -1, enc ? co[pos] : 0, 16);
                    if (!enc) {
                        if (v < -32768 || v > 32767) {
                            damaged();
                            v = 0;
                        }
                        co[pos] = static_cast<std::int16_t>(v);
                    }
                    if (v != 0) {
                        if (--rem == 0) break;
                    }
                }
                m.nzrem[by * C + bx] = rem;
            }
        }
    }

    // Predict edge coefficient pos from the neighbour across the block boundary (Lepton's idea). For the
    // first row (horizontal, pos = u) the column-u profile of the block above at its last pixel row must
    // meet this block's profile at pixel row 0; everything in that equation is known except this
    // coefficient. Likewise the first column against the block to the left.
    JSK_INLINE i64 edge_prediction(i64 by, i64 bx, int pos, bool horizontal) const {
        const std::int16_t* co = block(by, bx);
        const i64* q = m.q;
        i64 num = 0, den;
        if (horizontal) {
            const int u = pos;
            const std::int16_t* above = block(by - 1, bx);
            for (int v = 0; v < 8; ++v) num += K[v][7] * i64(above[v * 8 + u]) * q[v * 8 + u];
            for (int v = 1; v < 8; ++v) num -= K[v][0] * i64(co[v * 8 + u]) * q[v * 8 + u];
            den = 2048 * std::max<i64>(q[u], 1);
        } else {
            const int v = pos / 8;
            const std::int16_t* left = block(by, bx - 1);
            for (int u = 0; u < 8; ++u) num += K[u][7] * i64(left[v * 8 + u]) * q[v * 8 + u];
            for (int u = 1; u < 8; ++u) num -= K[u][0] * i64(co[v * 8 + u]) * q[v * 8 + u];
            den = 2048 * std::max<i64>(q[v * 8], 1);
        }
        return floordiv(2 * num + den, 2 * den);
    }

    // First row and first column of every block, each preceded by its nonzero count.
    void edges(i64 r0, i64 r1) {
        const i64 C = m.C;
        for (i64 by = r0; by < r1; ++by) {
            for (i64 bx = 0; bx < C; ++bx) {
                std::int16_t* co = block(by, bx);
                int eob_x = 0, eob_y = 0;
                const i64 nz = m.nz7[by * C + bx];
                if (nz) {
                    for (int v = 1; v < 8; ++v)
                        for (int u = 1; u < 8; ++u)
                            if (co[v * 8 + u] != 0) {
                                eob_y = v;
                                if (u > eob_x) eob_x = u;
                            }
                }
                const i64 nzb = (nz + 3) / 7;
                for (int d = 0; d < 2; ++d) {
                    const bool horizontal = d == 0;
                    const int step = horizontal ? 1 : 8;
                    const bool have = horizontal ? by > 0 : bx > 0;
                    int cnt = 0;
                    if (enc)
                        for (int i = 1; i < 8; ++i) cnt += co[i * step] != 0;
                    int h = hint_of(by, bx, N_EDGES, 7 * d, EDGES[7 * d]);
                    const i64 base = EdgeCount::at(h, d, horizontal ? eob_x : eob_y, nzb, 0);
                    int node = 1;
                    for (int i = 2; i >= 0; --i)
                        node = (node << 1) | hinted_bit(base + node, h, EdgeCount::stride0, (cnt >> i) & 1);
                    int rem = node - 8;
                    for (int i = 1; i < 8; ++i) {
                        if (rem == 0) break;
                        const int pos = i * step;
                        const int idx = 7 * d + i - 1;
                        const i64 pred = have ? edge_prediction(by, bx, pos, horizontal) : 0;
                        const int pbl = capped_bitlen(iabs(pred));
                        i64 nprior;
                        if (by > 0 && bx > 0)
                            nprior = (iabs(block(by - 1, bx)[pos]) + iabs(block(by, bx - 1)[pos]) + 1) >> 1;
                        else if (by > 0)
                            nprior = iabs(block(by - 1, bx)[pos]);
                        else if (bx > 0)
                            nprior = iabs(block(by, bx - 1)[pos]);
                        else
                            nprior = 0;
                        const int nb = std::min(capped_bitlen(nprior), NB_BINS - 1);
                        int rs;
                        h = coef_hint(by, bx, N_EDGES, idx, pos, rs);
                        const i64 eb = EdgeExp::at(h, rem - 1, idx, pbl, nb, 0);
                        const i64 sc = m.cross_sign ? CrossEdgeSign::at(idx, sgn3(pred), pbl, rs)
                                                    : EdgeSign::at(idx, sgn3(pred), pbl);
                        const i64 parent = h > 0 ? eb - h * EdgeExp::stride0 : EdgeParent::at(idx, pbl, 0);
                        const i64 top = EdgeTop::at(idx, pbl, 0);
                        i64 v = value(eb, parent, sc, pos, top, enc ? co[pos] : 0, 16);
                        if (!enc) {
                            if (v < -32768 || v > 32767) {
                                damaged();
                                v = 0;
                            }
                            co[pos] = static_cast<std::int16_t>(v);
                        }
                        if (v != 0) --rem;
                    }
                    if (rem != 0) damaged();
                }
            }
        }
    }

    // Twice the AC-only (DC left out) pixel values of one block extrapolated half a pixel beyond its
    // four borders, from the two outermost pixel lines (3 p0 - p1), units 8 * pixel * 2^12:
    // g[0] top (from rows 0, 1), g[1] bottom (rows 7, 6), g[2] left (columns 0, 1), g[3] right (7, 6).
    // K[v][7 - y] = (-1)^v K[v][y], so even and odd frequencies are summed apart and the far side comes
    // from the same sums with the odd part negated; likewise pixel 7 - x from the sums of pixel x.
    JSK_INLINE void edge_gradients(const std::int16_t* co, i64 g[4][8]) const {
        i64 sums[4][8] = {};
        bool any_ac = false;
        for (int pos = 1; pos < 64; ++pos) {
            const i64 f = co[pos];
            if (f == 0) continue;
            any_ac = true;
            const i64 fq = f * m.q[pos];
            const int v = pos >> 3, u = pos & 7;
            sums[v & 1][u] += KG[v] * fq;
            sums[2 + (u & 1)][v] += KG[u] * fq;
        }
        if (!any_ac) {
            for (int j = 0; j < 4; ++j)
                for (int x = 0; x < 8; ++x) g[j][x] = 0;
            return;
        }
        for (int j = 0; j < 2; ++j) {  // j: 0 = rows (top / bottom), 1 = columns (left / right)
            const int e = 2 * j;
            for (int x = 0; x < 4; ++x) {
                i64 ev_n = 0, od_n = 0, ev_f = 0, od_f = 0;
                for (int u = 0; u < 8; u += 2) {
                    ev_n += K[u][x] * ((sums[e][u] + sums[e + 1][u]) >> 4);
                    ev_f += K[u][x] * ((sums[e][u] - sums[e + 1][u]) >> 4);
                }
                for (int u = 1; u < 8; u += 2) {
                    od_n += K[u][x] * ((sums[e][u] + sums[e + 1][u]) >> 4);
                    od_f += K[u][x] * ((sums[e][u] - sums[e + 1][u]) >> 4);
                }
                g[e][x] = (ev_n + od_n) >> 6;
                g[e][7 - x] = (ev_n - od_n) >> 6;
                g[e + 1][x] = (ev_f + od_f) >> 6;
                g[e + 1][7 - x] = (ev_f - od_f) >> 6;
            }
        }
    }

    // DC of every block, predicted from its own AC and its neighbours' pixels at the shared edges. Each
    // of the 8 pixels along the top (left) boundary gives an estimate: extrapolate the block above (left)
    // one half pixel past its last row (column) using its last two, do the same backwards for this
    // block's AC-only first two, and the DC is what makes them meet. The prediction is the trimmed mean
    // estimate; the spread of the estimates and the disagreement between the two sides choose contexts.
    // The gradients of the previous block row are kept between calls (grad_prev), so the rows of a
    // component may come in several calls.
    void dc(i64 r0, i64 r1) {
        const i64 C = m.C;
        const i64 q0 = std::max<i64>(m.q[0], 1);
        const i64 unit = 2 * q0 * 4096;  // one DC step in doubled line units
        grad_prev.resize(static_cast<std::size_t>(C));
        grad_cur.resize(static_cast<std::size_t>(C));
        for (i64 by = r0; by < r1; ++by) {
            Gradients* const prev = grad_prev.data();
            Gradients* const cur = grad_cur.data();
            for (i64 bx = 0; bx < C; ++bx) {
                std::int16_t* co = block(by, bx);
                i64(&g)[4][8] = cur[bx].g;
                edge_gradients(co, g);
                int n = 0;
                i64 lo = i64(1) << 62, hi = -(i64(1) << 62);
                i64 sum_a = 0, sum_l = 0;
                if (by > 0) {
                    const i64 dca = i64(block(by - 1, bx)[0]) * q0 * 8192;
                    for (int x = 0; x < 8; ++x) {
                        const i64 e = prev[bx].g[1][x] + dca - g[0][x];
                        sum_a += e;
                        lo = std::min(lo, e);
                        hi = std::max(hi, e);
                    }
                    n += 8;
                }
                if (bx > 0) {
                    const i64 dcl = i64(block(by, bx - 1)[0]) * q0 * 8192;
                    for (int y = 0; y < 8; ++y) {
                        const i64 e = cur[bx - 1].g[3][y] + dcl - g[2][y];
                        sum_l += e;
                        lo = std::min(lo, e);
                        hi = std::max(hi, e);
                    }
                    n += 8;
                }
                i64 pred;
                int u1, u2;
                if (n > 0) {
                    const i64 total = sum_a + sum_l - lo - hi;
                    const i64 d = (n - 2) * unit;
                    pred = floordiv(2 * total + d, 2 * d);
                    u1 = cap(bit_length((hi - lo) / unit));
                    u2 = n == 16 ? cap(bit_length(iabs(sum_a - sum_l) / (8 * unit)) + 1) : 0;
                } else {
                    pred = 0;
                    u1 = PRIOR_BINS - 1;
                    u2 = PRIOR_BINS - 1;
                }
                pred = std::max<i64>(-32768, std::min<i64>(32767, pred));
                const int h = m.ref ? 0 : hint(by, bx, 1, 0);  // cross-channel models: no DC hint
                const i64 eb = DcExp::at(h, u1, u2, 0);
                const i64 r0 = enc ? i64(co[0]) - pred : 0;
                const i64 parent = h > 0 ? eb - h * DcExp::stride0 : -1;
                const i64 r = value(eb, parent, DcSign::at(u1, u2), 0, -1, r0, EXP_N);
                if (!enc) {
                    i64 dcv = pred + r;
                    if (dcv < -32768 || dcv > 32767) {
                        damaged();
                        dcv = 0;
                    }
                    co[0] = static_cast<std::int16_t>(dcv);
                }
            }
            std::swap(grad_prev, grad_cur);
        }
    }

    // Code block rows r0..r1-1 of pass ``pass``; successive calls must cover 0..R in order.
    void rows(int pass, i64 r0, i64 r1) {
        const PassSpec& spec = PASSES[pass];
        switch (spec.kind) {
            case COUNTS: counts(r0, r1); break;
            case INTERIOR_GROUP: interior(spec.z0, spec.z1, r0, r1); break;
            case EDGE_PASS: edges(r0, r1); break;
            case DC_PASS: dc(r0, r1); break;
        }
    }

    struct Gradients {
        i64 g[4][8];
    };
    std::vector<Gradients> grad_prev, grad_cur;  // dc: AC-only edge gradients of the previous / this block row
};

template <class Coder>
void run(Coder& coder, int pass, const Component& comp, const Counters& T) {
    if (pass < 0 || pass >= N_PASSES) throw std::out_of_range("no such adaptive pass");
    Pass<Coder> p{coder, comp, T, {}, {}};
    p.rows(pass, 0, comp.R);
}

}  // namespace

void run_pass(BinaryEncoder& coder, int pass, const Component& comp, const Counters& T) { run(coder, pass, comp, T); }
void run_pass(BinaryDecoder& coder, int pass, const Component& comp, const Counters& T) { run(coder, pass, comp, T); }

namespace {

// Block rows one pipeline step decodes when several threads share the work: small enough that the
// next pass can follow closely, large enough that taking the lock is rare (a row is ~10-100 us).
constexpr i64 PIPELINE_ROWS = 4;

// One pass of one component in the pipeline. ``next`` is advanced by the thread running the unit;
// ``done`` (rows finished, readable by the next pass) and ``running`` only under the pipeline's lock.
struct Unit {
    Pass<BinaryDecoder> pass;
    int index;
    i64 rows;
    i64 next = 0;
    i64 done = 0;
    bool running = false;
};

}  // namespace

void decode_pipelined(const std::vector<PassStreams>& comps, int threads) {
    for (const PassStreams& ps : comps)
        for (int p = 0; p < N_PASSES; ++p)
            if (ps.coders[p] == nullptr || (ps.one_stream && ps.coders[p] != ps.coders[0]))
                throw std::invalid_argument("pipelined passes take a decoder per pass (or one for all)");
    for (std::size_t c = 0; c < comps.size(); ++c) {
        const int r = comps[c].ref;
        if (r >= 0 && (static_cast<std::size_t>(r) >= comps.size() || static_cast<std::size_t>(r) == c ||
                       comps[r].ref >= 0 || comps[c].comp.ref == nullptr ||
                       comps[r].comp.R != comps[c].comp.R * comps[c].comp.fy))
            throw std::invalid_argument("a component's reference must be another one, without a reference, covering it");
    }
    std::vector<Unit> units;
    units.reserve(comps.size() * N_PASSES);
    std::size_t left = 0;  // units with rows still to decode
    for (const PassStreams& ps : comps)
        for (int p = 0; p < N_PASSES; ++p) {
            units.push_back(Unit{Pass<BinaryDecoder>{*ps.coders[p], ps.comp, ps.counters, {}, {}}, p, ps.comp.R});
            if (ps.comp.R > 0) ++left;
        }
    // One thread runs each pass to the end before the next (the order of run_pass, best for the caches).
    const i64 step = threads > 1 ? PIPELINE_ROWS : (i64(1) << 62);
    std::mutex mu;
    std::condition_variable cv;
    std::exception_ptr error;
    auto work = [&]() {
        std::unique_lock<std::mutex> lock(mu);
        for (;;) {
            if (left == 0 || error) return;
            // The latest runnable pass first: the pipeline stays short, so the end has no long serial tail.
            // The earliest unfinished pass of a component is always runnable unless running, so when
            // nothing is, some unit is running and will wake us.
            Unit* pick = nullptr;
            i64 upto = 0;
            for (int p = N_PASSES - 1; p >= 0 && pick == nullptr; --p)
                for (std::size_t c = 0; c < comps.size(); ++c) {
                    Unit& u = units[c * N_PASSES + p];
                    if (u.running || u.next == u.rows) continue;
                    const i64 before = p == 0 ? u.rows : units[c * N_PASSES + p - 1].done;
                    i64 ready = comps[c].one_stream && before < u.rows ? 0 : before;
                    if (comps[c].ref >= 0)  // the reference rows this pass reads must be decoded
                        ready = std::min(ready, units[comps[c].ref * N_PASSES + p].done / comps[c].comp.fy);
                    if (ready > u.next) {
                        pick = &u;
                        upto = std::min(ready, u.next + step);
                        break;
                    }
                }
            if (pick == nullptr) {
                cv.wait(lock);
                continue;
            }
            pick->running = true;
            const i64 from = pick->next;
            lock.unlock();
            try {
                pick->pass.rows(pick->index, from, upto);
            } catch (...) {
                lock.lock();
                if (!error) error = std::current_exception();
                pick->running = false;
                cv.notify_all();
                return;
            }
            lock.lock();
            pick->running = false;
            pick->next = pick->done = upto;
            if (upto == pick->rows) --left;
            cv.notify_all();
        }
    };
    std::vector<std::thread> pool;
    for (int i = 1; i < threads; ++i) {
        try {
            pool.emplace_back(work);
        } catch (const std::system_error&) {
            break;  // fewer threads: the same result, later
        }
    }
    work();
    for (std::thread& t : pool) t.join();
    if (error) std::rethrow_exception(error);
}

i64 cross_mean(const Component& m, i64 by, i64 bx, int pos) {
    const i64 LC = m.C * m.fx;
    i64 sum = 0;
    for (int dy = 0; dy < m.fy; ++dy)
        for (int dx = 0; dx < m.fx; ++dx) {
            const i64 b = (by * m.fy + dy) * LC + bx * m.fx + dx;
            sum += pos < 0 ? m.ref_nz7[b] : m.ref[b * 64 + pos];
        }
    if (sum == 0) return 0;
    // floor(sum / (fy fx)); the usual 1, 2 and 4 without a division (floor(a / 2^k) = ~(~a >> k) for a < 0)
    switch (m.fy * m.fx) {
        case 1: return sum;
        case 2: return sum >= 0 ? sum >> 1 : ~((~sum) >> 1);
        case 4: return sum >= 0 ? sum >> 2 : ~((~sum) >> 2);
        default: return floordiv(sum, i64(m.fy) * m.fx);
    }
}

int cross_bucket(const Component& m, int pos, i64 mean) {
    // Interior nonzero count (0..49) -> bucket.
    static constexpr std::uint8_t COUNT_BUCKET[50] = {0, 1, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5,
                                                      5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 7, 7,
                                                      7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7};
    if (pos < 0) return COUNT_BUCKET[mean < 49 ? mean : 49];
    if (mean == 0) return 0;
    const i64 a = iabs(floordiv(mean * m.ref_q[pos], m.q[pos] > 1 ? m.q[pos] : 1));
    return std::min(7, bit_length(a < 127 ? a : 127));
}

}  // namespace adaptive
}  // namespace jsk
