// Python bindings of the compiled core (pybind11): jpegshrink._core.
//
// The kernels take raw pointers; this file is the only place that sees Python objects. Every array is
// checked here (dtype, C order, shape, writability, and the value ranges that the kernels use as
// indices) before the GIL is released, so a caller's mistake is a TypeError/ValueError and never a
// stray memory access. Data errors inside the kernels come back as status codes (scan coders) or as a
// "damaged" flag (model decoders), which the Python layers turn into jpegshrink.errors types.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <vector>

#include "adaptive_model.h"
#include "bitio.h"
#include "lossy_rdo.h"
#include "lossy_transform.h"

namespace py = pybind11;
using namespace jsk;

namespace {

[[noreturn]] void fail(const std::string& msg) { throw py::value_error(msg); }

// Check an array argument and return its data pointer. ``shape`` entries of -1 accept any size.
template <class T>
T* checked(py::array& a, const char* name, std::initializer_list<i64> shape, bool writable) {
    if (!py::isinstance<py::array_t<T>>(a))
        throw py::type_error(std::string(name) + ": expected dtype " + std::string(py::str(py::dtype::of<T>())) +
                             ", got " + std::string(py::str(a.dtype())));
    if (!(a.flags() & py::array::c_style)) fail(std::string(name) + ": array must be C-contiguous");
    if (!(a.flags() & py::detail::npy_api::NPY_ARRAY_ALIGNED_)) fail(std::string(name) + ": array must be aligned");
    if (writable && !a.writeable()) fail(std::string(name) + ": array must be writable");
    if (static_cast<std::size_t>(a.ndim()) != shape.size())
        fail(std::string(name) + ": expected " + std::to_string(shape.size()) + " dimensions, got " +
             std::to_string(a.ndim()));
    int d = 0;
    for (i64 s : shape) {
        if (s >= 0 && a.shape(d) != s)
            fail(std::string(name) + ": dimension " + std::to_string(d) + " is " + std::to_string(a.shape(d)) +
                 ", expected " + std::to_string(s));
        ++d;
    }
    return static_cast<T*>(writable ? a.mutable_data() : const_cast<void*>(a.data()));
}

void check_range(const i64* v, i64 n, i64 lo, i64 hi, const char* name) {
    for (i64 i = 0; i < n; ++i)
        if (v[i] < lo || v[i] > hi)
            fail(std::string(name) + "[" + std::to_string(i) + "] = " + std::to_string(v[i]) + " is outside [" +
                 std::to_string(lo) + ", " + std::to_string(hi) + "]");
}

// Scan geometry, checked so that every block index the coders compute lies in [0, blocks).
ScanGeometry geometry(py::array& geo, i64 restart, i64 mcux, i64 nmcu, i64 blocks) {
    const i64* g = checked<i64>(geo, "geo", {-1, GEO_FIELDS}, false);
    const i64 nb = geo.shape(0);
    if (nb < 1 || nb > MAX_BLOCKS_PER_MCU) fail("geo: 1 to 10 blocks per MCU");
    if (mcux < 1 || nmcu < 0) fail("scan geometry: mcux must be >= 1 and nmcu >= 0");
    ScanGeometry sg{g, static_cast<int>(nb), restart, mcux, nmcu};
    // The largest index, computed without overflow: every term is non-negative and grows with (my, mx),
    // so when it fits the array, every index the coders compute fits (and fits int64).
    auto block128 = [&](int b, __int128 my, __int128 mx) {
        return __int128(sg.field(b, G_OFFSET)) + (my * sg.field(b, G_V) + sg.field(b, G_DY)) * sg.field(b, G_COLS) +
               mx * sg.field(b, G_H) + sg.field(b, G_DX);
    };
    for (int b = 0; b < nb; ++b) {
        for (int f = 0; f < GEO_FIELDS; ++f)
            if (sg.field(b, static_cast<GeoField>(f)) < 0 || sg.field(b, static_cast<GeoField>(f)) > (i64(1) << 40))
                fail("geo: fields must be in [0, 2^40]");
        if (sg.field(b, G_PRED) > 3) fail("geo: predictor index must be < 4");
        if (sg.field(b, G_DC) >= N_SLOTS || sg.field(b, G_AC) >= N_SLOTS) fail("geo: Huffman slot must be < 8");
        if (nmcu == 0) continue;
        const i64 mymax = (nmcu - 1) / mcux;
        __int128 last = block128(b, mymax, (nmcu - 1) % mcux);
        if (mymax > 0) last = std::max(last, block128(b, mymax - 1, mcux - 1));
        if (last >= blocks) fail("geo: a block of the scan lies outside the coefficient array");
    }
    return sg;
}

DecodeTables decode_tables(py::array& lookup, py::array& maxcode, py::array& valptr, py::array& mincode,
                           py::array& huffval) {
    return DecodeTables{checked<std::int32_t>(lookup, "lookup", {N_SLOTS, 1 << LOOKAHEAD}, false),
                        checked<i64>(maxcode, "maxcode", {N_SLOTS, 18}, false),
                        checked<i64>(valptr, "valptr", {N_SLOTS, 17}, false),
                        checked<i64>(mincode, "mincode", {N_SLOTS, 17}, false),
                        checked<std::int32_t>(huffval, "huffval", {N_SLOTS, 256}, false)};
}

EncodeTables encode_tables(py::array& ehufco, py::array& ehufsi) {
    EncodeTables t{checked<std::uint32_t>(ehufco, "ehufco", {N_SLOTS, 256}, false),
                   checked<std::int32_t>(ehufsi, "ehufsi", {N_SLOTS, 256}, false)};
    for (int i = 0; i < N_SLOTS * 256; ++i)
        if (t.ehufsi[i] < 0 || t.ehufsi[i] > 16 || t.ehufco[i] >= (1u << t.ehufsi[i]))
            fail("ehufco/ehufsi: code lengths must be 0..16 and codes fit their length");
    return t;
}

Coefficients coefficients(py::array& coef, bool writable) {
    return Coefficients{checked<std::int16_t>(coef, "coef", {-1, 64}, writable), static_cast<i64>(coef.shape(0))};
}

struct Intervals {
    const i64* starts;
    const i64* ends;
    i64 n;
};
Intervals intervals(py::array& starts, py::array& ends) {
    Intervals iv{checked<i64>(starts, "starts", {-1}, false), nullptr, static_cast<i64>(starts.shape(0))};
    iv.ends = checked<i64>(ends, "ends", {iv.n}, false);
    return iv;
}

IntervalOutputs interval_outputs(py::array& pads, py::array& padbits, py::array& truncated, i64 n) {
    return IntervalOutputs{checked<i64>(pads, "pads", {n}, true), checked<i64>(padbits, "padbits", {n}, true),
                           checked<i64>(truncated, "truncated", {n}, true)};
}

ProgressiveParams progressive(int ss, int se, int ah, int al) {
    if (ss < 0 || se < ss || se > 63 || ah < 0 || ah > 15 || al < 0 || al > 15)
        fail("progressive scan parameters out of range");
    return ProgressiveParams{ss, se, ah, al};
}

py::tuple encode_result(EncodeResult&& r) {
    py::array_t<std::uint8_t> out(r.length);
    std::memcpy(out.mutable_data(), r.out.data(), static_cast<std::size_t>(r.length));
    py::array_t<i64> ends(static_cast<py::ssize_t>(r.ends.size()));
    std::memcpy(ends.mutable_data(), r.ends.data(), r.ends.size() * sizeof(i64));
    return py::make_tuple(out, r.length, ends, r.status);
}

const std::uint8_t* byte_data(py::array& data, i64& size) {
    const std::uint8_t* p = checked<std::uint8_t>(data, "data", {-1}, false);
    size = static_cast<i64>(data.shape(0));
    return p;
}

template <class T>
py::array_t<T> table(const T* values, std::size_t n) {
    py::array_t<T> a(static_cast<py::ssize_t>(n));
    std::memcpy(a.mutable_data(), values, n * sizeof(T));
    a.attr("setflags")(py::arg("write") = false);
    return a;
}

// Arrays of one component for an adaptive pass, checked.
adaptive::Component component(int pass, py::array& co, py::array& q, py::array& nz7, py::array& nzrem,
                              py::object hint, bool decoding) {
    if (pass < 0 || pass >= adaptive::N_PASSES) fail("no such adaptive pass: " + std::to_string(pass));
    adaptive::Component c{};
    c.co = checked<std::int16_t>(co, "coefficients", {-1, -1, 64}, decoding);
    c.R = co.shape(0);
    c.C = co.shape(1);
    c.q = checked<i64>(q, "quant", {64}, false);
    c.nz7 = checked<i64>(nz7, "nz7", {c.R, c.C}, true);
    c.nzrem = checked<i64>(nzrem, "nzrem", {c.R, c.C}, true);
    const i64 n = c.R * c.C;
    check_range(c.q, 64, 0, 65535, "quant");
    check_range(c.nz7, n, 0, N_INTERIOR, "nz7");
    check_range(c.nzrem, n, 0, N_INTERIOR, "nzrem");
    if (!hint.is_none()) {
        py::array h = hint.cast<py::array>();
        c.hint = checked<std::uint8_t>(h, "hint", {c.R, c.C, adaptive::hint_width(pass)}, false);
        const i64 total = n * adaptive::hint_width(pass);
        for (i64 i = 0; i < total; ++i)
            if (c.hint[i] >= adaptive::N_HINTS) fail("hint values must be < 8");
    }
    return c;
}

// A cross-channel reference for component ``c`` (see adaptive::Component): (coefficients int16
// [R * fy][C * fx][64], quant int64 [64], nz7 int64 [R * fy][C * fx], fy, fx[, cross_sign]), checked; the arrays
// are appended to ``keep`` so that they outlive the call.
void set_reference(adaptive::Component& c, py::handle reference, std::vector<py::array>& keep) {
    py::tuple t = py::reinterpret_borrow<py::object>(reference).cast<py::tuple>();
    if (t.size() != 5 && t.size() != 6) fail("reference: (coefficients, quant, nz7, fy, fx[, cross_sign])");
    c.cross_sign = t.size() == 6 && t[5].cast<bool>();
    const int fy = t[3].cast<int>(), fx = t[4].cast<int>();
    if (fy < 1 || fx < 1 || fy > 4 || fx > 4) fail("reference: fy and fx must be 1 to 4");
    py::array co = t[0].cast<py::array>(), q = t[1].cast<py::array>(), nz7 = t[2].cast<py::array>();
    keep.insert(keep.end(), {co, q, nz7});
    c.ref = checked<std::int16_t>(co, "reference coefficients", {c.R * fy, c.C * fx, 64}, false);
    c.ref_q = checked<i64>(q, "reference quant", {64}, false);
    c.ref_nz7 = checked<i64>(nz7, "reference nz7", {c.R * fy, c.C * fx}, false);
    check_range(c.ref_q, 64, 0, 65535, "reference quant");
    check_range(c.ref_nz7, c.R * fy * c.C * fx, 0, N_INTERIOR, "reference nz7");
    c.fy = fy;
    c.fx = fx;
}

Counters counters(py::array& T) {
    return Counters{checked<std::int32_t>(T, "counters", {adaptive::N_COUNTERS}, true), adaptive::N_COUNTERS};
}

template <class Coder>
void adaptive_pass(Coder& coder, int pass, py::array co, py::array q, py::array nz7, py::array nzrem, py::object hint,
                   py::array T, py::object reference) {
    adaptive::Component c = component(pass, co, q, nz7, nzrem, hint, !Coder::encoding);
    std::vector<py::array> keep;
    if (!reference.is_none()) {
        if (c.hint != nullptr) fail("a pass takes hints or a cross-channel reference, not both");
        set_reference(c, reference, keep);
    }
    const Counters t = counters(T);
    py::gil_scoped_release nogil;
    adaptive::run_pass(coder, pass, c, t);
}

// Decode the per-pass streams of several components at once (adaptive::decode_pipelined). Each entry
// of ``comps`` is (streams: N_PASSES bytes objects, or one for all passes, coefficients, quant, nz7,
// nzrem, counters[, reference]), the arrays as for run_pass (coefficients, nz7 and nzrem zero-filled);
// reference, where given and not None, (index of another entry, fy, fx[, cross_sign]): that
// component's decoded coefficients give this one's cross-channel hints (and sign contexts). Returns per component and pass (damaged, overrun)
// of its decoder.
py::list adaptive_decode_pipelined(py::list comps, int threads) {
    if (threads < 1) fail("threads must be >= 1");
    std::vector<py::array> keep;  // the arrays stay referenced while the GIL is released
    std::vector<std::unique_ptr<BinaryDecoder>> decoders;
    std::vector<adaptive::PassStreams> jobs;
    for (py::handle item : comps) {
        py::tuple t = py::reinterpret_borrow<py::object>(item).cast<py::tuple>();
        if (t.size() != 6 && t.size() != 7)
            fail("each component is (streams, coefficients, quant, nz7, nzrem, counters[, reference])");
        py::list streams = t[0].cast<py::list>();
        if (static_cast<int>(streams.size()) != adaptive::N_PASSES && streams.size() != 1)
            fail("one stream per pass (" + std::to_string(adaptive::N_PASSES) + ") or one for all, got " +
                 std::to_string(streams.size()));
        py::array co = t[1].cast<py::array>(), q = t[2].cast<py::array>(), nz7 = t[3].cast<py::array>(),
                  nzrem = t[4].cast<py::array>(), T = t[5].cast<py::array>();
        keep.insert(keep.end(), {co, q, nz7, nzrem, T});
        adaptive::PassStreams ps{};
        ps.comp = component(0, co, q, nz7, nzrem, py::none(), true);
        ps.counters = counters(T);
        ps.ref = -1;
        if (t.size() == 7 && !t[6].is_none()) {
            py::tuple r = t[6].cast<py::tuple>();
            if (r.size() != 3 && r.size() != 4) fail("reference: (index, fy, fx[, cross_sign])");
            ps.comp.cross_sign = r.size() == 4 && r[3].cast<bool>();
            ps.ref = r[0].cast<int>();
            ps.comp.fy = r[1].cast<int>();
            ps.comp.fx = r[2].cast<int>();
            if (ps.comp.fy < 1 || ps.comp.fx < 1 || ps.comp.fy > 4 || ps.comp.fx > 4)
                fail("reference: fy and fx must be 1 to 4");
        }
        ps.one_stream = streams.size() == 1;
        for (int p = 0; p < adaptive::N_PASSES; ++p) {
            if (p == 0 || !ps.one_stream) {
                const std::string s = streams[static_cast<std::size_t>(p)].cast<std::string>();
                decoders.push_back(std::make_unique<BinaryDecoder>(std::vector<std::uint8_t>(s.begin(), s.end())));
            }
            ps.coders[p] = decoders.back().get();
        }
        jobs.push_back(ps);
    }
    // References point at other entries' arrays, which are now all known and checked.
    for (adaptive::PassStreams& ps : jobs) {
        if (ps.ref < 0) continue;
        if (static_cast<std::size_t>(ps.ref) >= jobs.size()) fail("reference: no such component");
        const adaptive::Component& r = jobs[static_cast<std::size_t>(ps.ref)].comp;
        if (r.R != ps.comp.R * ps.comp.fy || r.C != ps.comp.C * ps.comp.fx)
            fail("reference: its block grid must be fy x fx times this component's");
        ps.comp.ref = r.co;
        ps.comp.ref_q = r.q;
        ps.comp.ref_nz7 = r.nz7;
    }
    {
        py::gil_scoped_release nogil;
        adaptive::decode_pipelined(jobs, threads);
    }
    py::list out;
    for (std::size_t c = 0; c < jobs.size(); ++c) {
        py::list passes;
        for (int p = 0; p < adaptive::N_PASSES; ++p)
            passes.append(py::make_tuple(jobs[c].coders[p]->damaged(), jobs[c].coders[p]->overrun()));
        out.append(passes);
    }
    return out;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
    m.doc() = "jpegshrink's compiled core: Huffman scan coders, the binary arithmetic coder, model passes";

    // ---- 8x8 block tables (the one definition; jpegshrink.blocks re-exports them)
    {
        std::int64_t zz[64], rank[64], interior[N_INTERIOR], edges[N_EDGES];
        for (int k = 0; k < 64; ++k) zz[k] = ZIGZAG[k], rank[k] = ZIGZAG_RANK.rank[k];
        for (int k = 0; k < N_INTERIOR; ++k) interior[k] = INTERIOR.pos[k];
        for (int k = 0; k < N_EDGES; ++k) edges[k] = EDGES[k];
        m.attr("ZIGZAG") = table(zz, 64);
        m.attr("ZIGZAG_RANK") = table(rank, 64);
        m.attr("INTERIOR") = table(interior, N_INTERIOR);
        m.attr("EDGES") = table(edges, N_EDGES);
    }

    // ---- JPEG scan coders
    py::module_ scan = m.def_submodule("scan", "Huffman scan coders (sequential and progressive) and bit I/O");
    scan.attr("LOOKAHEAD") = LOOKAHEAD;
    scan.attr("N_SLOTS") = N_SLOTS;
    scan.attr("PARALLEL_MCUS") = PARALLEL_MCUS;
    scan.attr("OK") = int(OK);
    scan.attr("BAD_CODE") = int(BAD_CODE);
    scan.attr("BAD_INDEX") = int(BAD_INDEX);
    scan.attr("NO_SYMBOL") = int(NO_SYMBOL);
    scan.attr("BAD_REFINEMENT") = int(BAD_REFINEMENT);

    scan.def(
        "decode_sequential",
        [](py::array data, py::array starts, py::array ends, i64 restart, i64 mcux, i64 nmcu, py::array geo,
           py::array lookup, py::array maxcode, py::array valptr, py::array mincode, py::array huffval, py::array coef,
           py::array pads, py::array padbits, py::array truncated) {
            i64 size;
            const std::uint8_t* d = byte_data(data, size);
            const Intervals iv = intervals(starts, ends);
            const Coefficients c = coefficients(coef, true);
            const ScanGeometry g = geometry(geo, restart, mcux, nmcu, c.blocks);
            const DecodeTables t = decode_tables(lookup, maxcode, valptr, mincode, huffval);
            const IntervalOutputs io = interval_outputs(pads, padbits, truncated, iv.n);
            DecodeResult r;
            {
                py::gil_scoped_release nogil;
                r = decode_sequential(d, size, iv.starts, iv.ends, iv.n, g, t, c, io);
            }
            return py::make_tuple(r.status, r.where);
        },
        "Decode every interval into coef; returns (status, byte offset of an error). Per interval it records "
        "the pad bits after the last MCU (pads/padbits) or, when the data runs out first, truncated[i] = the "
        "MCU it ran out in (else -1); MCUs from the cut on stay zero.");

    scan.def(
        "encode_sequential",
        [](i64 n_intervals, i64 restart, i64 mcux, i64 nmcu, py::array geo, py::array ehufco, py::array ehufsi,
           py::array coef, py::array pads, py::array stops, i64 capacity, int threads) {
            if (threads < 1) fail("threads must be >= 1");
            const Coefficients c = coefficients(coef, false);
            const ScanGeometry g = geometry(geo, restart, mcux, nmcu, c.blocks);
            const EncodeTables t = encode_tables(ehufco, ehufsi);
            if (n_intervals < 0) fail("n_intervals must be >= 0");
            const i64* pd = checked<i64>(pads, "pads", {n_intervals}, false);
            const i64* st = checked<i64>(stops, "stops", {n_intervals}, false);
            EncodeResult r;
            {
                py::gil_scoped_release nogil;
                r = encode_sequential(n_intervals, g, t, c, pd, st, std::min<i64>(capacity, i64(1) << 30), threads);
            }
            return encode_result(std::move(r));
        },
        py::arg("n_intervals"), py::arg("restart"), py::arg("mcux"), py::arg("nmcu"), py::arg("geo"), py::arg("ehufco"),
        py::arg("ehufsi"), py::arg("coef"), py::arg("pads"), py::arg("stops"), py::arg("capacity"), py::arg("threads") = 1,
        "Encode intervals 0..n_intervals-1; returns (out, length, interval_ends, status). Each interval is "
        "padded with its recorded pad bits and followed by its restart marker (except the last). A long "
        "interval is coded in up to ``threads`` segments at once (the same bytes).");

    scan.def(
        "decode_progressive",
        [](py::array data, py::array starts, py::array ends, i64 restart, i64 mcux, i64 nmcu, py::array geo,
           py::array lookup, py::array maxcode, py::array valptr, py::array mincode, py::array huffval, py::array coef,
           py::array lastnz, int ss, int se, int ah, int al, py::array pads, py::array padbits, py::array truncated) {
            i64 size;
            const std::uint8_t* d = byte_data(data, size);
            const Intervals iv = intervals(starts, ends);
            const Coefficients c = coefficients(coef, true);
            const ScanGeometry g = geometry(geo, restart, mcux, nmcu, c.blocks);
            const DecodeTables t = decode_tables(lookup, maxcode, valptr, mincode, huffval);
            i64* lz = checked<i64>(lastnz, "lastnz", {c.blocks}, true);
            check_range(lz, c.blocks, 0, 63, "lastnz");
            const ProgressiveParams pp = progressive(ss, se, ah, al);
            const IntervalOutputs io = interval_outputs(pads, padbits, truncated, iv.n);
            DecodeResult r;
            {
                py::gil_scoped_release nogil;
                r = decode_progressive(d, size, iv.starts, iv.ends, iv.n, g, t, c, lz, pp, io);
            }
            return py::make_tuple(r.status, r.where, r.longest_run);
        },
        "Decode one progressive scan into coef; returns (status, error offset, longest EOB run). lastnz (per "
        "block, kept up to date across scans) bounds the refinement of end-of-band blocks.");

    scan.def(
        "encode_progressive",
        [](i64 n_intervals, i64 restart, i64 mcux, i64 nmcu, py::array geo, py::array ehufco, py::array ehufsi,
           py::array coef, py::array lastnz, int ss, int se, int ah, int al, i64 eob_cap, py::array pads,
           py::array stops, i64 capacity) {
            const Coefficients c = coefficients(coef, false);
            const ScanGeometry g = geometry(geo, restart, mcux, nmcu, c.blocks);
            const EncodeTables t = encode_tables(ehufco, ehufsi);
            const i64* lz = checked<i64>(lastnz, "lastnz", {c.blocks}, false);
            check_range(lz, c.blocks, 0, 63, "lastnz");
            const ProgressiveParams pp = progressive(ss, se, ah, al);
            if (n_intervals < 0) fail("n_intervals must be >= 0");
            if (eob_cap < 1) fail("eob_cap must be >= 1");
            const i64* pd = checked<i64>(pads, "pads", {n_intervals}, false);
            const i64* st = checked<i64>(stops, "stops", {n_intervals}, false);
            EncodeResult r;
            {
                py::gil_scoped_release nogil;
                r = encode_progressive(n_intervals, g, t, c, lz, pp, eob_cap, pd, st,
                                       std::min<i64>(capacity, i64(1) << 30));
            }
            return encode_result(std::move(r));
        },
        "Encode one progressive scan as libjpeg would; outputs as encode_sequential. eob_cap is the longest "
        "EOB run written (libjpeg: 0x7FFF; an encoder that never merges end-of-band blocks is reproduced with 1).");

    scan.def(
        "last_nonzero",
        [](py::array coef) {
            const Coefficients c = coefficients(coef, false);
            py::array_t<i64> out(c.blocks);
            i64* o = out.mutable_data();
            {
                py::gil_scoped_release nogil;
                last_nonzero(c.coef, c.blocks, o);
            }
            return out;
        },
        "Per block of coef [n, 64], the zig-zag index of its last non-zero coefficient (0 if only DC may be set).");

    scan.def(
        "ac_symbol_counts",
        [](py::array coef, py::array freq) {
            const Coefficients c = coefficients(coef, false);
            i64* f = checked<i64>(freq, "freq", {256}, true);
            bool ok;
            {
                py::gil_scoped_release nogil;
                ok = ac_symbol_counts(c.coef, c.blocks, f);
            }
            if (!ok) fail("ac_symbol_counts: a coefficient needs more than 15 magnitude bits");
        },
        "Add to freq int64 [256] the baseline AC Huffman symbols (run/size, ZRL, EOB) of coef [n, 64] "
        "(natural order); ValueError when a coefficient needs more than 15 magnitude bits.");

    scan.def(
        "gather_blocks",
        [](py::array src, py::array dst, i64 offset, py::array lastnz) {
            const std::int16_t* s = checked<std::int16_t>(src, "src", {-1, 64}, false);
            const i64 n = src.shape(0);
            std::int16_t* d = checked<std::int16_t>(dst, "dst", {-1, 64}, true);
            i64* lz = checked<i64>(lastnz, "lastnz", {dst.shape(0)}, true);
            if (offset < 0 || offset + n > dst.shape(0)) fail("gather_blocks: blocks do not fit dst at offset");
            py::gil_scoped_release nogil;
            gather_blocks(s, n, d, offset, lz);
        },
        "Copy blocks src [n, 64] to dst[offset:offset + n] and fill lastnz for them (one pass).");

    // ---- binary arithmetic coder
    py::module_ arith = m.def_submodule("arith", "Adaptive binary arithmetic coder");
    arith.attr("P_MIN") = P_MIN;
    arith.attr("COUNTER_INIT") = COUNTER_INIT;
    arith.attr("BACKOFF_N") = BACKOFF_N;

    py::class_<BinaryEncoder>(arith, "BinaryEncoder", "Encoder state; one per independent stream")
        .def(py::init<>())
        .def(
            "finish",
            [](BinaryEncoder& e) {
                const std::vector<std::uint8_t> out = e.finish();
                return py::bytes(reinterpret_cast<const char*>(out.data()), out.size());
            },
            "Flush and return the stream (idempotent).")
        .def(
            "code_bits",
            [](BinaryEncoder& e, py::array counters_, py::array ctxs, py::array bits, int limit) {
                if (e.finished()) fail("encoder is finished");
                if (limit < 0 || limit > 1023) fail("limit must be 0..1023");
                const i64* cx = checked<i64>(ctxs, "ctxs", {-1}, false);
                const i64 n = ctxs.shape(0);
                const std::uint8_t* b = checked<std::uint8_t>(bits, "bits", {n}, false);
                const Counters T{checked<std::int32_t>(counters_, "counters", {-1}, true),
                                 static_cast<i64>(counters_.shape(0))};
                py::gil_scoped_release nogil;
                for (i64 i = 0; i < n; ++i) code_bit(e, T, cx[i], b[i] != 0, limit);
            },
            "Code bits[i] with adaptive counter ctxs[i] (int32 counters, hit counts capped at limit).");

    py::class_<BinaryDecoder>(arith, "BinaryDecoder", "Decoder state over one stream")
        .def(py::init([](py::bytes data) {
            const std::string s = data;
            return BinaryDecoder(std::vector<std::uint8_t>(s.begin(), s.end()));
        }))
        .def_property_readonly("damaged", &BinaryDecoder::damaged,
                               "A model decoded something a valid stream never codes.")
        .def_property_readonly("overrun", &BinaryDecoder::overrun,
                               "Bytes read past the end beyond the 3 a valid stream reads; > 0: truncated.")
        .def(
            "code_bits",
            [](BinaryDecoder& d, py::array counters_, py::array ctxs, int limit) {
                if (limit < 0 || limit > 1023) fail("limit must be 0..1023");
                const i64* cx = checked<i64>(ctxs, "ctxs", {-1}, false);
                const i64 n = ctxs.shape(0);
                const Counters T{checked<std::int32_t>(counters_, "counters", {-1}, true),
                                 static_cast<i64>(counters_.shape(0))};
                py::array_t<std::uint8_t> out(n);
                std::uint8_t* o = out.mutable_data();
                {
                    py::gil_scoped_release nogil;
                    for (i64 i = 0; i < n; ++i) o[i] = static_cast<std::uint8_t>(code_bit(d, T, cx[i], 0, limit));
                }
                return out;
            },
            "Decode len(ctxs) bits, inverse of BinaryEncoder.code_bits.");

    // ---- adaptive model passes
    py::module_ am = m.def_submodule("adaptive", "Passes of the adaptive coefficient model");
    am.attr("N_COUNTERS") = adaptive::N_COUNTERS;
    am.attr("BASE_COUNTERS") = adaptive::CrossSign::offset;  // the layout before the cross-channel sign grids
    am.attr("N_HINTS") = adaptive::N_HINTS;
    {
        py::list names, groups, widths;
        for (int p = 0; p < adaptive::N_PASSES; ++p) {
            names.append(adaptive::PASSES[p].name);
            widths.append(adaptive::hint_width(p));
            if (adaptive::PASSES[p].kind == adaptive::INTERIOR_GROUP)
                groups.append(py::make_tuple(adaptive::PASSES[p].z0, adaptive::PASSES[p].z1));
        }
        am.attr("PASS_NAMES") = py::tuple(names);
        am.attr("INTERIOR_GROUPS") = py::tuple(groups);
        am.attr("PASS_HINT_WIDTH") = py::tuple(widths);
    }
    const char* pass_doc =
        "Code (encoder) or decode (decoder) pass ``pass_index`` of one component: coefficients int16 [R, C, 64], "
        "quant int64 [64], nz7/nzrem int64 [R, C], hint uint8 [R, C, PASS_HINT_WIDTH[pass]] or None, counters "
        "int32 [N_COUNTERS] (updated in place); reference: a cross-channel reference (coefficients, quant, nz7, fy, "
        "fx) whose co-located coefficients give the hints instead, or None. Releases the GIL.";
    am.def("run_pass", &adaptive_pass<BinaryEncoder>, py::arg("coder"), py::arg("pass_index"), py::arg("coefficients"),
           py::arg("quant"), py::arg("nz7"), py::arg("nzrem"), py::arg("hint"), py::arg("counters"),
           py::arg("reference") = py::none(), pass_doc);
    am.def("run_pass", &adaptive_pass<BinaryDecoder>, py::arg("coder"), py::arg("pass_index"), py::arg("coefficients"),
           py::arg("quant"), py::arg("nz7"), py::arg("nzrem"), py::arg("hint"), py::arg("counters"),
           py::arg("reference") = py::none(), pass_doc);

    am.def("decode_pipelined", &adaptive_decode_pipelined, py::arg("components"), py::arg("threads"),
           "Decode components coded with one stream per pass (or one for all passes), as a pipeline over block rows on ``threads`` "
           "threads; ``components``: a list of (streams, coefficients, quant, nz7, nzrem, counters), arrays as "
           "for run_pass. Returns, per component and pass, (damaged, overrun) of its decoder. Releases the GIL.");

    // ---- lossy mode: rate-distortion optimised quantisation (jpegshrink/lossy/quant.py)
    py::module_ lq = m.def_submodule("lossy", "Quantisation kernels of the lossy high-bitrate mode (integer-only)");
    lq.attr("N_CTX") = lossy::N_CTX;
    lq.attr("N_MAG") = lossy::N_MAG;
    lq.attr("ONE") = lossy::ONE;
    lq.attr("COEF_FRAC_BITS") = lossy::COEF_FRAC_BITS;
    lq.attr("SAMPLE_FRAC_BITS") = lossy::SAMPLE_FRAC_BITS;
    {
        i64 m[64];
        for (int k = 0; k < 64; ++k) m[k] = lossy::DCT_MATRIX[k / 8][k % 8];
        lq.attr("DCT_MATRIX") = table(m, 64);
    }
    lq.def(
        "rgb_to_ycbcr",
        [](py::array rgb) {
            const std::uint8_t* p = checked<std::uint8_t>(rgb, "rgb", {-1, -1, 3}, false);
            const i64 h = rgb.shape(0), w = rgb.shape(1);
            py::array_t<i64> out({i64(3), h, w});
            i64* o = out.mutable_data();
            {
                py::gil_scoped_release nogil;
                lossy::rgb_to_ycbcr(p, h * w, o, o + h * w, o + 2 * h * w);
            }
            return out;
        },
        "Y, Cb, Cr planes int64 [3, H, W] of rgb uint8 [H, W, 3]: JFIF BT.601 with libjpeg's fixed-point "
        "constants, SAMPLE_FRAC_BITS fractional bits, Y level-shifted by -128.");
    lq.def(
        "forward_dct",
        [](py::array plane) {
            const i64* p = checked<i64>(plane, "plane", {-1, -1}, false);
            const i64 h = plane.shape(0), w = plane.shape(1);
            if (h % 8 || w % 8) fail("plane: both sides must be multiples of 8");
            // |sample| <= 2^20 keeps both matrix products far inside int64 (8 * 2^20 * 2^13 * 8 * 2^13)
            check_range(p, h * w, -(i64(1) << 20), i64(1) << 20, "plane");
            py::array_t<i64> out({h / 8, w / 8, i64(64)});
            i64* o = out.mutable_data();
            {
                py::gil_scoped_release nogil;
                lossy::forward_dct(p, h, w, o);
            }
            return out;
        },
        "Coefficients int64 [H/8, W/8, 64] (natural order, COEF_FRAC_BITS fractional bits) of plane int64 "
        "[H, W] (SAMPLE_FRAC_BITS fractional bits): round(M X M^T) with DCT_MATRIX (13 fractional bits).");
    lq.def(
        "count_contexts",
        [](py::array q, py::array hist) {
            const i64* qp = checked<i64>(q, "q", {-1, -1, 64}, false);
            i64* h = checked<i64>(hist, "hist", {64, lossy::N_CTX, lossy::N_MAG}, true);
            const i64 rows = q.shape(0), cols = q.shape(1);
            check_range(qp, rows * cols * 64, -lossy::MAX_COEF, lossy::MAX_COEF, "q");
            py::gil_scoped_release nogil;
            lossy::count_contexts(qp, rows, cols, h);
        },
        "Add the (position, context, magnitude class) counts of quantised coefficients q int64 [R, C, 64] to "
        "hist int64 [64, N_CTX, N_MAG] (in place).");
    lq.def(
        "costs_from_counts",
        [](py::array hist) {
            const i64* h = checked<i64>(hist, "hist", {64, lossy::N_CTX, lossy::N_MAG}, false);
            check_range(h, 64 * lossy::N_CTX * lossy::N_MAG, 0, i64(1) << 48, "hist");
            py::array_t<i64> out({64, lossy::N_CTX, lossy::N_MAG});
            i64* o = out.mutable_data();
            {
                py::gil_scoped_release nogil;
                lossy::costs_from_counts(h, o);
            }
            return out;
        },
        "Cost table int64 [64, N_CTX, N_MAG] (1/256 bit) from counts: -log2 of the smoothed frequency of each "
        "magnitude class in its context, plus sign and mantissa bits.");
    lq.def(
        "quantise",
        [](py::array coef, py::array qt, py::array weight, i64 lam, py::object costs, i64 deadzone, i64 truncate) {
            const i64* c = checked<i64>(coef, "coef", {-1, -1, 64}, false);
            const i64 rows = coef.shape(0), cols = coef.shape(1);
            const i64* t = checked<i64>(qt, "qt", {64}, false);
            const i64* w = checked<i64>(weight, "weight", {rows, cols}, false);
            check_range(c, rows * cols * 64, -lossy::MAX_COEF, lossy::MAX_COEF, "coef");
            check_range(t, 64, 1, lossy::MAX_STEP, "qt");
            check_range(w, rows * cols, 0, lossy::MAX_WEIGHT, "weight");
            if (lam < 0 || lam > lossy::MAX_LAMBDA) fail("lam must be in [0, 2^24]");
            if (deadzone < 0 || deadzone > lossy::MAX_DEADZONE) fail("deadzone must be in [0, 2^16]");
            if (truncate != 0 && truncate != 1) fail("truncate must be 0 or 1");
            const i64* table = nullptr;
            py::array ca;
            if (!costs.is_none()) {
                ca = costs.cast<py::array>();
                table = checked<i64>(ca, "costs", {64, lossy::N_CTX, lossy::N_MAG}, false);
                check_range(table, 64 * lossy::N_CTX * lossy::N_MAG, 0, lossy::MAX_COST, "costs");
            }
            py::array_t<i64> out({rows, cols, i64(64)});
            i64* o = out.mutable_data();
            {
                py::gil_scoped_release nogil;
                lossy::rdo_quantise(c, rows, cols, t, w, lam, table, deadzone, truncate, o);
            }
            return out;
        },
        "Quantised coefficients int64 [R, C, 64] of coef int64 [R, C, 64] (COEF_FRAC_BITS fractional bits) with "
        "steps qt int64 [64], block weights int64 [R, C] (ONE = 1.0) and lam (1/65536 step^2 per bit): each AC "
        "value is the cheapest of its rounding, one step towards zero and (when it rounds to <= 2) zero, priced "
        "with costs int64 [64, N_CTX, N_MAG]; costs=None: rounding with a dead zone (deadzone/256 step). DC is "
        "rounded. Blocks are decided in raster order (contexts use the decided blocks above and left). truncate=1 "
        "(with costs): each block's interior / first-row / first-column run is then cut after the last nonzero "
        "minimising D + lambda R, trailing zeros free (our coder sends nonzero counts).",
        py::arg("coef"), py::arg("qt"), py::arg("weight"), py::arg("lam"), py::arg("costs"), py::arg("deadzone"),
        py::arg("truncate") = 0);
}
