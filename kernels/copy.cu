// copy.cu: device-memory bandwidth and output poisoning.
//
//   copy_u32x4(const uint4* src, uint4* dst, unsigned long long n4)
//       dst[i] = src[i] for 0 <= i < n4: a device-to-device copy of n4 16-byte
//       elements (16 * n4 bytes). Bandwidth = 2 * 16 * n4 bytes (read + write)
//       per launch.
//   fill_f32(float* dst, float value, unsigned long long n)
//       dst[i] = value for 0 <= i < n (used to poison outputs with NaN before a
//       run, so that elements a kernel fails to write are caught).
//
// Algorithm: grid-stride loops with 64-bit indices; copy_u32x4 moves one
// 128-bit vector per thread per iteration (ld.global.v4 / st.global.v4), which
// is what saturates HBM/GDDR; the loop is unrolled by the compiler only as far
// as it likes, the grid-stride keeps every warp's accesses fully coalesced.
// Launch (both): 1-D; block 256 (any multiple of 32 works); grid = a few waves
//         of resident blocks, e.g. 4 * multiProcessorCount * (2048 / 256), or
//         ceil(n / 256) when smaller; no dynamic shared memory.
// Alignment: src and dst 16-byte aligned (cuMemAlloc gives 256 bytes); the
//         ranges must not overlap. fill_f32 needs 4-byte alignment only.
// Minimum architecture: sm_70.

extern "C" __global__ void copy_u32x4(const uint4* __restrict__ src, uint4* __restrict__ dst,
                                      unsigned long long n4)
{
    const unsigned long long stride = (unsigned long long)blockDim.x * gridDim.x;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n4;
         i += stride) {
        dst[i] = src[i];
    }
}

extern "C" __global__ void fill_f32(float* __restrict__ dst, float value, unsigned long long n)
{
    const unsigned long long stride = (unsigned long long)blockDim.x * gridDim.x;
    for (unsigned long long i = (unsigned long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += stride) {
        dst[i] = value;
    }
}
