// gemm_f32.cu: single-precision GEMM on CUDA cores (FFMA), C = A*B.
//
//   sgemm_tiled(int M, int N, int K, const float* A, const float* B, float* C)
//       A is M x K, B is K x N, C is M x N, all row-major and dense
//       (row strides K, N and N). C is overwritten (no beta). K == 0 gives C = 0.
//
// Algorithm: each 256-thread block computes a 128 x 128 tile of C, stepping through
// K in slices of 8. A slice of A (128 x 8, stored transposed so that m is contiguous)
// and of B (8 x 128) sits in shared memory, double-buffered: while the block
// multiplies slice k from one buffer, each thread already holds slice k+1 in
// registers and stores it into the other buffer afterwards, so there is one
// __syncthreads per slice. Each thread accumulates an 8 x 8 register block made of
// 2 x 2 sub-blocks of 4 x 4 (rows ty*4 and 64+ty*4, columns tx*4 and 64+tx*4, with
// tx = tid % 16, ty = tid / 16), read from shared memory as float4 (conflict-free:
// a warp reads 2 distinct A vectors, broadcast, and 16 consecutive B vectors).
// Edges: out-of-range elements of A and B are loaded as 0 and out-of-range elements
// of C are not written, so every M, N, K >= 1 is correct (and K == 0). Global loads
// and stores use 16-byte vectors when K % 4 == 0 (A), N % 4 == 0 (B, C) and the
// pointer is 16-byte aligned, checked at run time; otherwise scalar accesses.
// Nothing is required of the caller beyond 4-byte-aligned float pointers.
// Indices are 64-bit where they are products (M*K, K*N, M*N may exceed 2^31).
//
// Launch (the Rust side copies this):
//   block  = (256, 1, 1)
//   grid   = ((N + 127) / 128, (M + 127) / 128, 1)     // M <= 65535 * 128
//   shared = 0 bytes dynamic (16,640 bytes static)
//   M, N >= 1 (a zero-size grid is not a valid launch), K >= 0.
// Minimum architecture: sm_70. Accumulation is f32 in FFMA order over k, so compare
// against a double-precision reference with a relative tolerance (~1e-5 * sqrt(K)).

#define SG_BM 128
#define SG_BN 128
#define SG_BK 8
#define SG_APAD 4  // As row stride 132 floats: conflict-free transposed stores, 16-byte rows

extern "C" __global__ void __launch_bounds__(256, 2)
sgemm_tiled(int M, int N, int K, const float* __restrict__ A, const float* __restrict__ B,
            float* __restrict__ C)
{
    __shared__ __align__(16) float As[2][SG_BK][SG_BM + SG_APAD];  // As[k][m]
    __shared__ __align__(16) float Bs[2][SG_BK][SG_BN];            // Bs[k][n]

    const int tid = threadIdx.x;
    const int tx = tid & 15, ty = tid >> 4;
    const int m0 = blockIdx.y * SG_BM, n0 = blockIdx.x * SG_BN;

    // Loader roles. A: row ar (0..127) of the tile, columns ac..ac+3 of the slice.
    // B: row br (0..7) of the slice, columns bc..bc+3 of the tile.
    const int ar = tid >> 1, ac = (tid & 1) << 2;
    const int br = tid >> 5, bc = (tid & 31) << 2;
    const bool a_row_ok = m0 + ar < M;
    const float* a_row = A + (size_t)(a_row_ok ? m0 + ar : 0) * (size_t)K;
    const int bn = n0 + bc;
    const bool vec_a = (K & 3) == 0 && ((unsigned long long)A & 15) == 0;
    const bool vec_b = (N & 3) == 0 && ((unsigned long long)B & 15) == 0;
    const bool vec_c = (N & 3) == 0 && ((unsigned long long)C & 15) == 0;

    // a_next / b_next walk the loader's elements of the next slice: A row (m0+ar), columns
    // ka..ka+3; B row kb, columns bn..bn+3 (pointers advance by 8 columns / 8 rows a slice).
    float ra[4], rb[4];
    const float* a_next = a_row + ac;
    const float* b_next = B + (size_t)br * (size_t)N + bn;
    int ka = ac, kb = br;
    auto fetch = [&]() {
        if (vec_a) {
            // K % 4 == 0 and ka % 4 == 0: the 4 elements are all in range or all out.
            float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            if (a_row_ok && ka < K) v = *reinterpret_cast<const float4*>(a_next);
            ra[0] = v.x; ra[1] = v.y; ra[2] = v.z; ra[3] = v.w;
        } else {
#pragma unroll
            for (int i = 0; i < 4; ++i) ra[i] = (a_row_ok && ka + i < K) ? a_next[i] : 0.0f;
        }
        if (vec_b) {
            float4 v = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            if (kb < K && bn < N) v = *reinterpret_cast<const float4*>(b_next);
            rb[0] = v.x; rb[1] = v.y; rb[2] = v.z; rb[3] = v.w;
        } else {
#pragma unroll
            for (int i = 0; i < 4; ++i) rb[i] = (kb < K && bn + i < N) ? b_next[i] : 0.0f;
        }
        a_next += SG_BK; ka += SG_BK;
        b_next += (size_t)SG_BK * (size_t)N; kb += SG_BK;
    };
    auto stash = [&](int buf) {
#pragma unroll
        for (int i = 0; i < 4; ++i) As[buf][ac + i][ar] = ra[i];
        *reinterpret_cast<float4*>(&Bs[buf][br][bc]) = make_float4(rb[0], rb[1], rb[2], rb[3]);
    };

    float acc[8][8];
#pragma unroll
    for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] = 0.0f;

    const int ktiles = (K + SG_BK - 1) / SG_BK;
    if (ktiles > 0) {
        fetch();
        stash(0);
    }
    __syncthreads();
    for (int kt = 0; kt < ktiles; ++kt) {
        const int buf = kt & 1;
        const bool more = kt + 1 < ktiles;
        if (more) fetch();  // global loads in flight during the FFMAs below
#pragma unroll
        for (int k = 0; k < SG_BK; ++k) {
            const float4 a0 = *reinterpret_cast<const float4*>(&As[buf][k][ty * 4]);
            const float4 a1 = *reinterpret_cast<const float4*>(&As[buf][k][ty * 4 + 64]);
            const float4 b0 = *reinterpret_cast<const float4*>(&Bs[buf][k][tx * 4]);
            const float4 b1 = *reinterpret_cast<const float4*>(&Bs[buf][k][tx * 4 + 64]);
            const float a[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
            const float b[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
            for (int i = 0; i < 8; ++i)
#pragma unroll
                for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        // The other buffer was last read in iteration kt-1, which every thread finished
        // before the barrier that ended it; it is read again only after the barrier below.
        if (more) stash(buf ^ 1);
        __syncthreads();
    }

#pragma unroll
    for (int i = 0; i < 8; ++i) {
        const int row = m0 + (i < 4 ? ty * 4 + i : 64 + ty * 4 + (i - 4));
        if (row >= M) continue;
        float* c_row = C + (size_t)row * (size_t)N;
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int col = n0 + h * 64 + tx * 4;
            if (vec_c) {
                if (col < N)  // N % 4 == 0: all four columns are in range
                    *reinterpret_cast<float4*>(c_row + col) =
                        make_float4(acc[i][h * 4], acc[i][h * 4 + 1], acc[i][h * 4 + 2], acc[i][h * 4 + 3]);
            } else {
#pragma unroll
                for (int j = 0; j < 4; ++j)
                    if (col + j < N) c_row[col + j] = acc[i][h * 4 + j];
            }
        }
    }
}
