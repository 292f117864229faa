// sanity.cu: the smallest kernel accelprobe runs, to prove that a module loads,
// a kernel launches and its result comes back right before anything is timed.
//
//   sanity_axpy(int n, float a, const float* x, const float* y, float* out)
//       out[i] = a * x[i] + y[i]   for 0 <= i < n   (n <= 0: nothing is written)
//
// Algorithm: element-wise, grid-stride loop with a 64-bit index, so any grid
// covers any n and no index overflows.
// Launch: 1-D; any block size (256 recommended), any grid
//         (e.g. min(ceil(n / 256), 65535)); no dynamic shared memory.
// Alignment: 4-byte (float) pointers; out may alias x or y element for element.
// Minimum architecture: sm_70 (nothing architecture-specific; the project's floor).
// Rounding: the compiler contracts a*x+y into one fused multiply-add (fmad on,
// NVRTC's default), so a host reference should use fma() or a tolerance.

extern "C" __global__ void sanity_axpy(int n, float a, const float* x, const float* y, float* out)
{
    const long long stride = (long long)blockDim.x * gridDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        out[i] = a * x[i] + y[i];
    }
}
