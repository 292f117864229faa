// emu.h: a small CUDA execution emulator for checking kernels/*.cu on a CPU.
//
// It is not a simulator of a GPU: it runs every CUDA thread of a block as an OS thread,
// with real barriers for __syncthreads and for the warp-collective operations, so that
// the kernels' own index math, tiling, bounds checks, zero-filling, pipeline ordering and
// fragment layouts run unchanged. The few inline-PTX helpers of each .cu (guarded there by
// ACCELPROBE_HOST_EMULATION) are replaced here by C++ with the semantics of the PTX ISA:
//   ldmatrix.x4 (.trans), mma.sync m16n8k16 f16/bf16, m16n8k8 f16/tf32, cp.async with
//   zero-fill (copies happen only at cp.async.wait_group, so reading a stage before waiting
//   shows up as stale data), cvt.rna.tf32.f32, cvt.rn.f16.f32, ld/st.shared.
// Shared-memory accesses through those helpers are bounds- and alignment-checked; built
// with -fsanitize=address,undefined, every out-of-bounds global access and every
// misaligned vector access (float4/uint4/float2 carry their CUDA alignment) aborts.
// Blocks run one after another (`__shared__` is a function-local static), threads of a
// block concurrently.
#pragma once

#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#ifndef EMU_CUDA_ARCH
#define EMU_CUDA_ARCH 800
#endif
#define __CUDA_ARCH__ EMU_CUDA_ARCH
#define ACCELPROBE_HOST_EMULATION 1

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __restrict__ __restrict

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};
struct uint3 {
    unsigned x = 0, y = 0, z = 0;
};
struct alignas(16) uint4 {
    unsigned x, y, z, w;
};
struct alignas(16) float4 {
    float x, y, z, w;
};
struct alignas(8) float2 {
    float x, y;
};
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return uint4{x, y, z, w}; }
inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }
inline float2 make_float2(float x, float y) { return float2{x, y}; }

#define EMU_CHECK(cond, ...)                                                              \
    do {                                                                                  \
        if (!(cond)) {                                                                    \
            std::fprintf(stderr, "emulator check failed at %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            std::fprintf(stderr, __VA_ARGS__);                                            \
            std::fprintf(stderr, "\n");                                                   \
            std::abort();                                                                 \
        }                                                                                 \
    } while (0)

namespace emu {

struct Warp {
    std::barrier<> bar{32};
    uint32_t word[32][12];
    uint64_t ptr[32];
};

struct Block {
    explicit Block(unsigned n) : bar((std::ptrdiff_t)n) {}
    std::barrier<> bar;
    std::vector<std::unique_ptr<Warp>> warps;
};

struct CpAsync {
    unsigned char* dst;
    const unsigned char* src;
    unsigned bytes;
};

inline dim3 g_block_dim, g_grid_dim;
inline thread_local uint3 t_thread_idx, t_block_idx;
inline thread_local Block* t_block = nullptr;
inline thread_local unsigned t_lane = 0, t_warp = 0;
inline thread_local std::vector<CpAsync> t_cp_open;
inline thread_local std::deque<std::vector<CpAsync>> t_cp_groups;

// Shared memory as seen through 32-bit shared-window addresses (tc_smem_addr): the one
// __shared__ array a kernel registers, at a non-zero base so that an address that does
// not come from tc_smem_addr is caught.
constexpr unsigned kSmemWindow = 0x400;
inline unsigned char* g_smem_base = nullptr;
inline size_t g_smem_bytes = 0;

inline unsigned char* smem_at(unsigned addr, unsigned bytes)
{
    EMU_CHECK(g_smem_base != nullptr, "shared address used before tc_smem_addr");
    EMU_CHECK(addr >= kSmemWindow && addr - kSmemWindow + bytes <= g_smem_bytes,
              "shared access [%u, +%u) outside the %zu-byte array", addr - kSmemWindow, bytes, g_smem_bytes);
    EMU_CHECK(addr % bytes == 0 || (bytes == 16 && addr % 16 == 0), "misaligned %u-byte shared access at %u", bytes,
              addr - kSmemWindow);
    return g_smem_base + (addr - kSmemWindow);
}

inline Warp& warp() { return *t_block->warps[t_warp]; }

// Runs kernel() on every thread of grid x block, blocks one after another.
inline void launch(dim3 grid, dim3 block, const std::function<void()>& kernel)
{
    const unsigned nthreads = block.x * block.y * block.z;
    EMU_CHECK(nthreads >= 1 && nthreads <= 1024, "block of %u threads", nthreads);
    EMU_CHECK(grid.x >= 1 && grid.y >= 1 && grid.z >= 1 && grid.y <= 65535 && grid.z <= 65535, "bad grid");
    g_block_dim = block;
    g_grid_dim = grid;
    for (unsigned bz = 0; bz < grid.z; ++bz)
        for (unsigned by = 0; by < grid.y; ++by)
            for (unsigned bx = 0; bx < grid.x; ++bx) {
                Block blk(nthreads);
                for (unsigned w = 0; w < (nthreads + 31) / 32; ++w) blk.warps.emplace_back(new Warp());
                std::vector<std::thread> threads;
                threads.reserve(nthreads);
                for (unsigned t = 0; t < nthreads; ++t) {
                    threads.emplace_back([&, t, bx, by, bz] {
                        t_thread_idx = uint3{t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
                        t_block_idx = uint3{bx, by, bz};
                        t_block = &blk;
                        t_lane = t % 32;
                        t_warp = t / 32;
                        t_cp_open.clear();
                        t_cp_groups.clear();
                        kernel();
                        // Every cp.async a thread issued must have been waited for.
                        EMU_CHECK(t_cp_open.empty(), "cp.async issued but never committed");
                        for (auto& g : t_cp_groups) EMU_CHECK(g.empty(), "cp.async group never waited for");
                    });
                }
                for (auto& th : threads) th.join();
            }
}

inline uint32_t f2u(float f)
{
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}
inline float u2f(uint32_t u)
{
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

// Exact decoders for the 16-bit formats.
inline double half_to_double(uint16_t h)
{
    const int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 0) v = std::ldexp((double)m, -24);
    else if (e == 31) v = m ? NAN : INFINITY;
    else v = std::ldexp((double)(m | 1024), e - 25);
    return s ? -v : v;
}
inline double bf16_to_double(uint16_t b) { return (double)u2f((uint32_t)b << 16); }

}  // namespace emu

#define threadIdx emu::t_thread_idx
#define blockIdx emu::t_block_idx
#define blockDim emu::g_block_dim
#define gridDim emu::g_grid_dim

inline void __syncthreads() { emu::t_block->bar.arrive_and_wait(); }
inline float __int_as_float(int i) { return emu::u2f((uint32_t)i); }
inline float __uint_as_float(unsigned u) { return emu::u2f(u); }
inline unsigned __float_as_uint(float f) { return emu::f2u(f); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }

inline float __shfl_xor_sync(unsigned mask, float v, int lane_mask)
{
    EMU_CHECK(mask == 0xffffffffu, "partial-warp shuffle");
    emu::Warp& w = emu::warp();
    w.word[emu::t_lane][0] = emu::f2u(v);
    w.bar.arrive_and_wait();
    const float r = emu::u2f(w.word[emu::t_lane ^ (unsigned)lane_mask][0]);
    w.bar.arrive_and_wait();
    return r;
}

// ---- transformer.cu helper ----------------------------------------------------------------
inline unsigned short tf_f32_to_f16_bits(float v)
{
    _Float16 h = (_Float16)v;  // GCC: round to nearest even, IEEE binary16
    unsigned short u;
    std::memcpy(&u, &h, 2);
    return u;
}

// ---- gemm_tc.cu helpers -------------------------------------------------------------------
inline unsigned tc_smem_addr(const void* p)
{
    emu::g_smem_base = (unsigned char*)p;  // the kernel's one __shared__ array
    return emu::kSmemWindow;
}

inline void tc_ldmatrix_common(unsigned (&r)[4], unsigned addr, bool trans)
{
    emu::Warp& w = emu::warp();
    const unsigned lane = emu::t_lane;
    emu::smem_at(addr, 16);  // each lane's row address: in range and 16-byte aligned
    w.word[lane][0] = addr;
    w.bar.arrive_and_wait();
    const unsigned g = lane >> 2, t = lane & 3;
    for (int i = 0; i < 4; ++i) {
        if (!trans) {
            // row g of matrix i, 32-bit word t (b16 elements 2t, 2t+1)
            std::memcpy(&r[i], emu::smem_at(w.word[8 * i + g][0], 16) + 4 * t, 4);
        } else {
            // elements [2t][g] and [2t+1][g] of matrix i
            uint16_t lo, hi;
            std::memcpy(&lo, emu::smem_at(w.word[8 * i + 2 * t][0], 16) + 2 * g, 2);
            std::memcpy(&hi, emu::smem_at(w.word[8 * i + 2 * t + 1][0], 16) + 2 * g, 2);
            r[i] = lo | ((unsigned)hi << 16);
        }
    }
    w.bar.arrive_and_wait();
}
inline void tc_ldmatrix_x4(unsigned (&r)[4], unsigned addr) { tc_ldmatrix_common(r, addr, false); }
inline void tc_ldmatrix_x4_trans(unsigned (&r)[4], unsigned addr) { tc_ldmatrix_common(r, addr, true); }

inline unsigned tc_lds32(unsigned addr)
{
    unsigned v;
    std::memcpy(&v, emu::smem_at(addr, 4), 4);
    return v;
}
inline void tc_sts128(unsigned addr, uint4 v) { std::memcpy(emu::smem_at(addr, 16), &v, 16); }

inline unsigned tc_to_tf32(unsigned u)
{
    if ((u & 0x7f800000u) == 0x7f800000u) return u;  // Inf, NaN
    return (u + 0x1000u) & 0xffffe000u;               // nearest, ties away from zero
}

namespace emu {
enum MmaType { MMA_F16, MMA_BF16, MMA_TF32 };

// One warp-wide mma: every lane deposits its fragments, then computes its own 4 outputs.
// f16/bf16 registers hold two elements, the lower-indexed one in the low half.
inline void mma(float (&d)[4], const unsigned* a, int na, const unsigned* b, int nb, int K, MmaType type)
{
    Warp& w = warp();
    const unsigned lane = t_lane;
    for (int i = 0; i < na; ++i) w.word[lane][i] = a[i];
    for (int i = 0; i < nb; ++i) w.word[lane][4 + i] = b[i];
    w.bar.arrive_and_wait();
    double A[16][16] = {}, B[16][8] = {};
    auto h16 = [&](uint16_t v) { return type == MMA_BF16 ? bf16_to_double(v) : half_to_double(v); };
    for (unsigned l = 0; l < 32; ++l) {
        const unsigned g = l >> 2, t = l & 3;
        const uint32_t* f = w.word[l];
        if (type == MMA_TF32) {  // m16n8k8: a0 (g,t) a1 (g+8,t) a2 (g,t+4) a3 (g+8,t+4); b0 (t,g) b1 (t+4,g)
            auto tf = [](uint32_t u) { return (double)u2f(u & 0xffffe000u); };  // hardware reads 19 bits
            A[g][t] = tf(f[0]); A[g + 8][t] = tf(f[1]); A[g][t + 4] = tf(f[2]); A[g + 8][t + 4] = tf(f[3]);
            B[t][g] = tf(f[4]); B[t + 4][g] = tf(f[5]);
        } else {
            // a0 (g, 2t..2t+1) a1 (g+8, 2t..) [a2 (g, 2t+8..) a3 (g+8, 2t+8..) for k16]
            // b0 (2t..2t+1, g) [b1 (2t+8.., g) for k16]
            for (int h = 0; h < 2; ++h) {
                A[g][2 * t + h] = h16((uint16_t)(f[0] >> (16 * h)));
                A[g + 8][2 * t + h] = h16((uint16_t)(f[1] >> (16 * h)));
                B[2 * t + h][g] = h16((uint16_t)(f[4] >> (16 * h)));
                if (K == 16) {
                    A[g][2 * t + 8 + h] = h16((uint16_t)(f[2] >> (16 * h)));
                    A[g + 8][2 * t + 8 + h] = h16((uint16_t)(f[3] >> (16 * h)));
                    B[2 * t + 8 + h][g] = h16((uint16_t)(f[5] >> (16 * h)));
                }
            }
        }
    }
    w.bar.arrive_and_wait();
    const unsigned g = lane >> 2, t = lane & 3;
    for (int e = 0; e < 4; ++e) {  // c0 (g,2t) c1 (g,2t+1) c2 (g+8,2t) c3 (g+8,2t+1)
        const int row = g + (e >> 1) * 8, col = 2 * t + (e & 1);
        double s = d[e];
        for (int k = 0; k < K; ++k) s += A[row][k] * B[k][col];
        d[e] = (float)s;
    }
}
}  // namespace emu

template <int KIND>
inline void tc_mma_k16(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2])
{
#if EMU_CUDA_ARCH >= 800
    emu::mma(d, a, 4, b, 2, 16, KIND == 1 ? emu::MMA_BF16 : emu::MMA_F16);
#else
    static_assert(KIND == 0, "sm_75 has f16 only");
    const unsigned a01[2] = {a[0], a[1]}, a23[2] = {a[2], a[3]};
    emu::mma(d, a01, 2, &b[0], 1, 8, emu::MMA_F16);
    emu::mma(d, a23, 2, &b[1], 1, 8, emu::MMA_F16);
#endif
}

#if EMU_CUDA_ARCH >= 800
inline void tc_mma_tf32_k8(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2])
{
    emu::mma(d, a, 4, b, 2, 8, emu::MMA_TF32);
}

inline void tc_cp_async16(unsigned dst, const void* src, unsigned src_bytes)
{
    EMU_CHECK(src_bytes == 0 || src_bytes == 16, "src-size %u", src_bytes);
    EMU_CHECK(((uintptr_t)src & 15) == 0, "cp.async source not 16-byte aligned");
    emu::t_cp_open.push_back({emu::smem_at(dst, 16), (const unsigned char*)src, src_bytes});
}
inline void tc_cp_async_commit()
{
    emu::t_cp_groups.push_back(std::move(emu::t_cp_open));
    emu::t_cp_open.clear();
}
template <int N>
inline void tc_cp_async_wait()
{
    while (emu::t_cp_groups.size() > (size_t)N) {
        for (const emu::CpAsync& c : emu::t_cp_groups.front()) {
            if (c.bytes) std::memcpy(c.dst, c.src, c.bytes);
            std::memset(c.dst + c.bytes, 0, 16 - c.bytes);
        }
        emu::t_cp_groups.pop_front();
    }
}
#endif
