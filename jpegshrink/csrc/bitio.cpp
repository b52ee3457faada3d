#include "bitio.h"

namespace jsk {

Unstuffed unstuff(const std::uint8_t* data, i64 size, const i64* starts, const i64* ends, i64 n) {
    Unstuffed u;
    i64 total = 0;
    for (i64 i = 0; i < n; ++i) {
        if (starts[i] < 0 || ends[i] > size) throw std::out_of_range("scan interval outside the data");
        total += ends[i] > starts[i] ? ends[i] - starts[i] : 0;
    }
    u.buf.assign(static_cast<std::size_t>(total + GUARD_BYTES), 0);
    u.starts.assign(static_cast<std::size_t>(n), 0);
    u.ends.assign(static_cast<std::size_t>(n), 0);
    i64 q = 0;
    for (i64 i = 0; i < n; ++i) {
        u.starts[i] = q;
        i64 pos = starts[i];
        const i64 end = ends[i];
        while (pos < end) {
            const std::uint8_t b = data[pos++];
            if (b == 0xFF) {
                while (pos < end && data[pos] == 0xFF) ++pos;
                if (pos < end && data[pos] == 0) ++pos;
            }
            u.buf[q++] = b;
        }
        u.ends[i] = q;
    }
    return u;
}

void BitReader::decode_slow(const DecodeTables& t, i64 slot, int& sym, int& length) const {
    for (int len = LOOKAHEAD + 1; len <= 16; ++len) {
        const i64 code = static_cast<i64>(acc >> (64 - len));
        if (code <= t.maxcode[slot * 18 + len]) {
            const i64 idx = t.valptr[slot * 17 + len] + code - t.mincode[slot * 17 + len];
            if (idx < 0 || idx >= 256) break;  // only a table that is not a prefix code gets here
            sym = t.huffval[slot * 256 + idx];
            length = len;
            return;
        }
    }
    sym = 0;
    length = 0;
}

void last_nonzero(const std::int16_t* coef, i64 blocks, i64* out) {
    for (i64 blk = 0; blk < blocks; ++blk) {
        const std::int16_t* c = coef + blk * 64;
        int last = 0;
        for (int j = 0; j < 64; ++j)
            if (c[j] != 0 && ZIGZAG_RANK.rank[j] > last) last = ZIGZAG_RANK.rank[j];
        out[blk] = last;
    }
}

void gather_blocks(const std::int16_t* src, i64 n, std::int16_t* dst, i64 offset, i64* lastnz) {
    for (i64 blk = 0; blk < n; ++blk) {
        const std::int16_t* s = src + blk * 64;
        std::int16_t* d = dst + (offset + blk) * 64;
        int last = 0;
        for (int j = 0; j < 64; ++j) {
            const std::int16_t v = s[j];
            d[j] = v;
            if (v != 0 && ZIGZAG_RANK.rank[j] > last) last = ZIGZAG_RANK.rank[j];
        }
        lastnz[offset + blk] = last;
    }
}

}  // namespace jsk
