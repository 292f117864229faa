// emulate.cpp: runs every kernel of kernels/*.cu on the CPU emulator (emu.h) and checks it
// against a double-precision reference, at sizes that are and are not multiples of the
// tiles, with small grids (grid-stride paths), NaN-poisoned outputs (unwritten elements
// fail), exact-size heap buffers (AddressSanitizer catches any out-of-bounds access) and
// misaligned base pointers (the element-wise fallback paths).
//
// Built and run by kernels/emu/run.py, twice: with EMU_CUDA_ARCH=800 (module gemm_tc and
// everything else) and EMU_CUDA_ARCH=750 (module gemm_tc_sm75: hgemm_tc only).
#include "emu.h"

#include <algorithm>
#include <cinttypes>
#include <cstdarg>
#include <limits>
#include <tuple>
#include <random>
#include <string>

#include "../copy.cu"
#include "../gemm_f32.cu"
#include "../gemm_tc.cu"
#include "../sanity.cu"
#include "../transformer.cu"

namespace {

int g_passed = 0, g_failed = 0;
std::mt19937_64 g_rng(12345);

void report(bool ok, const std::string& name, const std::string& detail)
{
    if (ok) {
        ++g_passed;
        std::printf("ok    %s\n", name.c_str());
    } else {
        ++g_failed;
        std::printf("FAIL  %s: %s\n", name.c_str(), detail.c_str());
    }
    std::fflush(stdout);
}

std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* f, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, f);
    std::vsnprintf(buf, sizeof buf, f, ap);
    va_end(ap);
    return buf;
}

// Exact-size heap buffer (ASan redzones on both sides); an optional element offset makes
// the base pointer misaligned on purpose.
template <class T>
struct Buf {
    std::vector<T>* v;  // never resized after construction
    size_t off;
    Buf(size_t n, size_t offset = 0) : v(new std::vector<T>(n + offset)), off(offset) {}
    ~Buf() { delete v; }
    T* p() { return v->data() + off; }
    T& operator[](size_t i) { return (*v)[off + i]; }
    size_t n() const { return v->size() - off; }
};

float uniform(float lo, float hi) { return std::uniform_real_distribution<float>(lo, hi)(g_rng); }
const float kNaN = std::numeric_limits<float>::quiet_NaN();

uint16_t f32_to_bf16_ref(float x)
{
    uint32_t u = emu::f2u(x);
    if (std::isnan(x)) return (uint16_t)((u >> 16) | 0x40);
    const uint32_t lo = u & 0xffff0000u;
    const double dlo = emu::u2f(lo);
    const uint32_t hi_bits = lo + 0x10000u;  // next bf16 away from zero (may be Inf)
    const double dhi = (hi_bits & 0x7f800000u) == 0x7f800000u && (hi_bits & 0x007fffffu) == 0
                           ? (x > 0 ? 1.0 : -1.0) * std::ldexp(1.0, 128)  // Inf sits where 2^128 would be
                           : (double)emu::u2f(hi_bits);
    if (std::isinf(x)) return (uint16_t)(u >> 16);
    const double dx = x, elo = std::fabs(dx - dlo), ehi = std::fabs(dhi - dx);
    if (elo < ehi) return (uint16_t)(lo >> 16);
    if (ehi < elo) return (uint16_t)(hi_bits >> 16);
    return ((lo >> 16) & 1) ? (uint16_t)(hi_bits >> 16) : (uint16_t)(lo >> 16);
}

// ---- GEMMs --------------------------------------------------------------------------------
enum GemmKind { G_F32, G_F16, G_BF16, G_TF32 };
const char* kind_name(GemmKind k)
{
    return k == G_F32 ? "sgemm_tiled" : k == G_F16 ? "hgemm_tc" : k == G_BF16 ? "bf16gemm_tc" : "tf32gemm_tc";
}

void gemm_case(GemmKind kind, int M, int N, int K, size_t misalign = 0)
{
    const std::string name = fmt("%s M=%d N=%d K=%d%s", kind_name(kind), M, N, K,
                                 misalign ? " (misaligned A/B)" : "");
    const bool half = kind == G_F16 || kind == G_BF16;
    std::vector<double> a((size_t)M * K), b((size_t)K * N);  // the values the kernel multiplies
    Buf<float> af(half ? 0 : (size_t)M * K, misalign), bf(half ? 0 : (size_t)K * N, misalign);
    Buf<uint16_t> ah(half ? (size_t)M * K : 0, misalign), bh(half ? (size_t)K * N : 0, misalign);
    auto gen = [&](std::vector<double>& ref, Buf<float>& f, Buf<uint16_t>& h) {
        for (size_t i = 0; i < ref.size(); ++i) {
            const float x = uniform(-1.0f, 1.0f);
            if (kind == G_F16) {
                h[i] = tf_f32_to_f16_bits(x);
                ref[i] = emu::half_to_double(h[i]);
            } else if (kind == G_BF16) {
                h[i] = f32_to_bf16_ref(x);
                ref[i] = emu::bf16_to_double(h[i]);
            } else {
                f[i] = x;
                ref[i] = kind == G_TF32 ? (double)emu::u2f(tc_to_tf32(emu::f2u(x))) : (double)x;
            }
        }
    };
    gen(a, af, ah);
    gen(b, bf, bh);
    Buf<float> c((size_t)M * N);
    for (size_t i = 0; i < c.n(); ++i) c[i] = kNaN;

    const dim3 grid{(unsigned)((N + 127) / 128), (unsigned)((M + 127) / 128), 1};
    const dim3 block{256, 1, 1};
    if (kind == G_F32) {
        emu::launch(grid, block, [&] { sgemm_tiled(M, N, K, af.p(), bf.p(), c.p()); });
    } else {
        emu::g_smem_bytes = TC_STAGES * TC_STAGE_BYTES;
        if (kind == G_F16) emu::launch(grid, block, [&] { hgemm_tc(M, N, K, ah.p(), bh.p(), c.p()); });
#if EMU_CUDA_ARCH >= 800
        if (kind == G_BF16) emu::launch(grid, block, [&] { bf16gemm_tc(M, N, K, ah.p(), bh.p(), c.p()); });
        if (kind == G_TF32) emu::launch(grid, block, [&] { tf32gemm_tc(M, N, K, af.p(), bf.p(), c.p()); });
#endif
    }

    // |c - ref| <= tol * sum_k |a b|: f32 accumulation of K terms (the emulated mma rounds
    // each 16x8xk step to f32; the sgemm runs FFMA in order).
    const double tol = (kind == G_F32 ? 2.0 * (K + 1) : 2.0 * (K / 8 + 2)) * 6e-8;
    double worst = 0;
    for (int i = 0; i < M; ++i)
        for (int j = 0; j < N; ++j) {
            double ref = 0, mag = 0;
            for (int k = 0; k < K; ++k) {
                ref += a[(size_t)i * K + k] * b[(size_t)k * N + j];
                mag += std::fabs(a[(size_t)i * K + k] * b[(size_t)k * N + j]);
            }
            const double got = c[(size_t)i * N + j];
            const double err = std::fabs(got - ref) / (mag > 0 ? mag : 1.0);
            if (!(err <= tol)) {  // also catches NaN (unwritten)
                report(false, name, fmt("C[%d][%d] = %.9g, expected %.9g (relative error %.3g > %.3g)", i, j, got, ref,
                                        err, tol));
                return;
            }
            worst = std::max(worst, err);
        }
    report(true, name + fmt("  (max rel err %.2g)", worst), "");
}

// ---- small kernels ------------------------------------------------------------------------
[[maybe_unused]] void sanity_copy_fill()
{
    for (int n : {1, 1000, 4097}) {
        Buf<float> x(n), y(n), out(n);
        for (int i = 0; i < n; ++i) { x[i] = uniform(-2, 2); y[i] = uniform(-2, 2); out[i] = kNaN; }
        emu::launch({3, 1, 1}, {64, 1, 1}, [&] { sanity_axpy(n, 1.5f, x.p(), y.p(), out.p()); });
        bool ok = true;
        for (int i = 0; i < n && ok; ++i) ok = out[i] == std::fma(1.5f, x[i], y[i]) || out[i] == 1.5f * x[i] + y[i];
        report(ok, fmt("sanity_axpy n=%d grid=3x64", n), "wrong element");
    }
    for (unsigned long long n4 : {1ull, 37ull, 1000ull}) {
        Buf<uint4> s(n4), d(n4);
        for (size_t i = 0; i < n4; ++i) { s[i] = make_uint4((unsigned)i, ~(unsigned)i, 7u, (unsigned)(i * 31)); d[i] = make_uint4(0, 0, 0, 0); }
        emu::launch({2, 1, 1}, {32, 1, 1}, [&] { copy_u32x4(s.p(), d.p(), n4); });
        report(std::memcmp(s.p(), d.p(), n4 * 16) == 0, fmt("copy_u32x4 n4=%llu grid=2x32", n4), "copy differs");
        Buf<float> f(n4 * 4);
        emu::launch({2, 1, 1}, {32, 1, 1}, [&] { fill_f32(f.p(), kNaN, n4 * 4); });
        bool ok = true;
        for (size_t i = 0; i < n4 * 4; ++i) ok = ok && std::isnan(f[i]);
        report(ok, fmt("fill_f32 n=%llu", n4 * 4), "element not filled");
    }
}

[[maybe_unused]] void layernorm_case(int rows, int cols, unsigned block, unsigned grid, bool in_place)
{
    const std::string name = fmt("layernorm_f32 rows=%d cols=%d block=%u grid=%u%s", rows, cols, block, grid,
                                 in_place ? " in place" : "");
    Buf<float> x((size_t)rows * cols), g(cols), b(cols), y((size_t)rows * cols);
    std::vector<float> x0(x.n());
    for (size_t i = 0; i < x.n(); ++i) x0[i] = x[i] = uniform(-3, 5);
    for (int c = 0; c < cols; ++c) { g[c] = uniform(0.5, 1.5); b[c] = uniform(-1, 1); }
    for (size_t i = 0; i < y.n(); ++i) y[i] = kNaN;
    float* out = in_place ? x.p() : y.p();
    emu::launch({grid, 1, 1}, {block, 1, 1}, [&] { layernorm_f32(rows, cols, x.p(), g.p(), b.p(), out, 1e-5f); });
    for (int r = 0; r < rows; ++r) {
        double mean = 0, var = 0;
        for (int c = 0; c < cols; ++c) mean += x0[(size_t)r * cols + c];
        mean /= cols;
        for (int c = 0; c < cols; ++c) var += (x0[(size_t)r * cols + c] - mean) * (x0[(size_t)r * cols + c] - mean);
        var /= cols;
        for (int c = 0; c < cols; ++c) {
            const double ref = (x0[(size_t)r * cols + c] - mean) / std::sqrt(var + 1e-5) * g[c] + b[c];
            const double got = out[(size_t)r * cols + c];
            if (!(std::fabs(got - ref) <= 1e-4 * (1 + std::fabs(ref)))) {
                report(false, name, fmt("y[%d][%d] = %.7g, expected %.7g", r, c, got, ref));
                return;
            }
        }
    }
    report(true, name, "");
}

[[maybe_unused]] void softmax_case(int rows, int cols, unsigned block, unsigned grid)
{
    const std::string name = fmt("softmax_causal_f32 rows=%d cols=%d block=%u grid=%u", rows, cols, block, grid);
    Buf<float> s((size_t)rows * cols);
    std::vector<float> s0(s.n());
    for (size_t i = 0; i < s.n(); ++i) s0[i] = s[i] = uniform(-8, 8);
    const float scale = 0.37f;
    emu::launch({grid, 1, 1}, {block, 1, 1}, [&] { softmax_causal_f32(rows, cols, s.p(), scale); });
    for (int r = 0; r < rows; ++r) {
        const int last = r % cols;
        double m = -INFINITY, sum = 0;
        for (int c = 0; c <= last; ++c) m = std::max(m, (double)scale * s0[(size_t)r * cols + c]);
        for (int c = 0; c <= last; ++c) sum += std::exp((double)scale * s0[(size_t)r * cols + c] - m);
        for (int c = 0; c < cols; ++c) {
            const double ref = c <= last ? std::exp((double)scale * s0[(size_t)r * cols + c] - m) / sum : 0.0;
            const double got = s[(size_t)r * cols + c];
            if (!(std::fabs(got - ref) <= 1e-5 * std::fabs(ref) + 1e-7)) {
                report(false, name, fmt("p[%d][%d] = %.7g, expected %.7g", r, c, got, ref));
                return;
            }
        }
    }
    report(true, name, "");
}

[[maybe_unused]] void transpose_case(int rows, int cols, dim3 grid)
{
    const std::string name = fmt("transpose_f32 rows=%d cols=%d grid=%ux%u", rows, cols, grid.x, grid.y);
    Buf<float> in((size_t)rows * cols), out((size_t)rows * cols);
    for (size_t i = 0; i < in.n(); ++i) { in[i] = (float)i; out[i] = kNaN; }
    emu::launch(grid, {32, 8, 1}, [&] { transpose_f32(rows, cols, in.p(), out.p()); });
    for (int r = 0; r < rows; ++r)
        for (int c = 0; c < cols; ++c)
            if (!(out[(size_t)c * rows + r] == in[(size_t)r * cols + c])) {
                report(false, name, fmt("out[%d][%d] = %g, expected %g", c, r, out[(size_t)c * rows + r],
                                        in[(size_t)r * cols + c]));
                return;
            }
    report(true, name, "");
}

[[maybe_unused]] void elementwise()
{
    for (unsigned long long n : {1ull, 333ull, 4097ull}) {
        Buf<float> x(n), a(n), b(n), out(n);
        std::vector<float> x0(n);
        for (size_t i = 0; i < n; ++i) { x0[i] = x[i] = uniform(-6, 6); a[i] = uniform(-1, 1); b[i] = uniform(-1, 1); out[i] = kNaN; }
        emu::launch({3, 1, 1}, {64, 1, 1}, [&] { gelu_tanh_f32(n, x.p()); });
        bool ok = true;
        size_t bad = 0;
        for (size_t i = 0; i < n && ok; ++i) {
            const double v = x0[i];
            const double ref = 0.5 * v * (1 + std::tanh(0.7978845608028654 * (v + 0.044715 * v * v * v)));
            ok = std::fabs(x[i] - ref) <= 2e-6 * (1 + std::fabs(ref));
            bad = i;
        }
        report(ok, fmt("gelu_tanh_f32 n=%llu", n), fmt("x[%zu] = %.7g", bad, x[bad]));
        emu::launch({2, 1, 1}, {32, 1, 1}, [&] { add_f32(n, a.p(), b.p(), out.p()); });
        ok = true;
        for (size_t i = 0; i < n; ++i) ok = ok && out[i] == a[i] + b[i];
        report(ok, fmt("add_f32 n=%llu", n), "wrong element");
    }
    for (auto [rows, cols, gx, gy] : {std::tuple{1, 1, 1u, 1u}, {5, 300, 1u, 2u}, {7, 33, 3u, 7u}}) {
        Buf<float> x((size_t)rows * cols), bias(cols);
        std::vector<float> x0(x.n());
        for (size_t i = 0; i < x.n(); ++i) x0[i] = x[i] = uniform(-1, 1);
        for (int c = 0; c < cols; ++c) bias[c] = uniform(-1, 1);
        emu::launch({gx, gy, 1}, {64, 1, 1}, [&] { add_bias_f32(rows, cols, x.p(), bias.p()); });
        bool ok = true;
        for (int r = 0; r < rows; ++r)
            for (int c = 0; c < cols; ++c) ok = ok && x[(size_t)r * cols + c] == x0[(size_t)r * cols + c] + bias[c];
        report(ok, fmt("add_bias_f32 rows=%d cols=%d grid=%ux%u", rows, cols, gx, gy), "wrong element");
    }
    // Conversions: random values plus the edge cases of rounding.
    std::vector<float> vals = {0.0f, -0.0f, 1.0f, -2.5f, 65504.0f, 65519.0f, 65520.0f, 1e-8f, 6e-8f, 3e-8f,
                               3.0e38f, std::numeric_limits<float>::max(), INFINITY, -INFINITY, kNaN,
                               emu::u2f(0x3f808000u), emu::u2f(0x3f818000u), emu::u2f(0x3f808001u),
                               emu::u2f(0x00000001u), emu::u2f(0x807fffffu), emu::u2f(0x7f7f8000u),
                               emu::u2f(0xffc00001u)};
    for (int i = 0; i < 2000; ++i) vals.push_back(emu::u2f((uint32_t)g_rng()));
    const unsigned long long n = vals.size();
    Buf<float> in(n);
    Buf<uint16_t> h(n), bf(n);
    for (size_t i = 0; i < n; ++i) in[i] = vals[i];
    emu::launch({2, 1, 1}, {64, 1, 1}, [&] { f32_to_f16(n, in.p(), h.p()); });
    emu::launch({2, 1, 1}, {64, 1, 1}, [&] { f32_to_bf16(n, in.p(), bf.p()); });
    const uint16_t f16_expect[] = {0x0000, 0x8000, 0x3c00, 0xc100, 0x7bff, 0x7bff, 0x7c00, 0x0000, 0x0001, 0x0001};  // 3e-8 > 2^-25: rounds up
    bool ok = true;
    std::string why;
    for (size_t i = 0; i < sizeof f16_expect / 2; ++i)
        if (h[i] != f16_expect[i]) { ok = false; why = fmt("f16(%g) = %04x, expected %04x", vals[i], h[i], f16_expect[i]); }
    report(ok, "f32_to_f16 rounding edge cases", why);
    ok = true;
    for (size_t i = 0; i < n && ok; ++i) {
        const uint16_t ref = f32_to_bf16_ref(vals[i]);
        const bool both_nan = std::isnan(vals[i]) && (bf[i] & 0x7fff) > 0x7f80 && (bf[i] >> 15) == (ref >> 15);
        if (bf[i] != ref && !both_nan) { ok = false; why = fmt("bf16(0x%08x) = %04x, expected %04x", emu::f2u(vals[i]), bf[i], ref); }
    }
    report(ok, fmt("f32_to_bf16 round-to-nearest-even, %llu values", n), why);
}

}  // namespace

int main(int argc, char** argv)
{
    const bool quick = argc > 1 && std::string(argv[1]) == "--quick";
    std::printf("kernel emulator, __CUDA_ARCH__ = %d\n", EMU_CUDA_ARCH);
#if EMU_CUDA_ARCH >= 800
    sanity_copy_fill();
    elementwise();
    for (auto [r, c, b, g] : {std::tuple{1, 1, 32u, 1u}, {3, 17, 256u, 3u}, {5, 1000, 256u, 2u}, {2, 4097, 128u, 2u}})
        for (bool ip : {false, true}) layernorm_case(r, c, b, g, ip);
    for (auto [r, c, b, g] : {std::tuple{1, 1, 32u, 1u}, {5, 5, 256u, 2u}, {7, 3, 64u, 7u}, {4, 1000, 256u, 3u},
                              {3, 300, 32u, 1u}})
        softmax_case(r, c, b, g);
    transpose_case(1, 1, {1, 1, 1});
    transpose_case(33, 65, {3, 2, 1});
    transpose_case(100, 3, {1, 1, 1});
    transpose_case(70, 130, {2, 2, 1});
    const GemmKind kinds[] = {G_F32, G_F16, G_BF16, G_TF32};
#else
    const GemmKind kinds[] = {G_F16};
#endif
    struct Shape { int M, N, K; size_t mis; };
    std::vector<Shape> shapes = {
        {1, 1, 1, 0},      {3, 5, 0, 0},       {17, 17, 17, 0},   {1, 130, 7, 0},  {130, 1, 9, 0},
        {129, 131, 33, 0}, {128, 128, 32, 0},  {136, 264, 64, 0}, {65, 257, 72, 0}, {200, 9, 100, 0},
        {16, 24, 520, 0},  {40, 136, 48, 1},   {33, 72, 1000, 0},
    };
    if (quick) shapes.resize(6);
    for (GemmKind k : kinds)
        for (const Shape& s : shapes) gemm_case(k, s.M, s.N, s.K, s.mis);
    std::printf("%d passed, %d failed\n", g_passed, g_failed);
    return g_failed ? 1 : 0;
}
