//! CUDA backend: accelprobe's own PTX kernels (embedded, JIT-compiled by the driver) and, when
//! libcublas is present, cuBLAS as a second GEMM measurement; device copy, pinned host↔device
//! copies and the transformer block. Timing uses CUDA events after warm-up.
//!
//! Every driver call runs inside [`guarded`] on a per-GPU worker thread (cudarc panics on a
//! missing library or symbol); an error on one GPU fails that GPU's benchmarks and nothing
//! else. Modules load only on GPUs whose compute capability reaches the PTX's minimum, from
//! `kernels/manifest.json`.

use std::collections::HashMap;
use std::sync::Arc;

use cudarc::driver::sys::CUevent_flags;
use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DevicePtr, DevicePtrMut,
    DriverError, LaunchConfig, PushKernelArg,
};
use cudarc::nvrtc::Ptx;

use super::block::{self, At, Ops};
use super::check::{check_gemm, exact_compare, Gemm};
use super::cpu::check_inference;
use super::data::{gemm_inputs, Inputs};
use super::inference::{Block, BlockShape};
use super::timing::{self, Budget, Rounds};
use super::{finish, Injection, Measured};
use crate::probe::guard::guarded;
use crate::report::{Benchmark, Correctness, Dtype, Kernel, ProblemSize};

/// The PTX modules, embedded in the binary.
pub const MODULES: &[(&str, &str)] = &[
    ("sanity", include_str!("../../kernels/ptx/sanity.ptx")),
    ("copy", include_str!("../../kernels/ptx/copy.ptx")),
    ("gemm_f32", include_str!("../../kernels/ptx/gemm_f32.ptx")),
    ("gemm_tc", include_str!("../../kernels/ptx/gemm_tc.ptx")),
    (
        "gemm_tc_sm75",
        include_str!("../../kernels/ptx/gemm_tc_sm75.ptx"),
    ),
    (
        "transformer",
        include_str!("../../kernels/ptx/transformer.ptx"),
    ),
];

/// `kernels/manifest.json`: each module's minimum architecture and entry points.
const MANIFEST: &str = include_str!("../../kernels/manifest.json");

/// One module of the manifest.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct ModuleInfo {
    /// Minimum compute capability × 10.
    pub arch: u32,
    pub kernels: Vec<String>,
}

/// The manifest, parsed once (keys starting with `_` are comments).
pub fn manifest() -> &'static HashMap<String, ModuleInfo> {
    static PARSED: std::sync::OnceLock<HashMap<String, ModuleInfo>> = std::sync::OnceLock::new();
    PARSED.get_or_init(|| {
        let raw: HashMap<String, serde_json::Value> =
            serde_json::from_str(MANIFEST).unwrap_or_default();
        raw.into_iter()
            .filter(|(k, _)| !k.starts_with('_'))
            .filter_map(|(k, v)| Some((k, serde_json::from_value(v).ok()?)))
            .collect()
    })
}

/// Why a GPU benchmark could not run.
#[derive(Debug, Clone)]
pub enum GpuError {
    Driver(String),
    Unsupported(String),
    Panic(String),
}

impl std::fmt::Display for GpuError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GpuError::Driver(s) => write!(f, "CUDA error: {s}"),
            GpuError::Unsupported(s) => write!(f, "{s}"),
            GpuError::Panic(s) => write!(f, "CUDA call aborted: {s}"),
        }
    }
}

impl From<DriverError> for GpuError {
    fn from(e: DriverError) -> Self {
        GpuError::Driver(format!("{:?}", e.0))
    }
}

type R<T> = Result<T, GpuError>;

/// Run `f` with panics turned into errors.
fn g<T>(f: impl FnOnce() -> R<T>) -> R<T> {
    guarded(f).unwrap_or_else(|p| Err(GpuError::Panic(p)))
}

/// One GPU, its context, stream and loaded modules.
pub struct Gpu {
    pub ordinal: usize,
    pub name: Option<String>,
    /// Compute capability × 10 (89 for 8.9).
    pub cc: u32,
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    modules: HashMap<&'static str, Arc<CudaModule>>,
    /// One cuBLAS handle per GPU, made on first use.
    blas: Option<cudarc::cublas::CudaBlas>,
}

const BLOCK_1D: u32 = 256;

fn grid_1d(n: usize) -> u32 {
    n.div_ceil(BLOCK_1D as usize).clamp(1, 65_535) as u32
}

fn cfg_1d(n: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (grid_1d(n), 1, 1),
        block_dim: (BLOCK_1D, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// The launch every GEMM kernel uses: 256 threads per 128×128 tile of C.
fn cfg_gemm(m: usize, n: usize) -> R<LaunchConfig> {
    let gy = m.div_ceil(128);
    if gy > 65_535 || m == 0 || n == 0 {
        return Err(GpuError::Unsupported(format!(
            "GEMM of {m}x{n} is outside the kernel's grid limits"
        )));
    }
    Ok(LaunchConfig {
        grid_dim: (n.div_ceil(128) as u32, gy as u32, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    })
}

fn dim(x: usize) -> R<i32> {
    i32::try_from(x)
        .map_err(|_| GpuError::Unsupported(format!("dimension {x} exceeds the kernels' int range")))
}

impl Gpu {
    /// Open the GPU: context, stream, and a sanity kernel whose result is checked.
    pub fn open(ordinal: usize, name: Option<String>) -> R<Gpu> {
        g(|| {
            let ctx = CudaContext::new(ordinal)?;
            let (major, minor) = ctx.compute_capability()?;
            let stream = ctx.default_stream();
            let mut gpu = Gpu {
                ordinal,
                name,
                cc: (major * 10 + minor) as u32,
                ctx,
                stream,
                modules: HashMap::new(),
                blas: None,
            };
            if gpu.cc < 70 {
                return Err(GpuError::Unsupported(format!(
                    "compute capability {major}.{minor} is below accelprobe's floor 7.0"
                )));
            }
            gpu.sanity()?;
            Ok(gpu)
        })
    }

    fn function(&mut self, module: &'static str, name: &str) -> R<CudaFunction> {
        if !self.modules.contains_key(module) {
            let (_, ptx) = MODULES
                .iter()
                .find(|(m, _)| *m == module)
                .ok_or_else(|| GpuError::Unsupported(format!("no PTX module {module}")))?;
            let arch = &manifest()
                .get(module)
                .ok_or_else(|| {
                    GpuError::Unsupported(format!("{module} is not in kernels/manifest.json"))
                })?
                .arch;
            if self.cc < *arch {
                return Err(GpuError::Unsupported(format!(
                    "{module} needs compute capability {}.{}, this GPU has {}.{}",
                    arch / 10,
                    arch % 10,
                    self.cc / 10,
                    self.cc % 10
                )));
            }
            let m = self.ctx.load_module(Ptx::from_src(*ptx))?;
            self.modules.insert(module, m);
        }
        Ok(self.modules[module].load_function(name)?)
    }

    /// out = 2·x + y on 1000 elements, compared exactly (a contracted FMA is exact here).
    fn sanity(&mut self) -> R<()> {
        let n = 1000usize;
        let x: Vec<f32> = (0..n).map(|i| i as f32 * 0.5).collect();
        let y: Vec<f32> = (0..n).map(|i| 1.0 - i as f32).collect();
        let f = self.function("sanity", "sanity_axpy")?;
        let dx = self.stream.clone_htod(&x)?;
        let dy = self.stream.clone_htod(&y)?;
        let mut out = self.stream.alloc_zeros::<f32>(n)?;
        let (ni, a) = (n as i32, 2.0f32);
        let mut b = self.stream.launch_builder(&f);
        b.arg(&ni).arg(&a).arg(&dx).arg(&dy).arg(&mut out);
        // SAFETY: argument types and count match sanity_axpy(int, float, const float*, const float*, float*).
        unsafe { b.launch(cfg_1d(n)) }?;
        let got = self.stream.clone_dtoh(&out)?;
        let bad = (0..n).find(|&i| got[i] != 2.0 * x[i] + y[i]);
        match bad {
            None => Ok(()),
            Some(i) => Err(GpuError::Driver(format!(
                "sanity kernel wrong at element {i}: {} != {}",
                got[i],
                2.0 * x[i] + y[i]
            ))),
        }
    }

    /// Time `work` between two events on the stream, in seconds.
    fn timed(&self, work: impl FnOnce() -> R<()>) -> R<f64> {
        let start = self
            .stream
            .record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))?;
        work()?;
        let end = self
            .stream
            .record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))?;
        Ok(f64::from(start.elapsed_ms(&end)?) / 1e3)
    }

    fn fill_nan(&mut self, buf: &mut CudaSlice<f32>) -> R<()> {
        let f = self.function("copy", "fill_f32")?;
        let len = buf.len();
        let (v, n) = (f32::NAN, len as u64);
        let mut b = self.stream.launch_builder(&f);
        b.arg(buf).arg(&v).arg(&n);
        // SAFETY: fill_f32(float*, float, unsigned long long) with n = the buffer's length.
        unsafe { b.launch(cfg_1d(len)) }?;
        Ok(())
    }

    /// The GPU's cuBLAS handle, created on first use.
    fn cublas_handle(&mut self) -> R<cudarc::cublas::sys::cublasHandle_t> {
        if self.blas.is_none() {
            let blas = cudarc::cublas::CudaBlas::new(self.stream.clone())
                .map_err(|e| GpuError::Driver(format!("cuBLAS: {e:?}")))?;
            self.blas = Some(blas);
        }
        match &self.blas {
            Some(b) => Ok(*b.handle()),
            None => Err(GpuError::Driver("cuBLAS handle missing".into())),
        }
    }

    /// The datasheet peak of this GPU's model for a kernel, from the catalog.
    fn peak(&self, kernel: Kernel, dtype: Option<Dtype>) -> Option<f64> {
        let name = self.name.as_deref()?;
        let catalog = crate::verify::catalog::Catalog::builtin();
        catalog
            .identify_gpu(name, None)
            .model()?
            .peak_for(kernel, dtype)
    }

    fn device(&self) -> String {
        format!("cuda:{}", self.ordinal)
    }
}

/// Which of accelprobe's kernels computes a GEMM at `dtype` on `cc`.
fn gemm_kernel(dtype: Dtype, cc: u32) -> R<(&'static str, &'static str)> {
    Ok(match (dtype, cc) {
        (Dtype::F32, _) => ("gemm_f32", "sgemm_tiled"),
        (Dtype::Tf32, 80..) => ("gemm_tc", "tf32gemm_tc"),
        (Dtype::Bf16, 80..) => ("gemm_tc", "bf16gemm_tc"),
        (Dtype::F16, 80..) => ("gemm_tc", "hgemm_tc"),
        (Dtype::F16, 75..) => ("gemm_tc_sm75", "hgemm_tc"),
        (d, _) => {
            return Err(GpuError::Unsupported(format!(
                "{} tensor-core GEMM needs compute capability {}, this GPU has {}.{}",
                d.as_str(),
                if d == Dtype::F16 { "7.5" } else { "8.0" },
                cc / 10,
                cc % 10
            )))
        }
    })
}

/// f32 → f16/bf16 bit patterns on the host (for uploads).
fn to_bits(dtype: Dtype, v: &[f32]) -> Vec<u16> {
    match dtype {
        Dtype::Bf16 => v
            .iter()
            .map(|&x| half::bf16::from_f32(x).to_bits())
            .collect(),
        _ => v
            .iter()
            .map(|&x| half::f16::from_f32(x).to_bits())
            .collect(),
    }
}

/// A GEMM's device operands.
enum Operands {
    F32(CudaSlice<f32>, CudaSlice<f32>),
    Half(CudaSlice<u16>, CudaSlice<u16>),
}

impl Gpu {
    fn upload_operands(&mut self, dtype: Dtype, a: &[f32], b: &[f32]) -> R<Operands> {
        Ok(match dtype {
            Dtype::F32 | Dtype::Tf32 => {
                Operands::F32(self.stream.clone_htod(a)?, self.stream.clone_htod(b)?)
            }
            _ => Operands::Half(
                self.stream.clone_htod(&to_bits(dtype, a))?,
                self.stream.clone_htod(&to_bits(dtype, b))?,
            ),
        })
    }

    fn launch_gemm(
        &self,
        f: &CudaFunction,
        (m, n, k): (usize, usize, usize),
        ops: &Operands,
        c: &mut CudaSlice<f32>,
    ) -> R<()> {
        let (mi, ni, ki) = (dim(m)?, dim(n)?, dim(k)?);
        let cfg = cfg_gemm(m, n)?;
        let mut b = self.stream.launch_builder(f);
        b.arg(&mi).arg(&ni).arg(&ki);
        match ops {
            Operands::F32(a, bb) => b.arg(a).arg(bb),
            Operands::Half(a, bb) => b.arg(a).arg(bb),
        };
        b.arg(c);
        // SAFETY: every GEMM kernel is (int M, int N, int K, const T* A, const T* B, float* C)
        // with A m×k, B k×n and C m×n elements, which the buffers hold.
        unsafe { b.launch(cfg) }?;
        Ok(())
    }

    /// cuBLAS C = A·B, row-major through the column-major identity Cᵀ = Bᵀ·Aᵀ, f32 output.
    fn cublas_gemm(
        &self,
        handle: cudarc::cublas::sys::cublasHandle_t,
        dtype: Dtype,
        (m, n, k): (usize, usize, usize),
        ops: &Operands,
        c: &mut CudaSlice<f32>,
    ) -> R<()> {
        use cudarc::cublas::sys::{
            cublasComputeType_t as Ct, cublasGemmAlgo_t, cublasOperation_t as Op,
            cudaDataType as Dt,
        };
        let (in_type, compute) = match dtype {
            Dtype::F32 => (Dt::CUDA_R_32F, Ct::CUBLAS_COMPUTE_32F),
            Dtype::Tf32 => (Dt::CUDA_R_32F, Ct::CUBLAS_COMPUTE_32F_FAST_TF32),
            Dtype::F16 => (Dt::CUDA_R_16F, Ct::CUBLAS_COMPUTE_32F),
            Dtype::Bf16 => (Dt::CUDA_R_16BF, Ct::CUBLAS_COMPUTE_32F),
        };
        let (alpha, beta) = (1.0f32, 0.0f32);
        let (a_ptr, _ga, b_ptr, _gb) = match ops {
            Operands::F32(a, b) => {
                let (pa, ga) = a.device_ptr(&self.stream);
                let (pb, gb) = b.device_ptr(&self.stream);
                (pa, ga, pb, gb)
            }
            Operands::Half(a, b) => {
                let (pa, ga) = a.device_ptr(&self.stream);
                let (pb, gb) = b.device_ptr(&self.stream);
                (pa, ga, pb, gb)
            }
        };
        let (c_ptr, _gc) = c.device_ptr_mut(&self.stream);
        // SAFETY: cuBLAS reads n×k (B, ld n) and k×m (A, ld k) and writes n×m (C, ld n) in its
        // column-major view, exactly the row-major buffers' extents.
        unsafe {
            cudarc::cublas::result::gemm_ex(
                handle,
                Op::CUBLAS_OP_N,
                Op::CUBLAS_OP_N,
                dim(n)?,
                dim(m)?,
                dim(k)?,
                (&alpha as *const f32).cast(),
                b_ptr as *const _,
                in_type,
                dim(n)?,
                a_ptr as *const _,
                in_type,
                dim(k)?,
                (&beta as *const f32).cast(),
                c_ptr as *mut _,
                Dt::CUDA_R_32F,
                dim(n)?,
                compute,
                cublasGemmAlgo_t::CUBLAS_GEMM_DFALT,
            )
        }
        .map_err(|e| GpuError::Driver(format!("cuBLAS: {e:?}")))
    }
}

/// What the per-GPU runner needs besides the GPU.
pub struct GpuJob<'a> {
    pub seed: u64,
    pub injection: &'a Injection,
    pub budget: Budget,
}

impl GpuJob<'_> {
    /// The job's budget in [`timing::DEVICE_ROUNDS`] consecutive rounds.
    fn timed_rounds<E>(&self, iteration: impl FnMut() -> Result<f64, E>) -> Result<Rounds, E> {
        timing::consecutive_rounds(&self.budget, timing::DEVICE_ROUNDS, iteration)
    }

    /// GEMM at `dtype`; `Err(note)` when this GPU has no kernel for the dtype.
    fn gemm_bench(
        &self,
        gpu: &mut Gpu,
        dtype: Dtype,
        size: usize,
        use_cublas: bool,
    ) -> Result<Benchmark, String> {
        // Measure a format only where the GPU has it, for both implementations: below sm_80
        // cuBLAS would silently run "tf32" as f32 (and may refuse bf16).
        if let Err(e) = gemm_kernel(dtype, gpu.cc) {
            let also = if use_cublas {
                " (cuBLAS skipped too)"
            } else {
                ""
            };
            return Err(format!("{}: {e}{also}", gpu.device()));
        }
        let (m, n, k) = (size, size, size);
        let (a, b) = gemm_inputs(self.seed, dtype, (m, n, k));
        let implementation = if use_cublas {
            "cublas"
        } else {
            "accelprobe-ptx"
        };
        let run = || -> R<(Rounds, Vec<f32>)> {
            let ops = gpu.upload_operands(dtype, &a, &b)?;
            let mut c = gpu.stream.alloc_zeros::<f32>(m * n)?;
            let samples = if use_cublas {
                let handle = gpu.cublas_handle()?;
                self.timed_rounds(|| {
                    gpu.fill_nan(&mut c)?;
                    gpu.timed(|| gpu.cublas_gemm(handle, dtype, (m, n, k), &ops, &mut c))
                })?
            } else {
                let (module, name) = gemm_kernel(dtype, gpu.cc)?;
                let f = gpu.function(module, name)?;
                self.timed_rounds(|| {
                    gpu.fill_nan(&mut c)?;
                    gpu.timed(|| gpu.launch_gemm(&f, (m, n, k), &ops, &mut c))
                })?
            };
            let host = gpu.stream.clone_dtoh(&c)?;
            Ok((samples, host))
        };
        let result = g(run);
        let (samples, mut c, failure) = match result {
            Ok((s, c)) => (s, c, None),
            Err(e) => (Rounds::default(), Vec::new(), Some(e)),
        };
        let correctness = match &failure {
            Some(e) => Correctness::not_run(e.to_string()),
            None => {
                self.injection.corrupt_f32(Kernel::Gemm, &mut c);
                check_gemm(&Gemm::f32_output((m, n, k), &a, &b, &c, dtype), self.seed)
            }
        };
        Ok(finish(Measured {
            kernel: Kernel::Gemm,
            dtype: Some(dtype),
            device: gpu.device(),
            device_name: gpu.name.clone(),
            implementation: implementation.to_string(),
            size: ProblemSize {
                m: Some(m as u64),
                n: Some(n as u64),
                k: Some(k as u64),
                ..ProblemSize::default()
            },
            warmup: self.budget.warmup,
            rounds: samples.sizes,
            samples: samples.samples,
            work: 2.0 * (m * n * k) as f64 / 1e12,
            unit: "TFLOP/s",
            peak: gpu.peak(Kernel::Gemm, Some(dtype)),
            correctness,
            notes: Vec::new(),
        }))
    }

    /// Device-to-device copy of `bytes` with accelprobe's vectorised kernel.
    fn copy_bench(&self, gpu: &mut Gpu, bytes: usize) -> Benchmark {
        let n4 = (bytes / 16).max(1);
        let words = n4 * 4;
        let mut inp = Inputs::new(self.seed);
        let src_host: Vec<u32> = (0..words).map(|_| inp.next_f32().to_bits() | 1).collect();
        let run = || -> R<(Rounds, Vec<u32>)> {
            let f = gpu.function("copy", "copy_u32x4")?;
            let src = gpu.stream.clone_htod(&src_host)?;
            let mut dst = gpu.stream.alloc_zeros::<u32>(words)?;
            let n = n4 as u64;
            // A few waves of resident blocks (8 per SM of 256 threads), as the kernel suggests.
            let blocks = (gpu.ctx.attribute(cudarc::driver::sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?.max(1) as u32) * 8 * 4;
            let cfg = LaunchConfig {
                grid_dim: (blocks.min(grid_1d(n4)), 1, 1),
                block_dim: (BLOCK_1D, 1, 1),
                shared_mem_bytes: 0,
            };
            let samples = self.timed_rounds(|| {
                gpu.stream.memset_zeros(&mut dst)?;
                gpu.timed(|| {
                    let mut b = gpu.stream.launch_builder(&f);
                    b.arg(&src).arg(&mut dst).arg(&n);
                    // SAFETY: copy_u32x4(const uint4*, uint4*, n4): both buffers hold 4·n4 u32.
                    unsafe { b.launch(cfg) }?;
                    Ok(())
                })
            })?;
            Ok((samples, gpu.stream.clone_dtoh(&dst)?))
        };
        let (samples, mut dst, failure) = match g(run) {
            Ok((s, d)) => (s, d, None),
            Err(e) => (Rounds::default(), Vec::new(), Some(e)),
        };
        let correctness = match &failure {
            Some(e) => Correctness::not_run(e.to_string()),
            None => {
                self.injection.corrupt_bits(Kernel::Copy, &mut dst);
                exact_compare(&dst, &src_host, "destination zeroed before each run, then compared word by word with the source")
            }
        };
        let moved = (n4 * 16) as u64;
        finish(Measured {
            kernel: Kernel::Copy,
            dtype: None,
            device: gpu.device(),
            device_name: gpu.name.clone(),
            implementation: "accelprobe-ptx".into(),
            size: ProblemSize {
                bytes: Some(moved),
                ..ProblemSize::default()
            },
            warmup: self.budget.warmup,
            rounds: samples.sizes,
            samples: samples.samples,
            work: 2.0 * moved as f64 / 1e9,
            unit: "GB/s",
            peak: gpu.peak(Kernel::Copy, None),
            correctness,
            notes: vec!["GB/s counts each byte read and written".into()],
        })
    }

    /// Host-to-device (`to_device`) or device-to-host copy of `bytes` through pinned memory.
    fn transfer_bench(&self, gpu: &mut Gpu, bytes: usize, to_device: bool) -> Benchmark {
        let words = (bytes / 4).max(1);
        let mut inp = Inputs::new(self.seed);
        let data: Vec<u32> = (0..words).map(|_| inp.next_f32().to_bits() | 1).collect();
        let kernel = if to_device { Kernel::H2d } else { Kernel::D2h };
        let run = || -> R<(Rounds, Vec<u32>)> {
            // SAFETY: plain (not write-combined) page-locked memory, filled before any read.
            let mut pinned = unsafe { gpu.ctx.alloc_pinned_with_flags::<u32>(words, 0) }?;
            let mut dev = gpu.stream.alloc_zeros::<u32>(words)?;
            if to_device {
                pinned.as_mut_slice()?.copy_from_slice(&data);
                let samples = self.timed_rounds(|| {
                    gpu.stream.memset_zeros(&mut dev)?;
                    gpu.timed(|| Ok(gpu.stream.memcpy_htod(&pinned, &mut dev)?))
                })?;
                Ok((samples, gpu.stream.clone_dtoh(&dev)?))
            } else {
                gpu.stream.memcpy_htod(&data, &mut dev)?;
                let samples = self.timed_rounds(|| {
                    pinned.as_mut_slice()?.fill(0);
                    gpu.timed(|| Ok(gpu.stream.memcpy_dtoh(&dev, &mut pinned)?))
                })?;
                // With only the default stream cudarc does not track the pinned buffer: this
                // synchronize is what makes reading it safe (the fill above is safe because
                // elapsed_ms synchronized both events of the previous iteration).
                gpu.stream.synchronize()?;
                Ok((samples, pinned.as_slice()?.to_vec()))
            }
        };
        let (samples, mut got, failure) = match g(run) {
            Ok((s, d)) => (s, d, None),
            Err(e) => (Rounds::default(), Vec::new(), Some(e)),
        };
        let correctness = match &failure {
            Some(e) => Correctness::not_run(e.to_string()),
            None => {
                self.injection.corrupt_bits(kernel, &mut got);
                exact_compare(&got, &data, "destination zeroed before each run, then compared word by word with the source")
            }
        };
        let moved = (words * 4) as u64;
        finish(Measured {
            kernel,
            dtype: None,
            device: gpu.device(),
            device_name: gpu.name.clone(),
            implementation: "cuMemcpy-pinned".into(),
            size: ProblemSize {
                bytes: Some(moved),
                ..ProblemSize::default()
            },
            warmup: self.budget.warmup,
            rounds: samples.sizes,
            samples: samples.samples,
            work: moved as f64 / 1e9,
            unit: "GB/s",
            peak: gpu.peak(kernel, None),
            correctness,
            notes: vec!["host buffer page-locked; GB/s counts bytes moved one way".into()],
        })
    }

    /// The transformer block on the GPU at `dtype`.
    fn inference_bench(
        &self,
        gpu: &mut Gpu,
        shape: BlockShape,
        dtype: Dtype,
    ) -> Result<Benchmark, String> {
        gemm_kernel(dtype, gpu.cc).map_err(|e| format!("{}: inference {e}", gpu.device()))?;
        let blk = Block::random(shape, dtype, self.seed);
        let run = || -> R<(Rounds, Vec<f32>)> {
            let mut ops = CudaOps::new(gpu, dtype)?;
            let weights = block::upload(&mut ops, &blk)?;
            let mut scratch = block::scratch(&mut ops, &blk)?;
            let samples = self.timed_rounds(|| {
                ops.gpu.fill_nan(&mut scratch.y)?;
                let start = ops
                    .gpu
                    .stream
                    .record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))?;
                block::forward(&mut ops, &blk, &weights, &mut scratch)?;
                let end = ops
                    .gpu
                    .stream
                    .record_event(Some(CUevent_flags::CU_EVENT_DEFAULT))?;
                Ok::<f64, GpuError>(f64::from(start.elapsed_ms(&end)?) / 1e3)
            })?;
            let y = ops.download(&scratch.y)?;
            Ok((samples, y))
        };
        let (samples, mut out, failure) = match g(run) {
            Ok((s, y)) => (s, y, None),
            Err(e) => (Rounds::default(), Vec::new(), Some(e)),
        };
        let correctness = match &failure {
            Some(e) => Correctness::not_run(e.to_string()),
            None => {
                self.injection.corrupt_f32(Kernel::Inference, &mut out);
                check_inference(&blk, &out, rayon::current_num_threads())
            }
        };
        Ok(finish(Measured {
            kernel: Kernel::Inference,
            dtype: Some(dtype),
            device: gpu.device(),
            device_name: gpu.name.clone(),
            implementation: "accelprobe-ptx".into(),
            size: shape.size(),
            warmup: self.budget.warmup,
            rounds: samples.sizes,
            samples: samples.samples,
            work: shape.tokens as f64,
            unit: "tokens/s",
            peak: None,
            correctness,
            notes: vec![format!(
                "inference: {:.3} GFLOP per pass",
                shape.flops() / 1e9
            )],
        }))
    }
}

/// [`Ops`] on a GPU with accelprobe's kernels.
struct CudaOps<'g> {
    gpu: &'g mut Gpu,
    /// Half-precision scratch copies of GEMM operands that change between passes.
    half_a: CudaSlice<u16>,
    half_b: CudaSlice<u16>,
    /// Half-precision copies of constant operands (weights), made once.
    half_cache: HashMap<(u64, usize, usize), CudaSlice<u16>>,
    /// Device addresses of buffers declared constant.
    constants: std::collections::HashSet<u64>,
    gemm: CudaFunction,
    to_half: Option<CudaFunction>,
    /// The transformer kernels, looked up once so a pass times GPU work, not lookups.
    fns: HashMap<&'static str, CudaFunction>,
}

/// The transformer module's kernels the block uses.
const BLOCK_KERNELS: &[&str] = &[
    "layernorm_f32",
    "add_bias_f32",
    "add_f32",
    "gelu_tanh_f32",
    "softmax_causal_f32",
    "transpose_f32",
];

impl<'g> CudaOps<'g> {
    fn new(gpu: &'g mut Gpu, dtype: Dtype) -> R<CudaOps<'g>> {
        let (module, name) = gemm_kernel(dtype, gpu.cc)?;
        let gemm = gpu.function(module, name)?;
        let to_half = match dtype {
            Dtype::F16 => Some(gpu.function("transformer", "f32_to_f16")?),
            Dtype::Bf16 => Some(gpu.function("transformer", "f32_to_bf16")?),
            _ => None,
        };
        let mut fns = HashMap::new();
        for k in BLOCK_KERNELS {
            fns.insert(*k, gpu.function("transformer", k)?);
        }
        let half_a = gpu.stream.alloc_zeros::<u16>(1)?;
        let half_b = gpu.stream.alloc_zeros::<u16>(1)?;
        Ok(CudaOps {
            gpu,
            half_a,
            half_b,
            half_cache: HashMap::new(),
            constants: std::collections::HashSet::new(),
            gemm,
            to_half,
            fns,
        })
    }

    fn f(&self, name: &str) -> R<CudaFunction> {
        self.fns
            .get(name)
            .cloned()
            .ok_or_else(|| GpuError::Unsupported(format!("kernel {name} not loaded")))
    }

    fn addr(&self, buf: &CudaSlice<f32>) -> u64 {
        let (p, _sync) = buf.device_ptr(&self.gpu.stream);
        p
    }

    /// Convert `n` f32 at `src` into `dst` (f16/bf16 bits).
    fn convert(
        stream: &CudaStream,
        f: &CudaFunction,
        src: At<'_, CudaSlice<f32>>,
        n: usize,
        dst: &mut CudaSlice<u16>,
    ) -> R<()> {
        let view = src.0.slice(src.1..src.1 + n);
        let nn = n as u64;
        let mut b = stream.launch_builder(f);
        b.arg(&nn).arg(&view).arg(dst);
        // SAFETY: f32_to_{f16,bf16}(n, const float*, unsigned short*): n elements each side.
        unsafe { b.launch(cfg_1d(n)) }?;
        Ok(())
    }

    /// The half-precision form of an operand: cached for constants (returns its key), else
    /// converted into the scratch buffer `which` (0 = A, 1 = B).
    fn halve(
        &mut self,
        src: At<'_, CudaSlice<f32>>,
        n: usize,
        which: usize,
    ) -> R<Option<(u64, usize, usize)>> {
        let Some(f) = self.to_half.clone() else {
            return Ok(None);
        };
        let ptr = self.addr(src.0);
        if self.constants.contains(&ptr) {
            let key = (ptr, src.1, n);
            if !self.half_cache.contains_key(&key) {
                let mut dst = self.gpu.stream.alloc_zeros::<u16>(n)?;
                Self::convert(&self.gpu.stream, &f, src, n, &mut dst)?;
                self.half_cache.insert(key, dst);
            }
            return Ok(Some(key));
        }
        let stream = self.gpu.stream.clone();
        let dst = if which == 0 {
            &mut self.half_a
        } else {
            &mut self.half_b
        };
        if dst.len() < n {
            *dst = stream.alloc_zeros::<u16>(n)?;
        }
        Self::convert(&stream, &f, src, n, dst)?;
        Ok(None)
    }
}

impl Ops for CudaOps<'_> {
    type Buf = CudaSlice<f32>;
    type Error = GpuError;

    fn upload(&mut self, data: &[f32]) -> R<CudaSlice<f32>> {
        Ok(self.gpu.stream.clone_htod(data)?)
    }

    fn zeros(&mut self, n: usize) -> R<CudaSlice<f32>> {
        Ok(self.gpu.stream.alloc_zeros::<f32>(n)?)
    }

    fn download(&mut self, buf: &CudaSlice<f32>) -> R<Vec<f32>> {
        Ok(self.gpu.stream.clone_dtoh(buf)?)
    }

    fn constant(&mut self, buf: &CudaSlice<f32>) -> R<()> {
        let p = self.addr(buf);
        self.constants.insert(p);
        Ok(())
    }

    fn matmul(
        &mut self,
        m: usize,
        n: usize,
        k: usize,
        a: At<'_, CudaSlice<f32>>,
        b: At<'_, CudaSlice<f32>>,
        c: &mut CudaSlice<f32>,
    ) -> R<()> {
        let (mi, ni, ki) = (dim(m)?, dim(n)?, dim(k)?);
        let cfg = cfg_gemm(m, n)?;
        let f = self.gemm.clone();
        if self.to_half.is_some() {
            let ka = self.halve(a, m * k, 0)?;
            let kb = self.halve(b, k * n, 1)?;
            let ha = match &ka {
                Some(key) => &self.half_cache[key],
                None => &self.half_a,
            };
            let hb = match &kb {
                Some(key) => &self.half_cache[key],
                None => &self.half_b,
            };
            let mut l = self.gpu.stream.launch_builder(&f);
            l.arg(&mi).arg(&ni).arg(&ki).arg(ha).arg(hb).arg(c);
            // SAFETY: (int, int, int, const u16* A m×k, const u16* B k×n, float* C m×n).
            unsafe { l.launch(cfg) }?;
        } else {
            let av = a.0.slice(a.1..a.1 + m * k);
            let bv = b.0.slice(b.1..b.1 + k * n);
            let mut l = self.gpu.stream.launch_builder(&f);
            l.arg(&mi).arg(&ni).arg(&ki).arg(&av).arg(&bv).arg(c);
            // SAFETY: (int, int, int, const float* A m×k, const float* B k×n, float* C m×n).
            unsafe { l.launch(cfg) }?;
        }
        Ok(())
    }

    fn layernorm(
        &mut self,
        rows: usize,
        cols: usize,
        x: &CudaSlice<f32>,
        gamma: &CudaSlice<f32>,
        beta: &CudaSlice<f32>,
        y: &mut CudaSlice<f32>,
    ) -> R<()> {
        let f = self.f("layernorm_f32")?;
        let (r, c, eps) = (dim(rows)?, dim(cols)?, 1e-5f32);
        let cfg = LaunchConfig {
            grid_dim: (rows.clamp(1, 65_535) as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut l = self.gpu.stream.launch_builder(&f);
        l.arg(&r)
            .arg(&c)
            .arg(x)
            .arg(gamma)
            .arg(beta)
            .arg(y)
            .arg(&eps);
        // SAFETY: layernorm_f32(int rows, int cols, const float* x, gamma, beta, float* y, float eps).
        unsafe { l.launch(cfg) }?;
        Ok(())
    }

    fn add_bias(
        &mut self,
        rows: usize,
        cols: usize,
        x: &mut CudaSlice<f32>,
        bias: &CudaSlice<f32>,
    ) -> R<()> {
        let f = self.f("add_bias_f32")?;
        let (r, c) = (dim(rows)?, dim(cols)?);
        let cfg = LaunchConfig {
            grid_dim: (grid_1d(cols), rows.clamp(1, 65_535) as u32, 1),
            block_dim: (BLOCK_1D, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut l = self.gpu.stream.launch_builder(&f);
        l.arg(&r).arg(&c).arg(x).arg(bias);
        // SAFETY: add_bias_f32(int rows, int cols, float* x, const float* bias).
        unsafe { l.launch(cfg) }?;
        Ok(())
    }

    fn add(
        &mut self,
        n: usize,
        a: &CudaSlice<f32>,
        b: &CudaSlice<f32>,
        out: &mut CudaSlice<f32>,
    ) -> R<()> {
        let f = self.f("add_f32")?;
        let nn = n as u64;
        let mut l = self.gpu.stream.launch_builder(&f);
        l.arg(&nn).arg(a).arg(b).arg(out);
        // SAFETY: add_f32(unsigned long long n, const float* a, const float* b, float* out).
        unsafe { l.launch(cfg_1d(n)) }?;
        Ok(())
    }

    fn gelu(&mut self, n: usize, x: &mut CudaSlice<f32>) -> R<()> {
        let f = self.f("gelu_tanh_f32")?;
        let nn = n as u64;
        let mut l = self.gpu.stream.launch_builder(&f);
        l.arg(&nn).arg(x);
        // SAFETY: gelu_tanh_f32(unsigned long long n, float* x).
        unsafe { l.launch(cfg_1d(n)) }?;
        Ok(())
    }

    fn softmax_causal(
        &mut self,
        rows: usize,
        cols: usize,
        s: &mut CudaSlice<f32>,
        scale: f32,
    ) -> R<()> {
        let f = self.f("softmax_causal_f32")?;
        let (r, c) = (dim(rows)?, dim(cols)?);
        let cfg = LaunchConfig {
            grid_dim: (rows.clamp(1, 65_535) as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut l = self.gpu.stream.launch_builder(&f);
        l.arg(&r).arg(&c).arg(s).arg(&scale);
        // SAFETY: softmax_causal_f32(int rows, int cols, float* s, float scale).
        unsafe { l.launch(cfg) }?;
        Ok(())
    }

    fn transpose(
        &mut self,
        rows: usize,
        cols: usize,
        src: At<'_, CudaSlice<f32>>,
        out: (&mut CudaSlice<f32>, usize),
    ) -> R<()> {
        let f = self.f("transpose_f32")?;
        let (r, c) = (dim(rows)?, dim(cols)?);
        let n = rows * cols;
        let input = src.0.slice(src.1..src.1 + n);
        let mut output = out.0.slice_mut(out.1..out.1 + n);
        let cfg = LaunchConfig {
            grid_dim: (
                cols.div_ceil(32) as u32,
                rows.div_ceil(32).clamp(1, 65_535) as u32,
                1,
            ),
            block_dim: (32, 8, 1),
            shared_mem_bytes: 0,
        };
        let mut l = self.gpu.stream.launch_builder(&f);
        l.arg(&r).arg(&c).arg(&input).arg(&mut output);
        // SAFETY: transpose_f32(int rows, int cols, const float* in, float* out), rows·cols each.
        unsafe { l.launch(cfg) }?;
        Ok(())
    }
}

/// What a GPU worker hands back, one at a time.
pub enum GpuOut {
    Bench(Box<Benchmark>),
    /// The kernel and dtype cannot run on this GPU (not a failure): why.
    Skipped(Kernel, Option<Dtype>, String),
    /// Something the operator should know.
    Note(String),
}

impl GpuOut {
    fn from(kernel: Kernel, dtype: Option<Dtype>, r: Result<Benchmark, String>) -> GpuOut {
        match r {
            Ok(b) => GpuOut::Bench(Box::new(b)),
            Err(why) => GpuOut::Skipped(kernel, dtype, why),
        }
    }
}

/// Run `items` on one GPU, handing each result (or a note on what was skipped) to `emit` as
/// soon as it exists, so a later hang loses nothing already measured.
pub fn run_gpu(
    ordinal: usize,
    name: Option<String>,
    items: &[(Kernel, Option<Dtype>)],
    plan: &super::Plan,
    job: &GpuJob<'_>,
    emit: &dyn Fn(GpuOut),
) {
    let mut gpu = match Gpu::open(ordinal, name.clone()) {
        Ok(gpu) => gpu,
        Err(e) => {
            // The GPU cannot run anything: every requested benchmark fails with the reason.
            for &(kernel, dtype) in items {
                emit(GpuOut::Bench(Box::new(super::not_run(
                    kernel,
                    dtype,
                    &format!("cuda:{ordinal}"),
                    name.clone(),
                    e.to_string(),
                ))));
            }
            return;
        }
    };
    let cublas = cublas_present();
    if !cublas && items.iter().any(|(k, _)| *k == Kernel::Gemm) {
        emit(GpuOut::Note(format!(
            "cuda:{ordinal}: libcublas not found; GEMM measured with accelprobe's kernels only"
        )));
    }
    for &(kernel, dtype) in items {
        match (kernel, dtype) {
            (Kernel::Gemm, Some(d)) => {
                for use_cublas in [false, true] {
                    if use_cublas && !cublas {
                        continue;
                    }
                    emit(GpuOut::from(
                        Kernel::Gemm,
                        Some(d),
                        job.gemm_bench(&mut gpu, d, plan.gemm, use_cublas),
                    ));
                }
            }
            (Kernel::Copy, _) => emit(GpuOut::Bench(Box::new(
                job.copy_bench(&mut gpu, plan.copy_bytes),
            ))),
            (Kernel::H2d, _) => emit(GpuOut::Bench(Box::new(job.transfer_bench(
                &mut gpu,
                plan.transfer_bytes,
                true,
            )))),
            (Kernel::D2h, _) => emit(GpuOut::Bench(Box::new(job.transfer_bench(
                &mut gpu,
                plan.transfer_bytes,
                false,
            )))),
            (Kernel::Inference, Some(d)) => emit(GpuOut::from(
                Kernel::Inference,
                Some(d),
                job.inference_bench(&mut gpu, plan.block, d),
            )),
            _ => {}
        }
    }
}

/// Whether libcublas can be loaded (cudarc would panic on first use otherwise).
pub fn cublas_present() -> bool {
    // SAFETY: only tries to dlopen the candidate names.
    guarded(|| unsafe { cudarc::cublas::sys::is_culib_present() }).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_modules_match_the_manifest() {
        let m = manifest();
        assert_eq!(
            m.len(),
            MODULES.len(),
            "manifest {:?}",
            m.keys().collect::<Vec<_>>()
        );
        for (name, ptx) in MODULES {
            let info = m
                .get(*name)
                .unwrap_or_else(|| panic!("{name} missing from the manifest"));
            assert!(
                ptx.contains(".version 8.0"),
                "{name}: PTX ISA must stay 8.0 (R525)"
            );
            for k in &info.kernels {
                assert!(
                    ptx.contains(&format!(".entry {k}(")),
                    "{name}: no entry {k}"
                );
            }
        }
    }

    #[test]
    fn kernels_are_chosen_by_compute_capability() {
        assert_eq!(
            gemm_kernel(Dtype::F32, 70).unwrap(),
            ("gemm_f32", "sgemm_tiled")
        );
        assert_eq!(
            gemm_kernel(Dtype::F16, 75).unwrap(),
            ("gemm_tc_sm75", "hgemm_tc")
        );
        assert_eq!(
            gemm_kernel(Dtype::F16, 90).unwrap(),
            ("gemm_tc", "hgemm_tc")
        );
        assert_eq!(
            gemm_kernel(Dtype::Bf16, 89).unwrap(),
            ("gemm_tc", "bf16gemm_tc")
        );
        assert!(gemm_kernel(Dtype::Bf16, 75).is_err());
        assert!(gemm_kernel(Dtype::Tf32, 70).is_err());
        assert!(gemm_kernel(Dtype::F16, 70).is_err());
        for (module, _) in [
            gemm_kernel(Dtype::F16, 75).unwrap(),
            gemm_kernel(Dtype::Tf32, 80).unwrap(),
        ] {
            let arch = manifest()[module].arch;
            assert!(arch <= 80);
        }
    }

    #[test]
    fn launch_grids_cover_the_matrix() {
        let c = cfg_gemm(129, 1000).unwrap();
        assert_eq!(c.grid_dim, (8, 2, 1));
        assert_eq!(c.block_dim, (256, 1, 1));
        assert!(cfg_gemm(0, 5).is_err());
        assert!(cfg_gemm(65_536 * 128, 5).is_err());
        assert_eq!(cfg_1d(1).grid_dim.0, 1);
        assert_eq!(cfg_1d(1 << 40).grid_dim.0, 65_535);
    }
}
