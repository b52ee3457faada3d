// Adaptive binary arithmetic coding: the coder and the integer probability counters.
//
// The coder is the carry-less 32-bit binary coder of the paq/lpaq family: the interval [x1, x2] is split
// at x1 + range * p / 2^16 where p is the integer probability (1..65535, units of 2^-16) that the bit is
// 1, and whole bytes are shifted out once x1 and x2 share their top byte. Everything is integer, so the
// decoder reproduces the encoder's bits on any CPU. Decoding past the end of the data reads 0xFF (this
// is what lets the encoder flush a single byte); ``overrun`` tells how far past the end a decoder went.
//
// Counters pack a 16-bit probability and a 10-bit hit count into one int32 (p << 10 | n), stored XOR
// COUNTER_INIT so that a fresh array is all zeros; the step size is 1/(n+1.5) until the count reaches
// a limit (the lpaq "StateMap").
//
// Encoder and decoder are two policies with the same ``code(p, bit)``: the model kernels are templates
// over them, so one kernel serves both directions and their contexts cannot drift apart.
#pragma once

#include <vector>

#include "common.h"

namespace jsk {

constexpr i64 P_MIN = 32;  // probabilities reaching the coder lie in [P_MIN, 65536 - P_MIN]
constexpr std::int32_t COUNTER_INIT = 32768 << 10;
constexpr i64 MASK32 = 0xFFFFFFFF;
constexpr int BACKOFF_N = 1;  // hit count a fresh context starts with when it inherits its parent's p

struct RateTable {
    i64 rate[1024];  // 65536 / (n + 1.5)
    constexpr RateTable() : rate() {
        for (int n = 0; n < 1024; ++n) rate[n] = 131072 / (2 * n + 3);
    }
};
constexpr RateTable RATE{};

JSK_INLINE i64 split(i64 x1, i64 x2, i64 p) {
    const i64 rng = x2 - x1;
    return x1 + (rng >> 16) * p + (((rng & 0xFFFF) * p) >> 16);
}

class BinaryEncoder {
public:
    static constexpr bool encoding = true;

    JSK_INLINE int code(i64 p, int bit) {
        const i64 xmid = split(x1_, x2_, p);
        if (bit)
            x2_ = xmid;
        else
            x1_ = xmid + 1;
        while (((x1_ ^ x2_) & 0xFF000000) == 0) {
            out_.push_back(static_cast<std::uint8_t>(x2_ >> 24));
            x1_ = (x1_ << 8) & MASK32;
            x2_ = ((x2_ << 8) & MASK32) | 255;
        }
        return bit;
    }
    // Flush: any x in [x1, x2] decodes right, and x1's top byte followed by the decoder's 0xFF padding
    // lies in it because x2's top byte is larger.
    std::vector<std::uint8_t> finish() {
        if (!finished_) {
            out_.push_back(static_cast<std::uint8_t>(x1_ >> 24));
            finished_ = true;
        }
        return out_;
    }
    bool finished() const { return finished_; }
    std::size_t size() const { return out_.size(); }

private:
    i64 x1_ = 0, x2_ = MASK32;
    std::vector<std::uint8_t> out_;
    bool finished_ = false;
};

class BinaryDecoder {
public:
    static constexpr bool encoding = false;

    explicit BinaryDecoder(std::vector<std::uint8_t> data) : data_(std::move(data)) {
        for (int j = 0; j < 4; ++j) x_ = (x_ << 8) | next_byte();
    }
    JSK_INLINE int code(i64 p, int /*bit*/) {
        const i64 xmid = split(x1_, x2_, p);
        int bit;
        if (x_ <= xmid) {
            bit = 1;
            x2_ = xmid;
        } else {
            bit = 0;
            x1_ = xmid + 1;
        }
        while (((x1_ ^ x2_) & 0xFF000000) == 0) {
            x1_ = (x1_ << 8) & MASK32;
            x2_ = ((x2_ << 8) & MASK32) | 255;
            x_ = ((x_ << 8) & MASK32) | next_byte();
        }
        return bit;
    }
    // Bytes read past the end (a valid stream reads exactly 3 padding bytes).
    i64 overrun() const { return pos_ - static_cast<i64>(data_.size()) - 3; }
    // A model found something a valid stream never codes.
    void set_damaged() { damaged_ = true; }
    bool damaged() const { return damaged_; }

private:
    JSK_INLINE i64 next_byte() {
        const i64 pos = pos_++;
        return pos < static_cast<i64>(data_.size()) ? data_[static_cast<std::size_t>(pos)] : 255;
    }
    std::vector<std::uint8_t> data_;
    i64 x1_ = 0, x2_ = MASK32, x_ = 0, pos_ = 0;
    bool damaged_ = false;
};

// A borrowed counter array; every context index is checked against its size.
struct Counters {
    std::int32_t* t;
    i64 n;

    JSK_INLINE std::int32_t& at(i64 ctx) const {
        if (JSK_UNLIKELY(ctx < 0 || ctx >= n)) throw std::out_of_range("context index outside the counter array");
        return t[ctx];
    }
    // Move counter ctx towards bit with step 1/(n+1.5), n capped at limit (<= 1023).
    JSK_INLINE void adapt(i64 ctx, int bit, int limit) const {
        std::int32_t& slot = at(ctx);
        const i64 c = slot ^ COUNTER_INIT;
        i64 cnt = c & 1023;
        i64 p = c >> 10;
        if (bit)
            p += ((65536 - p) * RATE.rate[cnt]) >> 16;
        else
            p -= (p * RATE.rate[cnt]) >> 16;
        if (cnt < limit) ++cnt;
        slot = static_cast<std::int32_t>((p << 10) | cnt) ^ COUNTER_INIT;
    }
    JSK_INLINE i64 probability(i64 ctx) const {
        const i64 p = (at(ctx) ^ COUNTER_INIT) >> 10;
        return p < P_MIN ? P_MIN : (p > 65536 - P_MIN ? 65536 - P_MIN : p);
    }
};

// Encode or decode one bit with adaptive counter ctx; returns the bit.
template <class Coder>
JSK_INLINE int code_bit(Coder& c, const Counters& T, i64 ctx, int bit, int limit) {
    bit = c.code(T.probability(ctx), bit);
    T.adapt(ctx, bit, limit);
    return bit;
}

// code_bit for a context that is one of many refinements of ``parent``: on its first use it starts
// from the parent's probability (as if seen BACKOFF_N times), and the parent learns every bit. A large
// context space then costs little learning on small images.
template <class Coder>
JSK_INLINE int code_bit_backoff(Coder& c, const Counters& T, i64 ctx, i64 parent, int bit, int limit) {
    std::int32_t& slot = T.at(ctx);
    if (((slot ^ COUNTER_INIT) & 1023) == 0) {
        const i64 p = (T.at(parent) ^ COUNTER_INIT) >> 10;
        slot = static_cast<std::int32_t>((p << 10) | BACKOFF_N) ^ COUNTER_INIT;
    }
    bit = code_bit(c, T, ctx, bit, limit);
    T.adapt(parent, bit, limit);
    return bit;
}

}  // namespace jsk
