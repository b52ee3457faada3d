// Sequential (baseline / extended) Huffman scans: decode to coefficients and re-encode bit-exactly.
// Both coders walk the scan interval by interval (an interval is the data between restart markers).
#include <algorithm>
#include <exception>
#include <functional>
#include <system_error>
#include <thread>
#include <vector>

#include "bitio.h"

namespace jsk {

DecodeResult decode_sequential(const std::uint8_t* data, i64 size, const i64* starts, const i64* ends, i64 n,
                               const ScanGeometry& g, const DecodeTables& t, Coefficients coef,
                               IntervalOutputs io) {
    const int nb = g.nb;
    const Unstuffed u = unstuff(data, size, starts, ends, n);
    const i64 bufsize = static_cast<i64>(u.buf.size());
    i64 blks[MAX_BLOCKS_PER_MCU];
    for (i64 i = 0; i < n; ++i) {
        i64 m0, m1;
        g.interval(i, m0, m1);
        const i64 p0 = u.starts[i];
        BitReader r{u.buf.data(), bufsize, p0};
        const i64 avail = 8 * (u.ends[i] - p0);
        i64 pred[4] = {0, 0, 0, 0};
        i64 my = m0 / g.mcux;
        i64 mx = m0 - my * g.mcux - 1;  // advanced at the top of each MCU
        for (i64 m = m0; m < m1; ++m) {
            if (++mx == g.mcux) {
                mx = 0;
                ++my;
            }
            int status = OK;
            for (int b = 0; b < nb; ++b) {
                const i64 blk = blks[b] = g.block(b, my, mx);
                std::int16_t* co = coef.block(blk);
                const i64 c = g.field(b, G_PRED);
                r.refill();
                int s, length;
                r.decode(t, g.field(b, G_DC), s, length);
                if (length == 0 || s > 15) {
                    status = BAD_CODE;
                    break;
                }
                r.skip(length);
                if (s) {
                    const i64 v = extend(r.peek(s), s);
                    r.skip(s);
                    pred[c] += v;
                }
                co[0] = static_cast<std::int16_t>(pred[c]);
                const i64 ac = g.field(b, G_AC);
                int k = 1;
                while (k < 64) {
                    r.refill();
                    int rs;
                    r.decode(t, ac, rs, length);
                    if (length == 0) {
                        status = BAD_CODE;
                        break;
                    }
                    r.skip(length);
                    const int rr = rs >> 4;
                    s = rs & 15;
                    if (s) {
                        k += rr;
                        if (k > 63) {
                            status = BAD_INDEX;
                            break;
                        }
                        co[ZIGZAG[k]] = static_cast<std::int16_t>(extend(r.peek(s), s));
                        r.skip(s);
                        ++k;
                    } else if (rr == 15) {
                        k += 16;
                    } else {
                        break;
                    }
                }
                if (status != OK) break;
            }
            if (status != OK || r.consumed(p0) > avail) {
                if (r.consumed(p0) <= avail) return DecodeResult{status, starts[i] + (r.p - p0), 0};
                io.truncated[i] = m;  // the data ended inside MCU m: forget its partial blocks
                for (int b = 0; b < nb; ++b) std::memset(coef.block(g.block(b, my, mx)), 0, 64 * sizeof(std::int16_t));
                break;
            }
        }
        if (io.truncated[i] < 0) {
            const int gap = static_cast<int>((8 - r.consumed(p0) % 8) % 8);
            r.refill();
            io.padbits[i] = gap;
            io.pads[i] = gap > 0 ? r.peek(gap) : 0;
        }
    }
    (void)blks;
    return DecodeResult{};
}

namespace {

// Code MCUs m0..m1-1 of one interval, from DC predictors ``pred`` (updated); OK or NO_SYMBOL.
template <class Writer>
int encode_mcus(Writer& w, const ScanGeometry& g, const EncodeTables& t, Coefficients coef, i64 m0, i64 m1,
                i64 pred[4]) {
    const int nb = g.nb;
    const std::uint32_t* co_ = t.ehufco;
    const std::int32_t* si_ = t.ehufsi;
    i64 my = m0 / g.mcux;
    i64 mx = m0 - my * g.mcux - 1;
    for (i64 m = m0; m < m1; ++m) {
        if (++mx == g.mcux) {
            mx = 0;
            ++my;
        }
        for (int b = 0; b < nb; ++b) {
            const i64 blk = g.block(b, my, mx);
            const std::int16_t* co = coef.block(blk);
            const i64 c = g.field(b, G_PRED);
            const i64 dc = g.field(b, G_DC) * 256;
            const i64 ac = g.field(b, G_AC) * 256;
            i64 v = co[0];
            const i64 diff = v - pred[c];
            pred[c] = v;
            int s = bit_length(iabs(diff));
            int size = si_[dc + s];
            if (size == 0) return NO_SYMBOL;
            i64 bits = (diff < 0 ? diff - 1 : diff) & ((i64(1) << s) - 1);
            w.put((u64(co_[dc + s]) << s) | u64(bits), size + s);
            u64 mask = zigzag_nonzero_mask(co) & ~u64(1);  // the AC coefficients to code
            const int last = mask ? 63 - __builtin_clzll(mask) : 0;
            int prev = 0;
            while (mask) {
                const int k = ctz(mask);
                mask &= mask - 1;
                int r = k - prev - 1;
                prev = k;
                v = co[ZIGZAG[k]];
                while (r > 15) {
                    size = si_[ac + 0xF0];
                    if (size == 0) return NO_SYMBOL;
                    w.put(co_[ac + 0xF0], size);
                    r -= 16;
                }
                s = bit_length(iabs(v));
                const int sym = (r << 4) | s;
                size = s > 15 ? 0 : si_[ac + sym];
                if (size == 0) return NO_SYMBOL;
                bits = (v < 0 ? v - 1 : v) & ((i64(1) << s) - 1);
                w.put((u64(co_[ac + sym]) << s) | u64(bits), size + s);
            }
            if (last < 63) {
                size = si_[ac + 0];
                if (size == 0) return NO_SYMBOL;
                w.put(co_[ac + 0], size);
            }
        }
    }
    return OK;
}

// The DC predictors a coder has after MCU m - 1 of an interval that started before it: the DC of each
// predictor's last block in that MCU (every MCU of a scan holds a block of every component).
void predictors_after(const ScanGeometry& g, Coefficients coef, i64 m, i64 pred[4]) {
    const i64 my = m / g.mcux, mx = m - my * g.mcux;
    for (int b = 0; b < g.nb; ++b) pred[g.field(b, G_PRED)] = coef.block(g.block(b, my, mx))[0];
}

// Huffman codes are bit strings, so a run of MCUs can be coded apart and appended: segments 1.. are
// coded on their own threads into unstuffed writers, then fed bit for bit through ``w`` (which stuffs).
int encode_mcus_parallel(BitWriter& w, const ScanGeometry& g, const EncodeTables& t, Coefficients coef, i64 m0,
                         i64 m1, i64 pred[4], int parts) {
    struct Segment {
        i64 m0, m1;
        std::vector<std::uint8_t> out;
        i64 op = 0;
        u64 acc = 0;
        int nbits = 0;
        int status = OK;
        std::exception_ptr error;
    };
    std::vector<Segment> seg(static_cast<std::size_t>(parts));
    for (int j = 0; j < parts; ++j) {
        seg[j].m0 = m0 + (m1 - m0) * j / parts;
        seg[j].m1 = m0 + (m1 - m0) * (j + 1) / parts;
    }
    auto code = [&](Segment& sg) {
        try {
            i64 p[4] = {0, 0, 0, 0};
            predictors_after(g, coef, sg.m0 - 1, p);
            RawBitWriter rw(sg.out, 1024 + (sg.m1 - sg.m0) * 16);
            sg.status = encode_mcus(rw, g, t, coef, sg.m0, sg.m1, p);
            sg.op = rw.op;
            sg.acc = rw.acc;
            sg.nbits = rw.nbits;
        } catch (...) {
            sg.error = std::current_exception();
        }
    };
    std::vector<std::thread> pool;
    int inline_from = parts;  // segments no thread could be started for run here, after segment 0
    for (int j = 1; j < parts; ++j) {
        try {
            pool.emplace_back(code, std::ref(seg[j]));
        } catch (const std::system_error&) {
            inline_from = j;
            break;
        }
    }
    int status = encode_mcus(w, g, t, coef, seg[0].m0, seg[0].m1, pred);
    for (int j = inline_from; j < parts; ++j) code(seg[j]);
    for (std::thread& th : pool) th.join();
    for (int j = 1; j < parts; ++j) {
        if (seg[j].error) std::rethrow_exception(seg[j].error);
        if (status == OK) status = seg[j].status;
    }
    if (status != OK) return status;
    for (int j = 1; j < parts; ++j) {
        const std::uint8_t* o = seg[j].out.data();
        i64 k = 0;
        for (; k + 4 <= seg[j].op; k += 4)  // 32 bits at a time, big-endian as written
            w.put((u64(o[k]) << 24) | (u64(o[k + 1]) << 16) | (u64(o[k + 2]) << 8) | u64(o[k + 3]), 32);
        for (; k < seg[j].op; ++k) w.put(o[k], 8);
        if (seg[j].nbits > 0) w.put(seg[j].acc & ((u64(1) << seg[j].nbits) - 1), seg[j].nbits);
    }
    // the coder's predictors after the last MCU (nothing reads them, but keep encode_mcus' contract)
    predictors_after(g, coef, m1 - 1, pred);
    return OK;
}

}  // namespace

EncodeResult encode_sequential(i64 n_intervals, const ScanGeometry& g, const EncodeTables& t, Coefficients coef,
                               const i64* pads, const i64* stops, i64 capacity, int threads) {
    EncodeResult res;
    res.ends.assign(static_cast<std::size_t>(n_intervals), 0);
    BitWriter w(res.out, capacity);
    for (i64 i = 0; i < n_intervals; ++i) {
        i64 m0, m1;
        g.interval(i, m0, m1);
        if (0 <= stops[i] && stops[i] < m1) m1 = stops[i] > m0 ? stops[i] : m0;
        w.acc = 0;
        w.nbits = 0;
        i64 pred[4] = {0, 0, 0, 0};
        // Segments of at least PARALLEL_MCUS MCUs, one per thread; the bytes are the same either way.
        const i64 most = (m1 - m0) / PARALLEL_MCUS;
        const int parts = static_cast<int>(std::max<i64>(1, std::min<i64>(threads, most)));
        const int status = parts > 1 ? encode_mcus_parallel(w, g, t, coef, m0, m1, pred, parts)
                                     : encode_mcus(w, g, t, coef, m0, m1, pred);
        if (status != OK) {
            res.status = status;
            res.length = w.op;
            return res;
        }
        w.flush(pads[i] >= 0 ? pads[i] : 0xFF);
        if (i < n_intervals - 1) w.marker(0xD0 + (i & 7));
        res.ends[i] = w.op;
    }
    res.length = w.op;
    return res;
}

}  // namespace jsk
