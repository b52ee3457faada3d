// Progressive Huffman scans (DC first/refine, AC first/refine): decode and bit-exact re-encode.
//
// The encoder follows libjpeg's jcphuff.c exactly (EOB runs capped at 0x7FFF, refinement correction
// bits flushed after 937 buffered bits, runs flushed at every restart), which is what libjpeg,
// libjpeg-turbo and mozjpeg write. A shorter EOB-run cap (some encoders never use runs) is a parameter.
#include <algorithm>

#include "bitio.h"

namespace jsk {

namespace {

enum Mode { DC_FIRST = 0, DC_REFINE = 1, AC_FIRST = 2, AC_REFINE = 3 };
// libjpeg's MAX_CORR_BITS - DCTSIZE2 + 1: buffered correction bits that force an EOB run out.
constexpr int MAX_BUFFERED = 1000 - 64 + 1;
// Packed correction-bit queue: MAX_BUFFERED + 2 blocks' worth fits with room to spare.
constexpr int QUEUE_WORDS = 32;

Mode scan_mode(int ss, int ah) {
    if (ss == 0) return ah == 0 ? DC_FIRST : DC_REFINE;
    return ah == 0 ? AC_FIRST : AC_REFINE;
}

}  // namespace

DecodeResult decode_progressive(const std::uint8_t* data, i64 size, const i64* starts, const i64* ends, i64 n,
                                const ScanGeometry& g, const DecodeTables& t, Coefficients coef, i64* lastnz,
                                ProgressiveParams pp, IntervalOutputs io) {
    i64 longest_run = 0;
    const int nb = g.nb;
    const Mode mode = scan_mode(pp.ss, pp.ah);
    const int ss = pp.ss, se = pp.se, al = pp.al;
    const Unstuffed u = unstuff(data, size, starts, ends, n);
    const i64 bufsize = static_cast<i64>(u.buf.size());
    const i64 p1 = i64(1) << al;
    const i64 m1 = -p1;
    for (i64 i = 0; i < n; ++i) {
        i64 m0, mend;
        g.interval(i, m0, mend);
        const i64 p0 = u.starts[i];
        BitReader r{u.buf.data(), bufsize, p0};
        const i64 avail = 8 * (u.ends[i] - p0);
        i64 pred[4] = {0, 0, 0, 0};
        i64 eobrun = 0;
        i64 my = m0 / g.mcux;
        i64 mx = m0 - my * g.mcux - 1;
        for (i64 m = m0; m < mend; ++m) {
            if (++mx == g.mcux) {
                mx = 0;
                ++my;
            }
            int status = OK;
            for (int b = 0; b < nb; ++b) {
                const i64 blk = g.block(b, my, mx);
                std::int16_t* co = coef.block(blk);
                r.refill();
                if (mode == DC_FIRST) {
                    int s, length;
                    r.decode(t, g.field(b, G_DC), s, length);
                    if (length == 0 || s > 15) {
                        status = BAD_CODE;
                        break;
                    }
                    r.skip(length);
                    const i64 c = g.field(b, G_PRED);
                    if (s) {
                        pred[c] += extend(r.peek(s), s);
                        r.skip(s);
                    }
                    co[0] = static_cast<std::int16_t>(shl(pred[c], al));
                } else if (mode == DC_REFINE) {
                    if (r.peek(1)) co[0] = static_cast<std::int16_t>(co[0] | p1);
                    r.skip(1);
                } else if (mode == AC_FIRST) {
                    if (eobrun > 0) {
                        --eobrun;
                        continue;
                    }
                    const i64 ac = g.field(b, G_AC);
                    int k = ss;
                    while (k <= se) {
                        r.refill();
                        int rs, length;
                        r.decode(t, ac, rs, length);
                        if (length == 0) {
                            status = BAD_CODE;
                            break;
                        }
                        r.skip(length);
                        const int rr = rs >> 4;
                        const int s = rs & 15;
                        if (s) {
                            k += rr;
                            if (k > se) {
                                status = BAD_INDEX;
                                break;
                            }
                            co[ZIGZAG[k]] = static_cast<std::int16_t>(extend(r.peek(s), s) * p1);
                            if (k > lastnz[blk]) lastnz[blk] = k;
                            r.skip(s);
                        } else if (rr == 15) {
                            k += 15;
                        } else {
                            eobrun = i64(1) << rr;
                            if (rr) {
                                eobrun += r.peek(rr);
                                r.skip(rr);
                            }
                            if (eobrun > longest_run) longest_run = eobrun;
                            --eobrun;
                            break;
                        }
                        ++k;
                    }
                    if (status != OK) break;
                } else {  // AC_REFINE, after libjpeg's decode_mcu_AC_refine
                    const i64 ac = g.field(b, G_AC);
                    int k = ss;
                    if (eobrun == 0) {
                        while (k <= se) {
                            r.refill();
                            int rs, length;
                            r.decode(t, ac, rs, length);
                            if (length == 0) {
                                status = BAD_CODE;
                                break;
                            }
                            r.skip(length);
                            int rr = rs >> 4;
                            const int s = rs & 15;
                            i64 newval = 0;
                            if (s) {
                                if (s != 1) {
                                    status = BAD_REFINEMENT;
                                    break;
                                }
                                newval = r.peek(1) ? p1 : m1;
                                r.skip(1);
                            } else if (rr != 15) {
                                eobrun = i64(1) << rr;
                                if (rr) {
                                    eobrun += r.peek(rr);
                                    r.skip(rr);
                                }
                                if (eobrun > longest_run) longest_run = eobrun;
                                break;
                            }
                            while (k <= se) {
                                r.refill();
                                const int z = ZIGZAG[k];
                                const i64 cv = co[z];
                                if (cv != 0) {
                                    if (r.peek(1)) {
                                        if ((cv & p1) == 0) co[z] = static_cast<std::int16_t>(cv >= 0 ? cv + p1 : cv + m1);
                                    }
                                    r.skip(1);
                                } else {
                                    if (--rr < 0) break;
                                }
                                ++k;
                            }
                            if (newval != 0) {
                                if (k > se) {
                                    status = BAD_INDEX;
                                    break;
                                }
                                co[ZIGZAG[k]] = static_cast<std::int16_t>(newval);
                                if (k > lastnz[blk]) lastnz[blk] = k;
                            }
                            ++k;
                        }
                        if (status != OK) break;
                    }
                    if (eobrun > 0) {  // one correction bit for each coefficient that is already non-zero
                        const int kend = static_cast<int>(std::min<i64>(se, lastnz[blk]));
                        u64 mask = k <= kend ? nonzero_mask(co, k, kend) : 0;
                        while (mask) {
                            const int kk = ctz(mask);
                            mask &= mask - 1;
                            r.refill();
                            const int z = ZIGZAG[kk];
                            const i64 cv = co[z];
                            if (r.peek(1)) {
                                if ((cv & p1) == 0) co[z] = static_cast<std::int16_t>(cv >= 0 ? cv + p1 : cv + m1);
                            }
                            r.skip(1);
                        }
                        --eobrun;
                    }
                }
            }
            if (status != OK || r.consumed(p0) > avail) {
                if (r.consumed(p0) <= avail) return DecodeResult{status, starts[i] + (r.p - p0), longest_run};
                io.truncated[i] = m;  // a partly decoded progressive MCU cannot be undone; the layout keeps its bytes
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
    return DecodeResult{OK, -1, longest_run};
}

namespace {

// Encoder state of one progressive scan; the methods are the steps of libjpeg's jcphuff.c.
struct ProgressiveEncoder {
    BitWriter w;
    const std::uint32_t* ehufco;
    const std::int32_t* ehufsi;
    u64 corr[QUEUE_WORDS] = {};  // queued correction bits (packed, MSB first): EOB-run part, then this block's

    // Set bit pos of the queue to bit, clearing what follows in its word.
    JSK_INLINE bool queue_bit(int pos, u64 bit) {
        if (JSK_UNLIKELY(pos < 0 || pos >= QUEUE_WORDS * 64)) return false;
        const int wd = pos >> 6;
        const u64 keep = ~(~u64(0) >> (pos & 63));
        corr[wd] = (corr[wd] & keep) | (bit << (63 - (pos & 63)));
        return true;
    }
    // Write queued bits start .. start + n - 1, up to 32 per put.
    JSK_INLINE void put_queued(int start, int n) {
        while (n > 0) {
            const int off = start & 63;
            int take = n < 32 ? n : 32;
            if (64 - off < take) take = 64 - off;
            const u64 v = (corr[start >> 6] << off) >> (64 - take);
            w.put(v, take);
            start += take;
            n -= take;
        }
    }
    // EOBn with n = floor(log2(run)), then n extra bits; false if the table lacks the symbol.
    JSK_INLINE bool put_eobrun(i64 ac, i64 eobrun) {
        int nbx = 0;
        for (i64 tt = eobrun >> 1; tt; tt >>= 1) ++nbx;
        const int sym = nbx << 4;
        if (sym > 255) return false;
        const int size = ehufsi[ac + sym];
        if (size == 0 || nbx > 14) return false;
        w.put((u64(ehufco[ac + sym]) << nbx) | u64(eobrun & ((i64(1) << nbx) - 1)), size + nbx);
        return true;
    }
    JSK_INLINE bool put_symbol(i64 table, int sym) {
        const int size = ehufsi[table + sym];
        if (size == 0) return false;
        w.put(ehufco[table + sym], size);
        return true;
    }
};

}  // namespace

EncodeResult encode_progressive(i64 n_intervals, const ScanGeometry& g, const EncodeTables& t, Coefficients coef,
                                const i64* lastnz, ProgressiveParams pp, i64 eob_cap, const i64* pads,
                                const i64* stops, i64 capacity) {
    const int nb = g.nb;
    const Mode mode = scan_mode(pp.ss, pp.ah);
    const int ss = pp.ss, se = pp.se, al = pp.al;
    EncodeResult res;
    res.ends.assign(static_cast<std::size_t>(n_intervals), 0);
    ProgressiveEncoder pe{BitWriter(res.out, capacity), t.ehufco, t.ehufsi};
    BitWriter& w = pe.w;
    const std::uint32_t* co_ = t.ehufco;
    const std::int32_t* si_ = t.ehufsi;
#define JSK_FAIL()              \
    do {                        \
        res.status = NO_SYMBOL; \
        res.length = w.op;      \
        return res;             \
    } while (0)
    for (i64 i = 0; i < n_intervals; ++i) {
        i64 m0, m1;
        g.interval(i, m0, m1);
        w.acc = 0;
        w.nbits = 0;
        i64 pred[4] = {0, 0, 0, 0};
        i64 eobrun = 0;
        int n_be = 0;
        if (0 <= stops[i] && stops[i] < m1) m1 = stops[i] > m0 ? stops[i] : m0;
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
                const i64 ac = g.field(b, G_AC) * 256;
                if (mode == DC_FIRST) {
                    const i64 dc = g.field(b, G_DC) * 256;
                    const i64 c = g.field(b, G_PRED);
                    const i64 v = i64(co[0]) >> al;
                    const i64 diff = v - pred[c];
                    pred[c] = v;
                    const int s = bit_length(iabs(diff));
                    const int size = si_[dc + s];
                    if (size == 0) JSK_FAIL();
                    const i64 bits = (diff < 0 ? diff - 1 : diff) & ((i64(1) << s) - 1);
                    w.put((u64(co_[dc + s]) << s) | u64(bits), size + s);
                } else if (mode == DC_REFINE) {
                    w.put(u64((i64(co[0]) >> al) & 1), 1);
                } else if (mode == AC_FIRST) {
                    const int kend = static_cast<int>(std::min<i64>(se, lastnz[blk]));
                    const i64 thr = i64(1) << al;
                    u64 mask = 0;  // coefficients that stay non-zero after the point transform
                    for (int k = ss; k <= kend; ++k) {
                        const i64 tv = iabs(co[ZIGZAG[k]]);
                        mask |= u64(tv >= thr) << k;
                    }
                    int prev = ss - 1;
                    while (mask) {
                        const int k = ctz(mask);
                        mask &= mask - 1;
                        int r = k - prev - 1;
                        prev = k;
                        i64 tv = co[ZIGZAG[k]], t2;
                        if (tv < 0) {
                            tv = (-tv) >> al;
                            t2 = ~tv;
                        } else {
                            tv = tv >> al;
                            t2 = tv;
                        }
                        if (eobrun > 0) {
                            if (!pe.put_eobrun(ac, eobrun)) JSK_FAIL();
                            eobrun = 0;
                        }
                        while (r > 15) {
                            if (!pe.put_symbol(ac, 0xF0)) JSK_FAIL();
                            r -= 16;
                        }
                        const int s = bit_length(tv);
                        if (s > 15) JSK_FAIL();
                        const int sym = (r << 4) + s;
                        const int size = si_[ac + sym];
                        if (size == 0) JSK_FAIL();
                        w.put((u64(co_[ac + sym]) << s) | u64(t2 & ((i64(1) << s) - 1)), size + s);
                    }
                    if (se - prev > 0) {  // zeros after the last coefficient sent
                        ++eobrun;
                        if (eobrun >= eob_cap) {
                            if (!pe.put_eobrun(ac, eobrun)) JSK_FAIL();
                            eobrun = 0;
                        }
                    }
                } else {  // AC_REFINE: libjpeg's encode_mcu_AC_refine, one step per newly non-zero coefficient
                    const int kend = static_cast<int>(std::min<i64>(se, lastnz[blk]));
                    u64 newm = 0;  // |coef| >> al == 1: coded with a symbol in this scan
                    u64 oldm = 0;  // |coef| >> al > 1: already non-zero, gets a correction bit
                    u64 bitm = 0;  // the correction bits
                    for (int k = ss; k <= kend; ++k) {
                        const i64 tv = iabs(co[ZIGZAG[k]]) >> al;
                        const u64 bit = u64(1) << k;
                        newm |= tv == 1 ? bit : 0;
                        oldm |= tv > 1 ? bit : 0;
                        bitm |= (tv & 1) ? bit : 0;
                    }
                    int n_br = 0;
                    int br0 = n_be;
                    int prev = ss - 1;
                    while (newm) {
                        const int k = ctz(newm);
                        newm &= newm - 1;
                        const u64 between = ((u64(1) << k) - 1) & ~((u64(1) << (prev + 1)) - 1);
                        u64 old = oldm & between;
                        const int zeros = k - prev - 1 - popcount(old);
                        int r;
                        if (zeros <= 15) {  // common case: no ZRL, so the correction bits just queue up
                            while (old) {
                                const int j = ctz(old);
                                old &= old - 1;
                                if (!pe.queue_bit(br0 + n_br, (bitm >> j) & 1)) JSK_FAIL();
                                ++n_br;
                            }
                            r = zeros;
                        } else {  // a run of 16+ zeros: walk the coefficients exactly as libjpeg does
                            r = 0;
                            int jp = prev;
                            old |= u64(1) << k;
                            while (true) {
                                const int j = ctz(old);
                                old &= old - 1;
                                r += j - jp - 1;
                                jp = j;
                                while (r > 15) {
                                    if (eobrun > 0) {
                                        if (!pe.put_eobrun(ac, eobrun)) JSK_FAIL();
                                        if (n_be) pe.put_queued(0, n_be);  // the correction bits buffered during the run
                                    }
                                    eobrun = 0;
                                    n_be = 0;
                                    if (!pe.put_symbol(ac, 0xF0)) JSK_FAIL();
                                    r -= 16;
                                    if (n_br) pe.put_queued(br0, n_br);
                                    br0 = 0;
                                    n_br = 0;
                                }
                                if (j == k) break;
                                if (!pe.queue_bit(br0 + n_br, (bitm >> j) & 1)) JSK_FAIL();
                                ++n_br;
                            }
                        }
                        if (eobrun > 0) {
                            if (!pe.put_eobrun(ac, eobrun)) JSK_FAIL();
                            if (n_be) pe.put_queued(0, n_be);
                        }
                        eobrun = 0;
                        n_be = 0;
                        const int sym = (r << 4) + 1;
                        const int size = si_[ac + sym];
                        if (size == 0) JSK_FAIL();
                        const u64 sign = co[ZIGZAG[k]] < 0 ? 0 : 1;
                        w.put((u64(co_[ac + sym]) << 1) | sign, size + 1);
                        if (n_br) pe.put_queued(br0, n_br);
                        br0 = 0;
                        n_br = 0;
                        prev = k;
                    }
                    // after the last new coefficient: correction bits wait in the EOB run
                    u64 old = prev < 63 ? (oldm & ~((u64(1) << (prev + 1)) - 1)) : 0;
                    const int r = se - prev - popcount(old);
                    while (old) {
                        const int j = ctz(old);
                        old &= old - 1;
                        if (!pe.queue_bit(br0 + n_br, (bitm >> j) & 1)) JSK_FAIL();
                        ++n_br;
                    }
                    if (r > 0 || n_br > 0) {
                        ++eobrun;
                        n_be += n_br;
                        if (eobrun >= eob_cap || n_be > MAX_BUFFERED) {
                            if (!pe.put_eobrun(ac, eobrun)) JSK_FAIL();
                            if (n_be) pe.put_queued(0, n_be);
                            eobrun = 0;
                            n_be = 0;
                        }
                    }
                }
            }
        }
        if (mode >= AC_FIRST && eobrun > 0) {
            if (!pe.put_eobrun(g.field(0, G_AC) * 256, eobrun)) JSK_FAIL();
            if (n_be) pe.put_queued(0, n_be);
        }
        w.flush(pads[i] >= 0 ? pads[i] : 0xFF);
        if (i < n_intervals - 1) w.marker(0xD0 + (i & 7));
        res.ends[i] = w.op;
    }
#undef JSK_FAIL
    res.length = w.op;
    return res;
}

}  // namespace jsk
