//! The transformer block as a program of device operations.
//!
//! [`run_block`] is written once against [`Ops`]; the CPU backend implements `Ops` on host
//! vectors and the CUDA backend on device buffers with accelprobe's kernels. The CPU
//! implementation is checked against the f64 reference in every test run, so the GPU path
//! executes an orchestration (head splitting, transposes, causal softmax) that is known to be
//! right; only the kernels underneath differ.

use super::inference::Block;

/// A buffer position: `(buffer, offset in elements)`.
pub type At<'a, B> = (&'a B, usize);

/// The operations the block needs. Matrices are row-major f32; `matmul` rounds both of its
/// operands to the block's dtype (as tensor cores consume them) and accumulates in f32.
pub trait Ops {
    type Buf;
    type Error;

    fn upload(&mut self, data: &[f32]) -> Result<Self::Buf, Self::Error>;
    fn zeros(&mut self, n: usize) -> Result<Self::Buf, Self::Error>;
    fn download(&mut self, buf: &Self::Buf) -> Result<Vec<f32>, Self::Error>;
    /// `buf` never changes from now on (a weight): a backend may keep derived forms of it,
    /// such as a half-precision copy, instead of converting it in every pass.
    fn constant(&mut self, _buf: &Self::Buf) -> Result<(), Self::Error> {
        Ok(())
    }

    /// C (m×n) = A (m×k) · B (k×n).
    fn matmul(
        &mut self,
        m: usize,
        n: usize,
        k: usize,
        a: At<'_, Self::Buf>,
        b: At<'_, Self::Buf>,
        c: &mut Self::Buf,
    ) -> Result<(), Self::Error>;
    /// y = LayerNorm(x) per row, with gamma and beta.
    #[allow(clippy::too_many_arguments)]
    fn layernorm(
        &mut self,
        rows: usize,
        cols: usize,
        x: &Self::Buf,
        gamma: &Self::Buf,
        beta: &Self::Buf,
        y: &mut Self::Buf,
    ) -> Result<(), Self::Error>;
    /// x[r][c] += bias[c].
    fn add_bias(
        &mut self,
        rows: usize,
        cols: usize,
        x: &mut Self::Buf,
        bias: &Self::Buf,
    ) -> Result<(), Self::Error>;
    /// out = a + b, elementwise over n.
    fn add(
        &mut self,
        n: usize,
        a: &Self::Buf,
        b: &Self::Buf,
        out: &mut Self::Buf,
    ) -> Result<(), Self::Error>;
    /// x = GELU(x) (tanh form), elementwise over n.
    fn gelu(&mut self, n: usize, x: &mut Self::Buf) -> Result<(), Self::Error>;
    /// s = softmax(scale · s) per row, with s[r][c] masked out for c > (r mod cols), so
    /// stacked square blocks each get their own causal mask.
    fn softmax_causal(
        &mut self,
        rows: usize,
        cols: usize,
        s: &mut Self::Buf,
        scale: f32,
    ) -> Result<(), Self::Error>;
    /// out (at offset) = transpose of the rows×cols matrix at `src`.
    fn transpose(
        &mut self,
        rows: usize,
        cols: usize,
        src: At<'_, Self::Buf>,
        out: (&mut Self::Buf, usize),
    ) -> Result<(), Self::Error>;
}

/// The block's parameters on the device, with the QKV projection split into three.
pub struct Weights<B> {
    x: B,
    ln1: (B, B),
    w: [B; 3],
    bias: [B; 3],
    w_o: B,
    b_o: B,
    ln2: (B, B),
    w_1: B,
    b_1: B,
    w_2: B,
    b_2: B,
}

/// Columns `part*d .. (part+1)*d` of the d×3d matrix `w`.
fn split_columns(w: &[f32], d: usize, part: usize) -> Vec<f32> {
    w.chunks(3 * d)
        .flat_map(|row| row[part * d..(part + 1) * d].to_vec())
        .collect()
}

/// Put the block's parameters and input on the device.
pub fn upload<O: Ops>(ops: &mut O, blk: &Block) -> Result<Weights<O::Buf>, O::Error> {
    let d = blk.shape.hidden;
    let mut up = |v: &[f32]| -> Result<O::Buf, O::Error> {
        let b = ops.upload(v)?;
        ops.constant(&b)?;
        Ok(b)
    };
    Ok(Weights {
        x: up(&blk.x)?,
        ln1: (up(&blk.ln1.0)?, up(&blk.ln1.1)?),
        w: [
            up(&split_columns(&blk.w_qkv, d, 0))?,
            up(&split_columns(&blk.w_qkv, d, 1))?,
            up(&split_columns(&blk.w_qkv, d, 2))?,
        ],
        bias: [
            up(&blk.b_qkv[..d])?,
            up(&blk.b_qkv[d..2 * d])?,
            up(&blk.b_qkv[2 * d..])?,
        ],
        w_o: up(&blk.w_o)?,
        b_o: up(&blk.b_o)?,
        ln2: (up(&blk.ln2.0)?, up(&blk.ln2.1)?),
        w_1: up(&blk.w_1)?,
        b_1: up(&blk.b_1)?,
        w_2: up(&blk.w_2)?,
        b_2: up(&blk.b_2)?,
    })
}

/// Scratch buffers, allocated once and reused by every forward pass.
pub struct Scratch<B> {
    h: B,
    qkv: [B; 3],
    qkv_t: [B; 3],
    q_h: B,
    v_h: B,
    s: B,
    o_h: B,
    attn_t: B,
    attn: B,
    a: B,
    x2: B,
    m: B,
    pub y: B,
}

pub fn scratch<O: Ops>(ops: &mut O, blk: &Block) -> Result<Scratch<O::Buf>, O::Error> {
    let (t, d, f, hd) = (
        blk.shape.tokens,
        blk.shape.hidden,
        blk.shape.ffn,
        blk.shape.hidden / blk.shape.heads,
    );
    Ok(Scratch {
        h: ops.zeros(t * d)?,
        qkv: [ops.zeros(t * d)?, ops.zeros(t * d)?, ops.zeros(t * d)?],
        qkv_t: [ops.zeros(t * d)?, ops.zeros(t * d)?, ops.zeros(t * d)?],
        q_h: ops.zeros(t * hd)?,
        v_h: ops.zeros(t * hd)?,
        s: ops.zeros(t * t)?,
        o_h: ops.zeros(t * hd)?,
        attn_t: ops.zeros(t * d)?,
        attn: ops.zeros(t * d)?,
        a: ops.zeros(t * d)?,
        x2: ops.zeros(t * d)?,
        m: ops.zeros(t * f)?,
        y: ops.zeros(t * d)?,
    })
}

/// One forward pass; the output (tokens × hidden) is left in the returned scratch buffer.
pub fn forward<'s, O: Ops>(
    ops: &mut O,
    blk: &Block,
    w: &Weights<O::Buf>,
    s: &'s mut Scratch<O::Buf>,
) -> Result<&'s O::Buf, O::Error> {
    let (t, d, h, f) = (
        blk.shape.tokens,
        blk.shape.hidden,
        blk.shape.heads,
        blk.shape.ffn,
    );
    let hd = d / h;

    // Attention: Q, K, V projections.
    ops.layernorm(t, d, &w.x, &w.ln1.0, &w.ln1.1, &mut s.h)?;
    for i in 0..3 {
        ops.matmul(t, d, d, (&s.h, 0), (&w.w[i], 0), &mut s.qkv[i])?;
        ops.add_bias(t, d, &mut s.qkv[i], &w.bias[i])?;
        // Transposed (d × T), so that each head's rows are contiguous.
        ops.transpose(t, d, (&s.qkv[i], 0), (&mut s.qkv_t[i], 0))?;
    }
    let scale = 1.0 / (hd as f32).sqrt();
    for head in 0..h {
        let off = head * hd * t;
        // q_h (T × hd), K_hᵀ is already the (hd × T) block of Kᵀ.
        ops.transpose(hd, t, (&s.qkv_t[0], off), (&mut s.q_h, 0))?;
        ops.matmul(t, t, hd, (&s.q_h, 0), (&s.qkv_t[1], off), &mut s.s)?;
        ops.softmax_causal(t, t, &mut s.s, scale)?;
        ops.transpose(hd, t, (&s.qkv_t[2], off), (&mut s.v_h, 0))?;
        ops.matmul(t, hd, t, (&s.s, 0), (&s.v_h, 0), &mut s.o_h)?;
        // Head output, transposed into its rows of attnᵀ (d × T).
        ops.transpose(t, hd, (&s.o_h, 0), (&mut s.attn_t, off))?;
    }
    ops.transpose(d, t, (&s.attn_t, 0), (&mut s.attn, 0))?;
    ops.matmul(t, d, d, (&s.attn, 0), (&w.w_o, 0), &mut s.a)?;
    ops.add_bias(t, d, &mut s.a, &w.b_o)?;
    ops.add(t * d, &w.x, &s.a, &mut s.x2)?;

    // MLP.
    ops.layernorm(t, d, &s.x2, &w.ln2.0, &w.ln2.1, &mut s.h)?;
    ops.matmul(t, f, d, (&s.h, 0), (&w.w_1, 0), &mut s.m)?;
    ops.add_bias(t, f, &mut s.m, &w.b_1)?;
    ops.gelu(t * f, &mut s.m)?;
    ops.matmul(t, d, f, (&s.m, 0), (&w.w_2, 0), &mut s.a)?;
    ops.add_bias(t, d, &mut s.a, &w.b_2)?;
    ops.add(t * d, &s.x2, &s.a, &mut s.y)?;
    Ok(&s.y)
}
