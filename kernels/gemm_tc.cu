// gemm_tc.cu: tensor-core GEMMs with f32 accumulation, C (f32) = A*B.
//
//   hgemm_tc   (int M, int N, int K, const unsigned short* A, const unsigned short* B, float* C)
//               A, B: IEEE binary16 bit patterns
//   bf16gemm_tc(int M, int N, int K, const unsigned short* A, const unsigned short* B, float* C)
//               A, B: bfloat16 bit patterns
//   tf32gemm_tc(int M, int N, int K, const float* A, const float* B, float* C)
//               A, B: f32, each element rounded to TF32 (cvt.rna.tf32.f32: to nearest,
//               ties away from zero, 10 explicit mantissa bits) before it is multiplied
//   A is M x K, B is K x N, C is M x N, all row-major and dense (row strides K, N, N).
//   C is overwritten (no beta); K == 0 gives C = 0. Products are exact; sums are f32 (the
//   tensor cores' internal accumulation order and rounding differ slightly from serial FFMA).
//
// This one source gives two PTX modules (kernels/manifest.json):
//   gemm_tc       compute_80: hgemm_tc, bf16gemm_tc, tf32gemm_tc  (sm_80 and newer)
//                 mma.sync m16n8k16 (f16, bf16), m16n8k8 (tf32); cp.async 3-stage pipeline
//   gemm_tc_sm75  compute_75: hgemm_tc only                       (sm_75, e.g. T4)
//                 f16 as two mma.sync m16n8k8 per k16; ldmatrix; register-staged
//                 2-stage pipeline (sm_75 has no cp.async and no bf16/tf32 mma)
// On sm_80+ load gemm_tc; on sm_75 gemm_tc_sm75. sm_70 (V100) has no kernel here.
//
// Algorithm: each 256-thread block (8 warps, 2 along M x 4 along N) computes a 128 x 128
// tile of C; each warp a 64 x 32 sub-tile = 4 x 4 mma tiles of 16 x 8, 64 f32 accumulators
// per thread. K is walked in slices of 32 (f16/bf16) or 16 (tf32) elements, i.e. 64 bytes
// of each A row. Per stage, shared memory holds the A slice (128 rows x 64 bytes) and the
// B slice (32 x 128 halves or 16 x 128 floats), 8 KiB each, in 16-byte chunks whose
// positions are XOR-swizzled so that ldmatrix and the tf32 B reads are bank-conflict-free:
//   A: chunk c (0..3) of row r lives at chunk c ^ ((r >> 1) & 3)
//   B: chunk c of row k lives at chunk c ^ (k & 7) (16-bit) or c ^ ((k & 3) << 1) (tf32)
// Fragments come from ldmatrix.x4 (A; B of f16/bf16 via .trans) or from 32-bit shared
// loads (B of tf32). sm_80: a 3-stage cp.async pipeline, one __syncthreads per slice.
// Edges: out-of-range elements of A and B are zero-filled in shared memory (both, so that
// no 0 * garbage can make a NaN), out-of-range C is not written: every M, N, K is correct.
// Global loads move 16-byte chunks when K and N are multiples of 8 (f16/bf16) or 4 (tf32)
// and A and B are 16-byte aligned, checked at run time; otherwise a slower element-wise
// path fills the same tiles. Nothing is required of the caller.
//
// Launch (the Rust side copies this), all three kernels and both modules:
//   block  = (256, 1, 1)
//   grid   = ((N + 127) / 128, (M + 127) / 128, 1)     // M <= 65535 * 128
//   shared = 0 bytes dynamic (49,152 bytes static on sm_80; 32,768 bytes on sm_75,
//            both within the 48 KiB static limit, so no cuFuncSetAttribute is needed)
//   M, N >= 1 (a zero-size grid is not a valid launch), K >= 0.
// Minimum architecture: sm_80 (gemm_tc), sm_75 (gemm_tc_sm75, hgemm_tc only).

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 750
#error "gemm_tc.cu needs sm_75 or newer (mma.sync, ldmatrix)"
#endif
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
#define TC_SM80 1
#else
#define TC_SM80 0
#endif

#define TC_THREADS 256
#define TC_BM 128
#define TC_BN 128
#define TC_TILE_BYTES 8192  // one A or B slice
#define TC_STAGE_BYTES (2 * TC_TILE_BYTES)
#if TC_SM80
#define TC_STAGES 3
#define TC_MIN_BLOCKS 2  // <= 128 registers: two blocks per SM (ptxas: no spills)
#else
#define TC_STAGES 2
#define TC_MIN_BLOCKS 1  // capping sm_75 at 128 registers would spill a little
#endif

enum TcKind { TC_F16 = 0, TC_BF16 = 1, TC_TF32 = 2 };

// ---------------------------------------------------------------------------------------
// The PTX this file uses, one helper per instruction (the host emulator in kernels/emu/
// supplies its own versions of exactly these).
#if !defined(ACCELPROBE_HOST_EMULATION)
__device__ __forceinline__ unsigned tc_smem_addr(const void* p)
{
    unsigned a;
    asm("{ .reg .u64 t; cvta.to.shared.u64 t, %1; cvt.u32.u64 %0, t; }" : "=r"(a) : "l"(p));
    return a;
}

__device__ __forceinline__ void tc_ldmatrix_x4(unsigned (&r)[4], unsigned addr)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr)
                 : "memory");
}

__device__ __forceinline__ void tc_ldmatrix_x4_trans(unsigned (&r)[4], unsigned addr)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr)
                 : "memory");
}

__device__ __forceinline__ unsigned tc_lds32(unsigned addr)
{
    unsigned v;
    asm volatile("ld.shared.b32 %0, [%1];" : "=r"(v) : "r"(addr) : "memory");
    return v;
}

__device__ __forceinline__ void tc_sts128(unsigned addr, uint4 v)
{
    asm volatile("st.shared.v4.b32 [%0], {%1, %2, %3, %4};"
                 :: "r"(addr), "r"(v.x), "r"(v.y), "r"(v.z), "r"(v.w)
                 : "memory");
}

__device__ __forceinline__ unsigned tc_to_tf32(unsigned f32_bits)
{
    unsigned r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(__uint_as_float(f32_bits)));
    return r;
}

// D = A(16x16) * B(16x8) + D, f16 or bf16 inputs, f32 accumulators.
template <int KIND>
__device__ __forceinline__ void tc_mma_k16(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2])
{
#if TC_SM80
    if (KIND == TC_BF16) {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                     "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    } else {
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
                     "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    }
#else
    // sm_75: k16 = two m16n8k8 (a0,a1 with b0 cover k 0..7; a2,a3 with b1 cover k 8..15).
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 "
                 "{%0, %1, %2, %3}, {%4, %5}, {%6}, {%0, %1, %2, %3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(b[0]));
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 "
                 "{%0, %1, %2, %3}, {%4, %5}, {%6}, {%0, %1, %2, %3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[2]), "r"(a[3]), "r"(b[1]));
#endif
}

#if TC_SM80
// D = A(16x8) * B(8x8) + D, tf32 inputs, f32 accumulators.
__device__ __forceinline__ void tc_mma_tf32_k8(float (&d)[4], const unsigned (&a)[4], const unsigned (&b)[2])
{
    asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 "
                 "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// 16-byte global -> shared copy; src_bytes == 0 reads nothing and writes 16 zero bytes.
__device__ __forceinline__ void tc_cp_async16(unsigned dst, const void* src, unsigned src_bytes)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;"
                 :: "r"(dst), "l"(src), "r"(src_bytes)
                 : "memory");
}

__device__ __forceinline__ void tc_cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }

template <int N>
__device__ __forceinline__ void tc_cp_async_wait() { asm volatile("cp.async.wait_group %0;" :: "n"(N) : "memory"); }
#endif
#endif  // !ACCELPROBE_HOST_EMULATION

// ---------------------------------------------------------------------------------------
// Global -> shared loading of one K slice. Both slices are 512 chunks of 16 bytes; thread
// tid moves chunks tid and tid + 256.
//   A chunk i: row i / 4 of the tile, chunk i % 4 of the row (64 bytes = the slice's K range)
//   B chunk i: row i / CPR of the slice, chunk i % CPR (CPR = 16 chunks per 256-byte row for
//              16-bit types, 32 per 512-byte row for tf32)
template <int EBYTES>
struct TcGeom {
    static constexpr int EPC = 16 / EBYTES;            // elements per 16-byte chunk
    static constexpr int BK = 64 / EBYTES;             // K elements per slice
    static constexpr int B_CPR = TC_BN * EBYTES / 16;  // chunks per B row
    static constexpr int B_ROWB = TC_BN * EBYTES;      // bytes per B row
    __device__ static unsigned a_off(int r, int c) { return r * 64 + ((c ^ ((r >> 1) & 3)) << 4); }
    __device__ static unsigned b_off(int k, int c)
    {
        return k * B_ROWB + ((EBYTES == 2 ? (c ^ (k & 7)) : (c ^ ((k & 3) << 1))) << 4);
    }
};

// Reads chunk-sized pieces element by element with bounds checks (any K, N, alignment).
template <int EBYTES>
__device__ __forceinline__ uint4 tc_gather(const void* base, int row, int rows, int col, int cols)
{
    uint4 v = make_uint4(0u, 0u, 0u, 0u);
    if (row >= rows) return v;
    unsigned w[4] = {0u, 0u, 0u, 0u};
    if (EBYTES == 2) {
        const unsigned short* p = static_cast<const unsigned short*>(base) + (size_t)row * (size_t)cols;
#pragma unroll
        for (int e = 0; e < 8; ++e)
            if (col + e < cols) w[e >> 1] |= (unsigned)p[col + e] << ((e & 1) * 16);
    } else {
        const unsigned* p = static_cast<const unsigned*>(base) + (size_t)row * (size_t)cols;
#pragma unroll
        for (int e = 0; e < 4; ++e)
            if (col + e < cols) w[e] = p[col + e];
    }
    v.x = w[0]; v.y = w[1]; v.z = w[2]; v.w = w[3];
    return v;
}

// Fast-path element offset of a chunk, or -1 if it is out of range (then it is all zeros:
// with K % EPC == 0 and N % EPC == 0 a chunk is either wholly inside or wholly outside).
__device__ __forceinline__ long long tc_chunk_index(int row, int rows, int col, int cols)
{
    return (row < rows && col < cols) ? (long long)row * cols + col : -1ll;
}

template <int EBYTES>
struct TcLoader {
    typedef TcGeom<EBYTES> G;
    const unsigned char* A;
    const unsigned char* B;
    int M, N, K, m0, n0, tid;
    bool fast;

    __device__ void a_coord(int i, int kt, int& r, int& c, int& grow, int& gcol) const
    {
        const int idx = tid + i * TC_THREADS;
        r = idx >> 2; c = idx & 3;
        grow = m0 + r; gcol = kt * G::BK + c * G::EPC;
    }
    __device__ void b_coord(int i, int kt, int& r, int& c, int& grow, int& gcol) const
    {
        const int idx = tid + i * TC_THREADS;
        r = idx / G::B_CPR; c = idx % G::B_CPR;
        grow = kt * G::BK + r; gcol = n0 + c * G::EPC;
    }

    // Synchronous loads into registers (sm_75 always; sm_80 on the element-wise path).
    __device__ void fetch(int kt, uint4 (&ra)[2], uint4 (&rb)[2]) const
    {
#pragma unroll
        for (int i = 0; i < 2; ++i) {
            int r, c, grow, gcol;
            a_coord(i, kt, r, c, grow, gcol);
            if (fast) {
                const long long e = tc_chunk_index(grow, M, gcol, K);
                ra[i] = e >= 0 ? *reinterpret_cast<const uint4*>(A + e * EBYTES) : make_uint4(0u, 0u, 0u, 0u);
            } else {
                ra[i] = tc_gather<EBYTES>(A, grow, M, gcol, K);
            }
            b_coord(i, kt, r, c, grow, gcol);
            if (fast) {
                const long long e = tc_chunk_index(grow, K, gcol, N);
                rb[i] = e >= 0 ? *reinterpret_cast<const uint4*>(B + e * EBYTES) : make_uint4(0u, 0u, 0u, 0u);
            } else {
                rb[i] = tc_gather<EBYTES>(B, grow, K, gcol, N);
            }
        }
    }
    __device__ void stash(unsigned stage, const uint4 (&ra)[2], const uint4 (&rb)[2]) const
    {
#pragma unroll
        for (int i = 0; i < 2; ++i) {
            int r, c, grow, gcol;
            a_coord(i, 0, r, c, grow, gcol);
            tc_sts128(stage + G::a_off(r, c), ra[i]);
            b_coord(i, 0, r, c, grow, gcol);
            tc_sts128(stage + TC_TILE_BYTES + G::b_off(r, c), rb[i]);
        }
    }
#if TC_SM80
    // Issues the copies of slice kt into stage (no commit).
    __device__ void issue(int kt, unsigned stage) const
    {
        if (!fast) {
            uint4 ra[2], rb[2];
            fetch(kt, ra, rb);
            stash(stage, ra, rb);
            return;
        }
#pragma unroll
        for (int i = 0; i < 2; ++i) {
            int r, c, grow, gcol;
            a_coord(i, kt, r, c, grow, gcol);
            long long e = tc_chunk_index(grow, M, gcol, K);
            tc_cp_async16(stage + G::a_off(r, c), A + (e >= 0 ? e * EBYTES : 0), e >= 0 ? 16u : 0u);
            b_coord(i, kt, r, c, grow, gcol);
            e = tc_chunk_index(grow, K, gcol, N);
            tc_cp_async16(stage + TC_TILE_BYTES + G::b_off(r, c), B + (e >= 0 ? e * EBYTES : 0), e >= 0 ? 16u : 0u);
        }
    }
#endif
};

// ---------------------------------------------------------------------------------------
// Per-warp compute on one stage. Warp w covers rows wm*64..+63 (wm = w / 4) and columns
// wn*32..+31 (wn = w % 4) of the block tile; lane = 4*g + t (g = groupID, t = thread in group).
template <int KIND>
struct TcWarp {
    static constexpr int EBYTES = KIND == TC_TF32 ? 4 : 2;
    typedef TcGeom<EBYTES> G;
    int wm, wn, lane;
    float acc[4][4][4];  // [m tile][n tile][fragment element]

    // ldmatrix.x4 lane address for the A fragments of m tile i and K step kk (two 8-column
    // halves = chunks 2kk and 2kk+1): matrix q = lane / 8 covers rows (q & 1) * 8 + lane % 8
    // and chunk 2kk + (q >> 1), which yields a0..a3 of the mma A fragment, for f16/bf16
    // (m16n8k16, 8 halves per chunk) and for tf32 (m16n8k8, 4 floats per chunk) alike.
    __device__ unsigned a_lane_off(int i, int kk) const
    {
        const int q = lane >> 3;
        const int r = wm * 64 + i * 16 + (q & 1) * 8 + (lane & 7);
        return G::a_off(r, kk * 2 + (q >> 1));
    }
    // ldmatrix.x4.trans lane address for the B fragments of n tiles 2p, 2p+1 at K step kk
    // (16-bit types): matrix q covers K rows kk*16 + (q & 1) * 8 + lane % 8 and the 8 columns
    // of chunk wn*4 + 2p + (q >> 1); .trans hands lane 4g+t the pair B[2t, 2t+1][g].
    __device__ unsigned b_lane_off(int p, int kk) const
    {
        const int q = lane >> 3;
        const int k = kk * 16 + (q & 1) * 8 + (lane & 7);
        return G::b_off(k, wn * 4 + p * 2 + (q >> 1));
    }

    __device__ void compute(unsigned stage)
    {
        const unsigned sa = stage, sb = stage + TC_TILE_BYTES;
#pragma unroll
        for (int kk = 0; kk < 2; ++kk) {
            unsigned af[4][4];
#pragma unroll
            for (int i = 0; i < 4; ++i) tc_ldmatrix_x4(af[i], sa + a_lane_off(i, kk));
            unsigned bf[4][2];
            if constexpr (KIND == TC_TF32) {
                // b0 = B[kk*8 + t][n], b1 = B[kk*8 + t + 4][n], n = wn*32 + j*8 + g
                const int t = lane & 3, g = lane >> 2;
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    const int n = wn * 32 + j * 8 + g;
                    const int k0 = kk * 8 + t, k1 = k0 + 4;
                    bf[j][0] = tc_lds32(sb + G::b_off(k0, n >> 2) + ((n & 3) << 2));
                    bf[j][1] = tc_lds32(sb + G::b_off(k1, n >> 2) + ((n & 3) << 2));
                }
            } else {
#pragma unroll
                for (int p = 0; p < 2; ++p) {
                    unsigned r[4];
                    tc_ldmatrix_x4_trans(r, sb + b_lane_off(p, kk));
                    bf[2 * p][0] = r[0]; bf[2 * p][1] = r[1];
                    bf[2 * p + 1][0] = r[2]; bf[2 * p + 1][1] = r[3];
                }
            }
#if TC_SM80
            if constexpr (KIND == TC_TF32) {
#pragma unroll
                for (int i = 0; i < 4; ++i)
#pragma unroll
                    for (int e = 0; e < 4; ++e) af[i][e] = tc_to_tf32(af[i][e]);
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    bf[j][0] = tc_to_tf32(bf[j][0]);
                    bf[j][1] = tc_to_tf32(bf[j][1]);
                }
#pragma unroll
                for (int i = 0; i < 4; ++i)
#pragma unroll
                    for (int j = 0; j < 4; ++j) tc_mma_tf32_k8(acc[i][j], af[i], bf[j]);
            } else
#endif
            {
#pragma unroll
                for (int i = 0; i < 4; ++i)
#pragma unroll
                    for (int j = 0; j < 4; ++j) tc_mma_k16<KIND>(acc[i][j], af[i], bf[j]);
            }
        }
    }

    // c0, c1 at (g, 2t), (g, 2t+1); c2, c3 at (g+8, 2t), (g+8, 2t+1) of each 16 x 8 tile.
    __device__ void store(float* C, int M, int N, int m0, int n0) const
    {
        const int g = lane >> 2, t = lane & 3;
        const bool vec = (N & 1) == 0 && ((unsigned long long)C & 7) == 0;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
#pragma unroll
            for (int h = 0; h < 2; ++h) {
                const int row = m0 + wm * 64 + i * 16 + h * 8 + g;
                if (row >= M) continue;
                float* c_row = C + (size_t)row * (size_t)N;
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    const int col = n0 + wn * 32 + j * 8 + 2 * t;
                    const float v0 = acc[i][j][2 * h], v1 = acc[i][j][2 * h + 1];
                    if (vec) {
                        if (col < N)  // N even, col even: col + 1 < N too
                            *reinterpret_cast<float2*>(c_row + col) = make_float2(v0, v1);
                    } else {
                        if (col < N) c_row[col] = v0;
                        if (col + 1 < N) c_row[col + 1] = v1;
                    }
                }
            }
        }
    }
};

template <int KIND>
__device__ __forceinline__ void tc_gemm(int M, int N, int K, const void* A, const void* B, float* C)
{
    constexpr int EBYTES = KIND == TC_TF32 ? 4 : 2;
    typedef TcGeom<EBYTES> G;
    __shared__ __align__(128) uint4 smem[TC_STAGES * TC_STAGE_BYTES / 16];
    const unsigned sbase = tc_smem_addr(smem);

    const int tid = threadIdx.x, warp = tid >> 5;
    TcLoader<EBYTES> ld;
    ld.A = static_cast<const unsigned char*>(A);
    ld.B = static_cast<const unsigned char*>(B);
    ld.M = M; ld.N = N; ld.K = K;
    ld.m0 = blockIdx.y * TC_BM; ld.n0 = blockIdx.x * TC_BN;
    ld.tid = tid;
    ld.fast = K % G::EPC == 0 && N % G::EPC == 0 && ((unsigned long long)A & 15) == 0 &&
              ((unsigned long long)B & 15) == 0;

    TcWarp<KIND> w;
    w.wm = warp >> 2; w.wn = warp & 3; w.lane = tid & 31;
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j)
#pragma unroll
            for (int e = 0; e < 4; ++e) w.acc[i][j][e] = 0.0f;

    const int ktiles = (K + G::BK - 1) / G::BK;
#if TC_SM80
    // Slice kt lives in stage kt % 3. Exactly one commit group per slice index (possibly
    // empty), so before computing slice kt, wait_group(1) leaves only slice kt+1 pending.
#pragma unroll
    for (int s = 0; s < TC_STAGES - 1; ++s) {
        if (s < ktiles) ld.issue(s, sbase + s * TC_STAGE_BYTES);
        tc_cp_async_commit();
    }
    for (int kt = 0; kt < ktiles; ++kt) {
        tc_cp_async_wait<TC_STAGES - 2>();
        __syncthreads();  // slice kt visible to all; everyone is done with slice kt-1's stage
        const int next = kt + TC_STAGES - 1;
        if (next < ktiles) ld.issue(next, sbase + (next % TC_STAGES) * TC_STAGE_BYTES);
        tc_cp_async_commit();
        w.compute(sbase + (kt % TC_STAGES) * TC_STAGE_BYTES);
    }
#else
    // Register-staged double buffer: slice kt+1 is fetched into registers before slice kt
    // is multiplied, and stored into the other stage after it.
    uint4 ra[2], rb[2];
    if (ktiles > 0) {
        ld.fetch(0, ra, rb);
        ld.stash(sbase, ra, rb);
    }
    __syncthreads();
    for (int kt = 0; kt < ktiles; ++kt) {
        const bool more = kt + 1 < ktiles;
        if (more) ld.fetch(kt + 1, ra, rb);
        w.compute(sbase + (kt & 1) * TC_STAGE_BYTES);
        if (more) ld.stash(sbase + ((kt + 1) & 1) * TC_STAGE_BYTES, ra, rb);
        __syncthreads();
    }
#endif
    w.store(C, M, N, ld.m0, ld.n0);
}

extern "C" __global__ void __launch_bounds__(TC_THREADS, TC_MIN_BLOCKS)
hgemm_tc(int M, int N, int K, const unsigned short* A, const unsigned short* B, float* C)
{
    tc_gemm<TC_F16>(M, N, K, A, B, C);
}

#if TC_SM80
extern "C" __global__ void __launch_bounds__(TC_THREADS, TC_MIN_BLOCKS)
bf16gemm_tc(int M, int N, int K, const unsigned short* A, const unsigned short* B, float* C)
{
    tc_gemm<TC_BF16>(M, N, K, A, B, C);
}

extern "C" __global__ void __launch_bounds__(TC_THREADS, TC_MIN_BLOCKS)
tf32gemm_tc(int M, int N, int K, const float* A, const float* B, float* C)
{
    tc_gemm<TC_TF32>(M, N, K, A, B, C);
}
#endif
