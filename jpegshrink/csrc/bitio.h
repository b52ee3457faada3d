// Bit-level I/O on JPEG entropy-coded data and the Huffman symbol decoder, shared by the sequential and
// progressive scan coders.
//
// Decoders first un-stuff a scan's intervals into one buffer, then read it 32 bits at a time into a
// left-aligned 64-bit accumulator. Past the end of an interval they read on (into the next interval
// or the zero guard, and past the buffer as zeros: every read is bounds-checked) and compare bits
// consumed with bits available after each MCU to detect truncation. The writer stuffs FF with 00.
#pragma once

#include <cstring>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif
#include <vector>

#include "common.h"

namespace jsk {

// Status codes of the scan coders (0 = success); scan.py maps them to CorruptJpeg messages.
enum Status : int {
    OK = 0,
    BAD_CODE = 1,        // no Huffman code matches the bits
    BAD_INDEX = 2,       // a run of zeros goes past coefficient 63 (or past Se)
    NO_SYMBOL = 3,       // the encoder needs a symbol its table does not define
    BAD_REFINEMENT = 4,  // a refinement scan codes a new coefficient with magnitude other than 1
};

constexpr int LOOKAHEAD = 12;  // bits resolved by one table lookup; longer codes take the slow path
constexpr int N_SLOTS = 8;     // Huffman table slots: DC 0..3, AC 4..7
// Zero bytes after the last interval, so that a reader normally never takes the checked slow path.
constexpr i64 GUARD_BYTES = 4096;

// Array form of up to eight Huffman tables (jpegshrink.jpeg.huffman.CoderTables), borrowed.
struct DecodeTables {
    const std::int32_t* lookup;   // [8][1 << LOOKAHEAD]: (length << 8 | symbol), 0 = slow path
    const i64* maxcode;           // [8][18]: largest code of each length, -1 if none
    const i64* valptr;            // [8][17]: index of the first symbol of each length
    const i64* mincode;           // [8][17]: smallest code of each length
    const std::int32_t* huffval;  // [8][256]: symbols in code order
};

struct EncodeTables {
    const std::uint32_t* ehufco;  // [8][256]: code of each symbol
    const std::int32_t* ehufsi;   // [8][256]: code length of each symbol, 0 = not in the table
};

// Geometry of one scan: block b of MCU (my, mx) is
// coef[offset + (my * V + dy) * cols + mx * H + dx]; rows of ``geo`` are
// (predictor, offset, cols, V, H, dy, dx, dc_slot, ac_slot). The bindings check every row once, so
// that every block index the coders compute lies inside ``coef``.
enum GeoField { G_PRED = 0, G_OFFSET, G_COLS, G_V, G_H, G_DY, G_DX, G_DC, G_AC, GEO_FIELDS };
constexpr int MAX_BLOCKS_PER_MCU = 10;

struct ScanGeometry {
    const i64* geo;  // [nb][GEO_FIELDS]
    int nb;
    i64 restart, mcux, nmcu;

    JSK_INLINE i64 field(int b, GeoField f) const { return geo[b * GEO_FIELDS + f]; }
    JSK_INLINE i64 block(int b, i64 my, i64 mx) const {
        const i64* g = geo + b * GEO_FIELDS;
        return g[G_OFFSET] + (my * g[G_V] + g[G_DY]) * g[G_COLS] + mx * g[G_H] + g[G_DX];
    }
    // First and one-past-last MCU of interval i.
    JSK_INLINE void interval(i64 i, i64& m0, i64& m1) const {
        if (restart <= 0) {
            m0 = 0;
            m1 = nmcu;
            return;
        }
        m0 = i * restart;
        m1 = m0 + restart < nmcu ? m0 + restart : nmcu;
    }
};

// The coefficient array of all components: int16 [blocks][64], natural order.
struct Coefficients {
    std::int16_t* coef;
    i64 blocks;
    JSK_INLINE std::int16_t* block(i64 blk) const { return coef + blk * 64; }
};

// Data bytes of each interval data[starts[i]:ends[i]] with stuffing removed, back to back, followed by
// GUARD_BYTES zeros. Like libjpeg, FF followed by fill FF bytes and 00 yields one FF.
struct Unstuffed {
    std::vector<std::uint8_t> buf;
    std::vector<i64> starts, ends;
};
Unstuffed unstuff(const std::uint8_t* data, i64 size, const i64* starts, const i64* ends, i64 n);

// Codes longer than LOOKAHEAD bits: (length << 8 | symbol) of the code at the top of acc, 0 = bad code.
// A free function of values, so that the reader's state never has its address taken.
std::int32_t decode_long_code(u64 acc, const DecodeTables& t, i64 slot);

struct BitReader {
    const std::uint8_t* buf;
    i64 size;  // bytes readable in buf; reads beyond it give zeros
    i64 p;
    u64 acc = 0;
    int nbits = 0;

    // Top up the accumulator to at least 32 bits.
    JSK_INLINE void refill() {
        if (nbits < 32) {
            u64 w;
            if (JSK_LIKELY(p >= 0 && p + 4 <= size)) {
                w = (u64(buf[p]) << 24) | (u64(buf[p + 1]) << 16) | (u64(buf[p + 2]) << 8) | u64(buf[p + 3]);
            } else {
                w = 0;
                for (int j = 0; j < 4; ++j) w = (w << 8) | ((p + j >= 0 && p + j < size) ? buf[p + j] : 0);
            }
            acc |= w << (32 - nbits);
            p += 4;
            nbits += 32;
        }
    }
    // The next n (1..32) bits as an integer.
    JSK_INLINE i64 peek(int n) const { return static_cast<i64>(acc >> (64 - n)); }
    JSK_INLINE void skip(int n) {
        acc <<= n;
        nbits -= n;
    }
    JSK_INLINE i64 consumed(i64 p0) const { return (p - p0) * 8 - nbits; }

    // (symbol, length) of the code at the top of acc (needs >= 16 bits); length 0 = bad code.
    JSK_INLINE void decode(const DecodeTables& t, i64 slot, int& sym, int& length) const {
        std::int32_t e = t.lookup[slot * (1 << LOOKAHEAD) + static_cast<i64>(acc >> (64 - LOOKAHEAD))];
        if (JSK_UNLIKELY(e == 0)) e = decode_long_code(acc, t, slot);
        sym = e & 0xFF;
        length = e >> 8;
    }
};

// JPEG's sign extension of an s-bit magnitude category value.
JSK_INLINE i64 extend(i64 v, int s) { return v < (i64(1) << (s - 1)) ? v - (i64(1) << s) + 1 : v; }

// Resize ``out`` to hold at least ``need`` bytes (doubling); returns its new data pointer.
std::uint8_t* grow_buffer(std::vector<std::uint8_t>& out, i64 need);

// Bit writer into a growing byte vector; every write checks the room it needs. Meant to live in a local
// variable of the coder (its state then stays in registers: no byte store can alias it). ``Stuff``:
// write a 0 after every FF byte, as entropy-coded JPEG data needs (RawBitWriter: plain bits, for a
// segment that is appended to a stuffing writer later).
template <bool Stuff>
struct BitWriterT {
    std::vector<std::uint8_t>* vec;
    std::uint8_t* buf;
    i64 cap;
    i64 op = 0;
    u64 acc = 0;
    int nbits = 0;

    BitWriterT(std::vector<std::uint8_t>& out, i64 capacity) : vec(&out) {
        out.assign(static_cast<std::size_t>(capacity < 1024 ? 1024 : capacity), 0);
        buf = out.data();
        cap = static_cast<i64>(out.size());
    }

    JSK_INLINE void room(i64 need) {
        if (JSK_UNLIKELY(op + need > cap)) {
            buf = grow_buffer(*vec, op + need);
            cap = static_cast<i64>(vec->size());
        }
    }
    // Append size (<= 32) bits; value must be masked to them.
    JSK_INLINE void put(u64 value, int size) {
        acc = (acc << size) | value;
        nbits += size;
        if (nbits >= 32) drain();
    }
    // Write the accumulator's whole bytes (stuffing FF).
    JSK_INLINE void drain() {
        room(16);
        std::uint8_t* o = buf;
        while (nbits >= 8) {
            nbits -= 8;
            const std::uint8_t b = static_cast<std::uint8_t>(acc >> nbits);
            o[op++] = b;
            if (Stuff && b == 0xFF) o[op++] = 0;
        }
    }
    // Complete the last byte with pad bits (pad_value masked to the gap) and write everything.
    void flush(i64 pad_value) {
        const int gap = (8 - nbits % 8) % 8;
        acc = (acc << gap) | static_cast<u64>(pad_value & ((i64(1) << gap) - 1));
        nbits += gap;
        drain();
    }
    void marker(int code) {
        room(2);
        buf[op++] = 0xFF;
        buf[op++] = static_cast<std::uint8_t>(code);
    }
};
using BitWriter = BitWriterT<true>;
using RawBitWriter = BitWriterT<false>;

// Bit k set for each zig-zag position k0 <= k <= k1 whose coefficient is non-zero.
JSK_INLINE u64 nonzero_mask(const std::int16_t* blk, int k0, int k1) {
    u64 mask = 0;
    for (int k = k0; k <= k1; ++k) mask |= u64(blk[ZIGZAG[k]] != 0) << k;
    return mask;
}

// ZIGZAG_BYTES.bits[j][b]: the zig-zag positions (as bits) of the natural positions 8j..8j+7 set in b.
struct ZigzagBytes {
    u64 bits[8][256];
    constexpr ZigzagBytes() : bits() {
        for (int j = 0; j < 8; ++j)
            for (int b = 0; b < 256; ++b)
                for (int i = 0; i < 8; ++i)
                    if (b & (1 << i)) bits[j][b] |= u64(1) << ZIGZAG_RANK.rank[8 * j + i];
    }
};
extern const ZigzagBytes ZIGZAG_BYTES;

// Bit n set for each non-zero coefficient of a block, n its natural (row-major) index.
JSK_INLINE u64 natural_nonzero_mask(const std::int16_t* blk) {
#if defined(__SSE2__)
    const __m128i zero = _mm_setzero_si128();
    u64 zeros = 0;
    for (int i = 0; i < 4; ++i) {
        const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 16 * i));
        const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + 16 * i + 8));
        const __m128i z = _mm_packs_epi16(_mm_cmpeq_epi16(a, zero), _mm_cmpeq_epi16(b, zero));
        zeros |= u64(static_cast<unsigned>(_mm_movemask_epi8(z))) << (16 * i);
    }
    return ~zeros;
#else
    u64 mask = 0;
    for (int n = 0; n < 64; ++n) mask |= u64(blk[n] != 0) << n;
    return mask;
#endif
}

// nonzero_mask(blk, 0, 63) without the 64 gathers: the natural-order mask, one table lookup per byte.
JSK_INLINE u64 zigzag_nonzero_mask(const std::int16_t* blk) {
    const u64 m = natural_nonzero_mask(blk);
    u64 zz = 0;
    for (int j = 0; j < 8; ++j) zz |= ZIGZAG_BYTES.bits[j][(m >> (8 * j)) & 0xFF];
    return zz;
}

JSK_INLINE int ctz(u64 x) { return __builtin_ctzll(x); }
JSK_INLINE int popcount(u64 x) { return __builtin_popcountll(x); }

// Result of a scan decoder: status, byte offset of an error, longest EOB run (progressive AC).
struct DecodeResult {
    int status = OK;
    i64 where = -1;
    i64 longest_run = 0;
};

// Per-interval outputs of the decoders: pad bits after the last MCU (pads/padbits) or, when the data
// runs out first, truncated[i] = the MCU it ran out in (else -1).
struct IntervalOutputs {
    i64* pads;
    i64* padbits;
    i64* truncated;
};

struct EncodeResult {
    std::vector<std::uint8_t> out;  // the first ``length`` bytes are the scan
    i64 length = 0;
    std::vector<i64> ends;  // output offset after each interval and its RST marker
    int status = OK;
};

DecodeResult decode_sequential(const std::uint8_t* data, i64 size, const i64* starts, const i64* ends, i64 n,
                               const ScanGeometry& g, const DecodeTables& t, Coefficients coef,
                               IntervalOutputs io);
// Intervals of at least 2 x PARALLEL_MCUS MCUs are coded in up to ``threads`` segments at once (the
// same bytes: Huffman codes are bit strings, appended in order).
constexpr i64 PARALLEL_MCUS = 2048;
EncodeResult encode_sequential(i64 n_intervals, const ScanGeometry& g, const EncodeTables& t, Coefficients coef,
                               const i64* pads, const i64* stops, i64 capacity, int threads);

struct ProgressiveParams {
    int ss, se, ah, al;
};
DecodeResult decode_progressive(const std::uint8_t* data, i64 size, const i64* starts, const i64* ends, i64 n,
                                const ScanGeometry& g, const DecodeTables& t, Coefficients coef, i64* lastnz,
                                ProgressiveParams pp, IntervalOutputs io);
EncodeResult encode_progressive(i64 n_intervals, const ScanGeometry& g, const EncodeTables& t, Coefficients coef,
                                const i64* lastnz, ProgressiveParams pp, i64 eob_cap, const i64* pads,
                                const i64* stops, i64 capacity);

// Per block, the zig-zag index of its last non-zero coefficient (0 when only DC may be set).
void last_nonzero(const std::int16_t* coef, i64 blocks, i64* out);
// Copy blocks src [n][64] to dst[offset:offset + n] and fill lastnz for them, in one pass.
void gather_blocks(const std::int16_t* src, i64 n, std::int16_t* dst, i64 offset, i64* lastnz);

// Add to freq [256] the AC symbols a baseline Huffman encoder emits for blocks coef [n][64] (natural
// order): run/size, a ZRL (0xF0) per 16 zeros before a nonzero, an EOB (0x00) when zeros end the block.
// False (freq partly updated) when a coefficient needs more than 15 magnitude bits (no symbol holds it).
// The symbol counts of jpeg/optimal.py's Huffman table builders: part of the format, integer-only.
bool ac_symbol_counts(const std::int16_t* coef, i64 n, i64* freq);

}  // namespace jsk
