#include "bitio.h"

namespace jsk {

constexpr ZigzagBytes ZIGZAG_BYTES{};

Unstuffed unstuff(const std::uint8_t* data, i64 size, const i64* starts, const i64* ends, i64 n) {
    Unstuffed u;
    i64 total = 0;
    for (i64 i = 0; i < n; ++i) {
        if (starts[i] < 0 || ends[i] > size) throw std::out_of_range("scan interval outside the data");
        total += ends[i] > starts[i] ? ends[i] - starts[i] : 0;
    }
    if (total > size) throw std::out_of_range("scan intervals overlap");
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

std::uint8_t* grow_buffer(std::vector<std::uint8_t>& out, i64 need) {
    const i64 grown = 2 * static_cast<i64>(out.size());
    out.resize(static_cast<std::size_t>(grown > need ? grown : need));
    return out.data();
}

std::int32_t decode_long_code(u64 acc, const DecodeTables& t, i64 slot) {
    for (int len = LOOKAHEAD + 1; len <= 16; ++len) {
        const i64 code = static_cast<i64>(acc >> (64 - len));
        if (code <= t.maxcode[slot * 18 + len]) {
            const i64 idx = t.valptr[slot * 17 + len] + code - t.mincode[slot * 17 + len];
            if (idx < 0 || idx >= 256) return 0;  // only a table that is not a prefix code gets here
            return (len << 8) | (t.huffval[slot * 256 + idx] & 0xFF);
        }
    }
    return 0;
}

namespace {
// Zig-zag index of the last non-zero coefficient of one block (0 when only DC may be set).
JSK_INLINE int last_nonzero_of(const std::int16_t* c) {
    const u64 ac = zigzag_nonzero_mask(c) & ~u64(1);
    return ac ? 63 - __builtin_clzll(ac) : 0;
}
}  // namespace

void last_nonzero(const std::int16_t* coef, i64 blocks, i64* out) {
    for (i64 blk = 0; blk < blocks; ++blk) out[blk] = last_nonzero_of(coef + blk * 64);
}

bool ac_symbol_counts(const std::int16_t* coef, i64 n, i64* freq) {
    for (i64 blk = 0; blk < n; ++blk) {
        const std::int16_t* b = coef + blk * 64;
        u64 mask = zigzag_nonzero_mask(b) & ~u64(1);  // bit k: zig-zag AC coefficient k is nonzero
        if (!(mask >> 63)) ++freq[0];           // EOB: the block ends in zeros (also: no nonzero AC at all)
        int prev = 0;
        while (mask) {
            const int k = ctz(mask);
            mask &= mask - 1;
            const int run = k - prev - 1;
            prev = k;
            const int size = bit_length(b[ZIGZAG[k]] < 0 ? -static_cast<i64>(b[ZIGZAG[k]]) : b[ZIGZAG[k]]);
            if (size > 15) return false;
            freq[0xF0] += run >> 4;             // a ZRL per 16 zeros before the nonzero
            ++freq[((run & 15) << 4) | size];
        }
    }
    return true;
}

void gather_blocks(const std::int16_t* src, i64 n, std::int16_t* dst, i64 offset, i64* lastnz) {
    std::memcpy(dst + offset * 64, src, static_cast<std::size_t>(n) * 64 * sizeof(std::int16_t));
    for (i64 blk = 0; blk < n; ++blk) lastnz[offset + blk] = last_nonzero_of(src + blk * 64);
}

}  // namespace jsk
