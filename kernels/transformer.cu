// transformer.cu: the non-GEMM pieces of one decoder-block forward pass, in f32.
// The Rust side composes them with the GEMMs (gemm_f32.cu, gemm_tc.cu):
//   h = layernorm(x); qkv = h*Wqkv + b; scores = q*k^T (transpose_f32 + GEMM);
//   p = softmax_causal(scores, 1/sqrt(d)); a = p*v; x1 = x + a*Wo + b;
//   h2 = layernorm(x1); m = gelu(h2*W1 + b1); y = x1 + m*W2 + b2;
//   f32_to_f16 / f32_to_bf16 turn activations into tensor-core GEMM inputs.
// All matrices are row-major and dense (row stride = number of columns).
// Every kernel is correct for any sizes and any grid: rows and tiles are
// visited with grid-stride loops, every access is bounds-checked.
// Minimum architecture: sm_70 (nothing here needs more).
//
// Kernel                          launch (block; grid; dynamic shared memory)
// layernorm_f32                   (256,1,1) [any multiple of 32 up to 1024]; (rows,1,1) [any];  0
// softmax_causal_f32              (256,1,1) [any multiple of 32 up to 1024]; (rows,1,1) [any];  0
// transpose_f32                   (32,8,1) [x must be 32; y any up to 32];
//                                 (ceil(cols/32), min(ceil(rows/32),65535), 1) [any];           0
// add_bias_f32                    (256,1,1) [any]; (ceil(cols/256), min(rows,65535), 1) [any];  0
// gelu_tanh_f32, add_f32,
// f32_to_f16, f32_to_bf16         (256,1,1) [any]; (min(ceil(n/256), 65535),1,1) [any];        0
// Static shared memory: layernorm/softmax 128 bytes, transpose 4224 bytes.
//
// Semantics
//   layernorm_f32(rows, cols, x, gamma, beta, y, eps): per row,
//       y = (x - mean) / sqrt(var + eps) * gamma + beta, var the biased (1/cols) variance,
//       computed in two passes (mean, then sum of squared deviations). y may equal x.
//   gelu_tanh_f32(n, x): in place, x = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
//   add_bias_f32(rows, cols, x, bias): x[r][c] += bias[c].
//   add_f32(n, a, b, out): out = a + b (out may equal a or b).
//   softmax_causal_f32(rows, cols, s, scale): in place, per row r with query position
//       q = r mod cols: s[r][c] = exp(scale*s[r][c] - max) / sum over c <= q, and 0 for c > q
//       (those are treated as -inf). For rows <= cols, q = r: the plain causal mask. With
//       rows = heads*seq and cols = seq, heads stacked row-wise, each head gets its own mask.
//   transpose_f32(rows, cols, in, out): out (cols x rows) = in^T; in and out must not overlap.
//   f32_to_f16(n, in, out), f32_to_bf16(n, in, out): IEEE binary16 / bfloat16 bit patterns,
//       round to nearest even, overflow to infinity, NaN stays NaN (quiet), subnormals kept
//       (f16 via cvt.rn.f16.f32; bf16 by integer rounding, so sm_70 needs no bf16 support).

#if !defined(ACCELPROBE_HOST_EMULATION)
__device__ __forceinline__ unsigned short tf_f32_to_f16_bits(float v)
{
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(v));
    return h;
}
#endif

__device__ __forceinline__ float tf_neg_inf() { return __int_as_float(0xff800000); }

__device__ __forceinline__ float tf_warp_sum(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float tf_warp_max(float v)
{
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Block-wide sum (max): every thread of the block gets the result. blockDim.x must be a
// multiple of 32; red holds 32 floats. The first barrier keeps a previous call's readers of
// red from seeing it overwritten.
__device__ __forceinline__ float tf_block_sum(float v, float* red)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    v = tf_warp_sum(v);
    __syncthreads();
    if (lane == 0) red[warp] = v;
    __syncthreads();
    return tf_warp_sum(lane < nwarps ? red[lane] : 0.0f);
}

__device__ __forceinline__ float tf_block_max(float v, float* red)
{
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    v = tf_warp_max(v);
    __syncthreads();
    if (lane == 0) red[warp] = v;
    __syncthreads();
    return tf_warp_max(lane < nwarps ? red[lane] : tf_neg_inf());
}

extern "C" __global__ void layernorm_f32(int rows, int cols, const float* x, const float* gamma,
                                         const float* beta, float* y, float eps)
{
    __shared__ float red[32];
    if (cols <= 0) return;
    const float inv_cols = 1.0f / (float)cols;
    for (int row = blockIdx.x; row < rows; row += gridDim.x) {
        const float* xr = x + (size_t)row * (size_t)cols;
        float* yr = y + (size_t)row * (size_t)cols;
        float s = 0.0f;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) s += xr[c];
        const float mean = tf_block_sum(s, red) * inv_cols;
        float v = 0.0f;
        for (int c = threadIdx.x; c < cols; c += blockDim.x) {
            const float d = xr[c] - mean;
            v += d * d;
        }
        const float rstd = rsqrtf(tf_block_sum(v, red) * inv_cols + eps);
        // Each thread reads and writes the same elements, so y == x is safe.
        for (int c = threadIdx.x; c < cols; c += blockDim.x)
            yr[c] = (xr[c] - mean) * rstd * gamma[c] + beta[c];
    }
}

extern "C" __global__ void gelu_tanh_f32(unsigned long long n, float* x)
{
    const unsigned long long stride = (unsigned long long)blockDim.x * gridDim.x;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += stride) {
        const float v = x[i];
        x[i] = 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
    }
}

extern "C" __global__ void add_bias_f32(int rows, int cols, float* x, const float* bias)
{
    const int cstride = blockDim.x * gridDim.x;
    for (int row = blockIdx.y; row < rows; row += gridDim.y) {
        float* xr = x + (size_t)row * (size_t)cols;
        for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < cols; c += cstride) xr[c] += bias[c];
    }
}

extern "C" __global__ void add_f32(unsigned long long n, const float* a, const float* b, float* out)
{
    const unsigned long long stride = (unsigned long long)blockDim.x * gridDim.x;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += stride)
        out[i] = a[i] + b[i];
}

extern "C" __global__ void softmax_causal_f32(int rows, int cols, float* s, float scale)
{
    __shared__ float red[32];
    if (cols <= 0) return;
    for (int row = blockIdx.x; row < rows; row += gridDim.x) {
        float* sr = s + (size_t)row * (size_t)cols;
        const int last = row % cols;  // columns 0..last are visible; never empty
        float m = tf_neg_inf();
        for (int c = threadIdx.x; c <= last; c += blockDim.x) m = fmaxf(m, scale * sr[c]);
        m = tf_block_max(m, red);
        float sum = 0.0f;
        for (int c = threadIdx.x; c <= last; c += blockDim.x) {
            const float e = expf(scale * sr[c] - m);
            sr[c] = e;  // read back below by this same thread
            sum += e;
        }
        const float inv = 1.0f / tf_block_sum(sum, red);
        for (int c = threadIdx.x; c < cols; c += blockDim.x) sr[c] = c <= last ? sr[c] * inv : 0.0f;
    }
}

extern "C" __global__ void transpose_f32(int rows, int cols, const float* in, float* out)
{
    __shared__ float tile[32][33];  // +1 column: column reads hit 32 different banks
    const int tiles_x = (cols + 31) / 32, tiles_y = (rows + 31) / 32;
    const int tx = threadIdx.x;  // 0..31
    for (int by = blockIdx.y; by < tiles_y; by += gridDim.y) {
        for (int bx = blockIdx.x; bx < tiles_x; bx += gridDim.x) {
            const int r0 = by * 32, c0 = bx * 32;
            for (int j = threadIdx.y; j < 32; j += blockDim.y) {
                const int r = r0 + j, c = c0 + tx;
                if (r < rows && c < cols) tile[j][tx] = in[(size_t)r * (size_t)cols + c];
            }
            __syncthreads();
            for (int j = threadIdx.y; j < 32; j += blockDim.y) {
                const int orow = c0 + j, ocol = r0 + tx;  // out[orow][ocol] = in[ocol][orow]
                if (orow < cols && ocol < rows) out[(size_t)orow * (size_t)rows + ocol] = tile[tx][j];
            }
            __syncthreads();  // the tile is rewritten by the next iteration
        }
    }
}

extern "C" __global__ void f32_to_f16(unsigned long long n, const float* in, unsigned short* out)
{
    const unsigned long long stride = (unsigned long long)blockDim.x * gridDim.x;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += stride)
        out[i] = tf_f32_to_f16_bits(in[i]);
}

extern "C" __global__ void f32_to_bf16(unsigned long long n, const float* in, unsigned short* out)
{
    const unsigned long long stride = (unsigned long long)blockDim.x * gridDim.x;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += stride) {
        unsigned int u = __float_as_uint(in[i]);
        if ((u & 0x7fffffffu) > 0x7f800000u) {
            out[i] = (unsigned short)((u >> 16) | 0x0040u);  // NaN: keep sign, force quiet
        } else {
            u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even; may carry into Inf
            out[i] = (unsigned short)(u >> 16);
        }
    }
}
