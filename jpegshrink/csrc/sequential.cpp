// Sequential (baseline / extended) Huffman scans: decode to coefficients and re-encode bit-exactly.
// Both coders walk the scan interval by interval (an interval is the data between restart markers).
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

EncodeResult encode_sequential(i64 n_intervals, const ScanGeometry& g, const EncodeTables& t, Coefficients coef,
                               const i64* lastnz, const i64* pads, const i64* stops, i64 capacity) {
    const int nb = g.nb;
    EncodeResult res;
    res.ends.assign(static_cast<std::size_t>(n_intervals), 0);
    BitWriter w(res.out, capacity);
    const std::uint32_t* co_ = t.ehufco;
    const std::int32_t* si_ = t.ehufsi;
    for (i64 i = 0; i < n_intervals; ++i) {
        i64 m0, m1;
        g.interval(i, m0, m1);
        if (0 <= stops[i] && stops[i] < m1) m1 = stops[i] > m0 ? stops[i] : m0;
        w.acc = 0;
        w.nbits = 0;
        i64 pred[4] = {0, 0, 0, 0};
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
                if (size == 0) {
                    res.status = NO_SYMBOL;
                    res.length = w.op;
                    return res;
                }
                i64 bits = (diff < 0 ? diff - 1 : diff) & ((i64(1) << s) - 1);
                w.put((u64(co_[dc + s]) << s) | u64(bits), size + s);
                const i64 last = lastnz[blk];
                u64 mask = nonzero_mask(co, 1, static_cast<int>(last));
                int prev = 0;
                while (mask) {
                    const int k = ctz(mask);
                    mask &= mask - 1;
                    int r = k - prev - 1;
                    prev = k;
                    v = co[ZIGZAG[k]];
                    while (r > 15) {
                        size = si_[ac + 0xF0];
                        if (size == 0) {
                            res.status = NO_SYMBOL;
                            res.length = w.op;
                            return res;
                        }
                        w.put(co_[ac + 0xF0], size);
                        r -= 16;
                    }
                    s = bit_length(iabs(v));
                    const int sym = (r << 4) | s;
                    size = s > 15 ? 0 : si_[ac + sym];
                    if (size == 0) {
                        res.status = NO_SYMBOL;
                        res.length = w.op;
                        return res;
                    }
                    bits = (v < 0 ? v - 1 : v) & ((i64(1) << s) - 1);
                    w.put((u64(co_[ac + sym]) << s) | u64(bits), size + s);
                }
                if (last < 63) {
                    size = si_[ac + 0];
                    if (size == 0) {
                        res.status = NO_SYMBOL;
                        res.length = w.op;
                        return res;
                    }
                    w.put(co_[ac + 0], size);
                }
            }
        }
        w.flush(pads[i] >= 0 ? pads[i] : 0xFF);
        if (i < n_intervals - 1) w.marker(0xD0 + (i & 7));
        res.ends[i] = w.op;
    }
    res.length = w.op;
    return res;
}

}  // namespace jsk
