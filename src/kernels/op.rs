//! One recurrent layer over a whole sequence as a single candle autograd node (`CustomOp3`).
//!
//! candle's per-op autograd makes a graph ~20·T nodes deep whose recursive walk overflows the
//! stack near T ≈ 7,000 and spends most of its time in allocation and dispatch. Here the forward
//! time loop and BPTT run on raw f32 slices (each cell's `FusedCell`, see `cell.rs`), so a layer
//! is one node whatever T is, and ∂L/∂h_t (∂L/∂c_t) of every step falls out of BPTT for free.
//! The op takes the layer's input x rather than its projection W_ih x: see `layer.rs` for why.

use super::cell::{fused_cell, Backward, Forward, FusedCell, Saved};
use super::denormals::FlushDenormals;
use super::readout::{OuterGrad, Readout, ReadoutGrads};
use super::{unfilled, Dims, Grads};
use crate::cell::CellKind;
use candle_core::{bail, CpuStorage, CustomOp3, DType, Device, Layout, Result, Shape, Storage, Tensor};
use rayon::prelude::*;
use std::borrow::Cow;
use std::ops::Range;
use std::sync::{Arc, Mutex};

/// A place a fused backward pass writes one state gradient to (see `LayerTap::recorded`).
pub type Slot = Arc<Mutex<Option<Tensor>>>;

/// Where a fused backward deposits ∂L/∂h_t (and, for LSTM, ∂L/∂c_t) of one layer, each (B, T, H).
#[derive(Clone, Default)]
pub struct StateGradSlots {
    pub h: Slot,
    pub c: Option<Slot>,
}

impl StateGradSlots {
    /// Empty slots; `with_c` for an LSTM layer.
    pub fn new(with_c: bool) -> Self {
        Self { h: Slot::default(), c: with_c.then(Slot::default) }
    }
}

struct FusedLayer {
    cell: CellKind,
    /// The cell's forward loop and BPTT.
    imp: Box<dyn FusedCell>,
    dims: Dims,
    /// Whether anything will differentiate the result: otherwise nothing is kept for backward.
    save: bool,
    /// What backward needs beyond the result and the arguments, per batch shard.
    saved: Mutex<Vec<Saved>>,
    slots: Option<StateGradSlots>,
    /// A readout fused onto the layer (see [`fused_layer_with_head`]).
    head: Option<FusedHead>,
}

/// A linear readout y = h_t·Wᵀ + b computed inside the layer's op, which then returns y.
struct FusedHead {
    /// Outputs per step.
    o: usize,
    /// The layer's own result (what [`fused_layer`] would return), kept for backward and handed
    /// to the caller through `result`.
    kept: Mutex<Option<Tensor>>,
    result: Slot,
}

/// Where the packed layer weight ends and a fused head's (O, H) weight and (O) bias begin.
fn layer_weight_len(d: Dims, cell: CellKind) -> usize {
    cell.gates() * d.h * cell.packed_columns(d.i, d.h)
}

/// The result's shape: (B, T, H), or (B·T + B, H) = [h_t; c_{T-1}] for LSTM.
fn result_shape(cell: CellKind, Dims { b, t, h, .. }: Dims) -> Shape {
    if cell.has_cell_state() {
        Shape::from((b * t + b, h))
    } else {
        Shape::from((b, t, h))
    }
}

pub(super) fn poisoned<T>(_: T) -> candle_core::Error {
    candle_core::Error::Msg("fused recurrent kernel: a lock was poisoned by an earlier panic".into())
}

pub(super) fn cpu_slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    let data = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => bail!("fused recurrent kernel: {what} must be contiguous"),
    }
}

pub(super) fn storage_slice<'a>(s: &'a Storage, l: &Layout, what: &str) -> Result<&'a [f32]> {
    match s {
        Storage::Cpu(c) => cpu_slice(c, l, what),
        _ => bail!("fused recurrent kernel: {what} is not on the CPU"),
    }
}

impl CustomOp3 for FusedLayer {
    fn name(&self) -> &'static str {
        self.imp.op_name()
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = cpu_slice(s1, l1, "x")?;
        let w_all = cpu_slice(s2, l2, "weight")?;
        let state = cpu_slice(s3, l3, "state")?;
        let d = self.dims;
        let with_c = self.cell.has_cell_state();
        let (w, head_w) = w_all.split_at(layer_weight_len(d, self.cell));
        let readout = self.head.as_ref().map(|head| Readout::new(head_w, head.o, d.h));
        let o = readout.as_ref().map_or(0, |ro| ro.outputs());
        let mut y = unfilled(d.b * d.t * o); // (B, T, O): a fused readout's outputs
        let ranges = shards(d.b);
        let y_rows = split_rows(readout.as_ref().map(|_| &mut y[..]), &ranges, d.t * o);
        let parts: Vec<(Vec<f32>, Saved)> = ranges
            .into_par_iter()
            .zip(y_rows.into_par_iter())
            .map(|(r, y)| {
                let _flush = FlushDenormals::new();
                let sd = Dims { b: r.len(), ..d };
                let (x, state) =
                    (&x[r.start * d.t * d.i..r.end * d.t * d.i], state_shard(state, d, &r, with_c));
                let head = readout.as_ref().zip(y);
                self.imp.forward(Forward { d: sd, x, w, state: &state, save: self.save, head })
            })
            .collect();
        let (outs, saved): (Vec<Vec<f32>>, Vec<Saved>) = parts.into_iter().unzip();
        *self.saved.lock().map_err(poisoned)? = saved;
        let result = join_results(outs, d, with_c);
        let Some(head) = &self.head else {
            return Ok((CpuStorage::F32(result), result_shape(self.cell, d)));
        };
        let result = Tensor::from_vec(result, result_shape(self.cell, d), &Device::Cpu)?;
        *head.result.lock().map_err(poisoned)? = Some(result.clone());
        *head.kept.lock().map_err(poisoned)? = self.save.then_some(result);
        Ok((CpuStorage::F32(y), Shape::from((d.b, d.t, o))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        state: &Tensor,
        res: &Tensor,
        grad_res: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let d = self.dims;
        let grad_res = grad_res.to_dtype(DType::F32)?.contiguous()?;
        // With a fused head the layer's result is the kept one, and `res` is the readout.
        let kept = match &self.head {
            Some(head) => head.kept.lock().map_err(poisoned)?.clone(),
            None => None,
        };
        let layer_res = match (&self.head, &kept) {
            (None, _) => res,
            (Some(_), Some(kept)) => kept,
            (Some(_), None) => bail!("{}: the forward pass kept nothing for backward", self.name()),
        };
        // Read guards on the storages: the slices are borrowed, not copied.
        let (g_st, g_l) = grad_res.storage_and_layout();
        let (o_st, o_l) = layer_res.storage_and_layout();
        let (x_st, x_l) = x.storage_and_layout();
        let (w_st, w_l) = w.storage_and_layout();
        let (s_st, s_l) = state.storage_and_layout();
        let grad = storage_slice(&g_st, g_l, "the result's gradient")?;
        let out = storage_slice(&o_st, o_l, "the result")?;
        let xv = storage_slice(&x_st, x_l, "x")?;
        let (wv, head_w) = storage_slice(&w_st, w_l, "weight")?.split_at(layer_weight_len(d, self.cell));
        let sv = storage_slice(&s_st, s_l, "state")?;
        // A fused readout forms ∂L/∂h_t from ∂L/∂y a step at a time inside the time loop; ∂L/∂c_{T-1}
        // is then zero (nothing outside reads it).
        let readout = self.head.as_ref().map(|head| Readout::new(head_w, head.o, d.h));
        let no_dc = vec![0f32; if readout.is_some() && self.cell.has_cell_state() { d.b * d.h } else { 0 }];
        let saved = self.saved.lock().map_err(poisoned)?;
        let need_dx = x.track_op();
        // Taps cost one (B, T, H) buffer each and a row copy per step; without them, nothing.
        let (bth, tth) = (d.b * d.t * d.h, d.t * d.h);
        let mut tap_h = self.slots.as_ref().map(|_| vec![0f32; bth]);
        let mut tap_c = self.slots.as_ref().and_then(|s| s.c.as_ref()).map(|_| vec![0f32; bth]);
        let ranges = shards(d.b);
        if saved.len() != ranges.len() {
            bail!("{}: the forward pass kept nothing for backward", self.name());
        }
        let with_c = self.cell.has_cell_state();
        let taps_h = split_rows(tap_h.as_deref_mut(), &ranges, tth);
        let taps_c = split_rows(tap_c.as_deref_mut(), &ranges, tth);
        let shard_grads: Vec<Result<Grads>> = ranges
            .par_iter()
            .zip(saved.par_iter())
            .zip(taps_h.into_par_iter().zip(taps_c.into_par_iter()))
            .map(|((r, saved), (tap_h, tap_c))| {
                let _flush = FlushDenormals::new();
                let sd = Dims { b: r.len(), ..d };
                let xs = &xv[r.start * d.t * d.i..r.end * d.t * d.i];
                let (out, _) = result_shard(out, d, r, with_c);
                let (grad, grad_c) = match &readout {
                    Some(ro) => {
                        let dy = &grad[r.start * d.t * ro.outputs()..r.end * d.t * ro.outputs()];
                        let dc = if with_c { &no_dc[r.start * d.h..r.end * d.h] } else { &[] };
                        (OuterGrad::Readout(ReadoutGrads::new(ro, dy, (r.len(), d.t))), dc)
                    }
                    None => {
                        let (rows, dc) = result_shard(grad, d, r, with_c);
                        (OuterGrad::Rows(rows), dc)
                    }
                };
                let state = state_shard(sv, d, r, with_c);
                let (x, w, state) = (xs, wv, &state[..]);
                let args = Backward { d: sd, grad, grad_c, out, saved, x, w, state, need_dx, tap_h, tap_c };
                match self.imp.backward(args) {
                    Some(grads) => Ok(grads),
                    None => bail!("{}: the forward pass kept nothing for backward", self.name()),
                }
            })
            .collect();
        let mut grads = join_grads(shard_grads.into_iter().collect::<Result<Vec<_>>>()?, d, &ranges, with_c);
        let dhead = std::mem::take(&mut grads.dhead);
        grads.dw.extend(dhead); // [layer; head W; head b], the weight argument's layout
        if let Some(slots) = &self.slots {
            deposit(&slots.h, tap_h, d, x.device())?;
            if let Some(c) = &slots.c {
                deposit(c, tap_c, d, x.device())?;
            }
        }
        let wrap = |v: Option<Vec<f32>>, like: &Tensor| -> Result<Option<Tensor>> {
            match v {
                Some(v) if like.track_op() => Ok(Some(Tensor::from_vec(v, like.shape(), like.device())?)),
                _ => Ok(None),
            }
        };
        Ok((wrap(grads.dx, x)?, wrap(Some(grads.dw), w)?, wrap(Some(grads.dstate), state)?))
    }
}

/// Contiguous ranges of the batch, one per thread of rayon's pool: the recurrence never mixes
/// sequences, so each shard runs the whole time loop on its own core with no per-step
/// synchronisation (splitting each step's small GEMM instead cost more in wake-ups than it won;
/// see `gemm.rs`). At least `MIN_SHARD_ROWS` sequences per shard; one shard with one thread.
fn shards(b: usize) -> Vec<Range<usize>> {
    let n = rayon::current_num_threads().min(b / MIN_SHARD_ROWS).max(1);
    (0..n).map(|k| k * b / n..(k + 1) * b / n).collect()
}

/// Below this many sequences per shard the per-step GEMMs get too thin to pay for a thread.
const MIN_SHARD_ROWS: usize = 8;

/// Each shard's rows of a (B, T, H) buffer, as disjoint mutable slices.
fn split_rows<'a>(
    buf: Option<&'a mut [f32]>,
    ranges: &[Range<usize>],
    per_row: usize,
) -> Vec<Option<&'a mut [f32]>> {
    let mut rest = buf;
    ranges
        .iter()
        .map(|r| {
            let (mine, tail) = rest.take()?.split_at_mut(r.len() * per_row);
            rest = Some(tail);
            Some(mine)
        })
        .collect()
}

/// The shard's initial state: h0 rows, or [h0 rows; c0 rows] for LSTM.
fn state_shard<'a>(state: &'a [f32], d: Dims, r: &Range<usize>, with_c: bool) -> Cow<'a, [f32]> {
    let rows = |base: usize| &state[base + r.start * d.h..base + r.end * d.h];
    if with_c {
        [rows(0), rows(d.b * d.h)].concat().into()
    } else {
        rows(0).into()
    }
}

/// The shard's rows of a result-shaped buffer, (B, T, H) or [h_t (B·T, H); c_{T-1} (B, H)]: its
/// h_t rows, and its c_{T-1} rows (empty without a cell state): two slices, so that nothing is
/// copied to put them side by side.
fn result_shard<'a>(v: &'a [f32], d: Dims, r: &Range<usize>, with_c: bool) -> (&'a [f32], &'a [f32]) {
    let (tth, bth) = (d.t * d.h, d.b * d.t * d.h);
    let c_rows = if with_c { &v[bth + r.start * d.h..bth + r.end * d.h] } else { &[] };
    (&v[r.start * tth..r.end * tth], c_rows)
}

/// The shards' results, in batch order, as one result-shaped buffer.
fn join_results(outs: Vec<Vec<f32>>, d: Dims, with_c: bool) -> Vec<f32> {
    if outs.len() == 1 {
        return outs.into_iter().next().expect("one shard");
    }
    if !with_c {
        return stitch(&outs.iter().map(|o| &o[..]).collect::<Vec<_>>());
    }
    // Each shard's [h_t; c_{T-1}]: every h_t block first, then every c_{T-1} block.
    let split = |o: &Vec<f32>| o.len() - o.len() / (d.t + 1);
    let h = outs.iter().map(|o| &o[..split(o)]);
    let c = outs.iter().map(|o| &o[split(o)..]);
    stitch(&h.chain(c).collect::<Vec<_>>())
}

/// `pieces` concatenated, each piece copied on rayon's pool: on candle's main thread the copy
/// of a (B, T, H) result would be serial time with the workers idle.
fn stitch(pieces: &[&[f32]]) -> Vec<f32> {
    let mut all = unfilled(pieces.iter().map(|p| p.len()).sum());
    let mut rest = all.as_mut_slice();
    let mut dsts = Vec::with_capacity(pieces.len());
    for p in pieces {
        let (dst, tail) = std::mem::take(&mut rest).split_at_mut(p.len());
        dsts.push(dst);
        rest = tail;
    }
    // The destinations split the buffer into pieces of exactly the sources' lengths.
    dsts.into_par_iter().zip(pieces.par_iter()).for_each(|(dst, src)| dst.copy_from_slice(src));
    all
}

/// The shards' gradients as the whole batch's: ∂L/∂x and ∂L/∂state stitched in batch order,
/// the weight gradient summed.
fn join_grads(parts: Vec<Grads>, d: Dims, ranges: &[Range<usize>], with_c: bool) -> Grads {
    if parts.len() == 1 {
        return parts.into_iter().next().expect("one shard");
    }
    let mut dw = vec![0f32; parts[0].dw.len()];
    let mut dhead = vec![0f32; parts[0].dhead.len()];
    for p in &parts {
        dw.iter_mut().zip(&p.dw).for_each(|(a, b)| *a += b);
        dhead.iter_mut().zip(&p.dhead).for_each(|(a, b)| *a += b);
    }
    let dx = parts
        .iter()
        .all(|p| p.dx.is_some())
        .then(|| stitch(&parts.iter().map(|p| p.dx.as_deref().unwrap_or_default()).collect::<Vec<_>>()));
    let mut dstate = vec![0f32; if with_c { 2 } else { 1 } * d.b * d.h];
    for (p, r) in parts.iter().zip(ranges) {
        let n = r.len() * d.h;
        dstate[r.start * d.h..][..n].copy_from_slice(&p.dstate[..n]);
        if with_c {
            dstate[(d.b + r.start) * d.h..][..n].copy_from_slice(&p.dstate[n..2 * n]);
        }
    }
    Grads { dx, dw, dstate, dhead }
}

fn deposit(slot: &Slot, v: Option<Vec<f32>>, Dims { b, t, h, .. }: Dims, dev: &Device) -> Result<()> {
    if let Some(v) = v {
        *slot.lock().map_err(poisoned)? = Some(Tensor::from_vec(v, (b, t, h), dev)?);
    }
    Ok(())
}

/// The weight argument of [`fused_layer`]: [W_ih | W_hh | b_ih | b_hh], (G·H, I + H + 2), from
/// PyTorch's layouts W_ih (G·H, I), b_ih (G·H,) and `recurrent` = (W_hh (G·H, H), b_hh (G·H,));
/// [W_ih | b_ih], (G·H, I + 1), for a cell without recurrent weights. Differentiable: the op's
/// gradient flows back to the parameters.
pub fn pack_weights(w_ih: &Tensor, b_ih: &Tensor, recurrent: Option<(&Tensor, &Tensor)>) -> Result<Tensor> {
    match recurrent {
        Some((w_hh, b_hh)) => Tensor::cat(&[w_ih, w_hh, &b_ih.unsqueeze(1)?, &b_hh.unsqueeze(1)?], 1),
        None => Tensor::cat(&[w_ih, &b_ih.unsqueeze(1)?], 1),
    }
}

/// One layer of `cell` over a whole sequence, as one autograd node.
///
/// - `x` (B, T, I): the layer's input.
/// - `weight` (G·H, I + H + 2): [W_ih | W_hh | b_ih | b_hh], or (G·H, I + 1) = [W_ih | b_ih] for
///   a cell without recurrent weights; see [`pack_weights`].
/// - `state`: h0 (B, H); for LSTM [h0; c0] (2, B, H).
///
/// Returns the hidden states (B, T, H); for LSTM (B·T + B, H): the first B·T rows are h_t in
/// batch-first order (reshape them to (B, T, H)), the last B rows c_{T-1}. CPU and f32 only.
/// With `slots`, the backward pass deposits ∂L/∂h_t (and ∂L/∂c_t, the gradient of a zero added
/// to c_t before h_t is formed) of every step there, as (B, T, H) tensors.
pub fn fused_layer(
    cell: CellKind,
    x: &Tensor,
    weight: &Tensor,
    state: &Tensor,
    slots: Option<&StateGradSlots>,
) -> Result<Tensor> {
    let dims = check(cell, x, weight, state)?;
    apply(cell, dims, x, weight, state, slots, None)
}

/// The op's sizes, once the arguments are checked against each other.
fn check(cell: CellKind, x: &Tensor, weight: &Tensor, state: &Tensor) -> Result<Dims> {
    let (b, t, i) = x.dims3()?;
    let (gh, cols) = weight.dims2()?;
    let g = cell.gates();
    let h = gh / g;
    if gh % g != 0 || h == 0 || t == 0 || b == 0 || cols != cell.packed_columns(i, h) {
        let cols = if cell.has_recurrent_weights() { "I + H + 2" } else { "I + 1" };
        bail!(
            "fused {cell}: x {:?} and weight {:?} do not fit (B ≥ 1, T ≥ 1, I) and ({g}·H, {cols})",
            x.dims(),
            weight.dims()
        );
    }
    let state_dims: &[usize] = if cell.has_cell_state() { &[2, b, h] } else { &[b, h] };
    if state.dims() != state_dims {
        bail!("fused {cell}: state has shape {:?}, expected {state_dims:?}", state.dims());
    }
    cpu_f32(cell, &[("x", x), ("weight", weight), ("state", state)])?;
    Ok(Dims { b, t, h, i })
}

fn cpu_f32(cell: CellKind, args: &[(&str, &Tensor)]) -> Result<()> {
    for (what, v) in args {
        if !v.device().is_cpu() || v.dtype() != DType::F32 {
            bail!(
                "fused {cell}: {what} is {:?} on {:?}; the fused kernels need f32 on the CPU",
                v.dtype(),
                v.device()
            );
        }
    }
    Ok(())
}

/// [`fused_layer`] followed by the readout y = h_t·`head_w`ᵀ + `head_b`, in the same op.
///
/// Returns y (B, T, O) and, detached from the graph, what [`fused_layer`] would have returned.
/// As two ops, the layer's (B, T, H) result would have a consumer in candle's graph, and candle's
/// backward accumulates every consumer's gradient into a fresh zero tensor of that size on its
/// main thread while the pool's workers wait. Here the gradient into h_t is formed inside the op. The layer's result is not differentiable in this
/// form: a loss must reach it through y.
pub fn fused_layer_with_head(
    cell: CellKind,
    x: &Tensor,
    weight: &Tensor,
    state: &Tensor,
    (head_w, head_b): (&Tensor, &Tensor),
    slots: Option<&StateGradSlots>,
) -> Result<(Tensor, Tensor)> {
    let dims = check(cell, x, weight, state)?;
    let (o, hw_cols) = head_w.dims2()?;
    if hw_cols != dims.h || head_b.dims() != [o] || o == 0 {
        bail!(
            "fused {cell} head: weight {:?} and bias {:?} do not fit (O, H = {}) and (O)",
            head_w.dims(),
            head_b.dims(),
            dims.h
        );
    }
    cpu_f32(cell, &[("head weight", head_w), ("head bias", head_b)])?;
    // One weight argument: [packed layer | head W | head b], flattened.
    let all = Tensor::cat(&[weight.flatten_all()?, head_w.flatten_all()?, head_b.clone()], 0)?;
    let head = FusedHead { o, kept: Mutex::new(None), result: Slot::default() };
    let result = head.result.clone();
    let y = apply(cell, dims, x, &all, state, slots, Some(head))?;
    let layer = result.lock().map_err(poisoned)?.take();
    match layer {
        Some(layer) => Ok((y, layer)),
        None => bail!("fused {cell} head: the op returned no layer result"),
    }
}

/// Runs the op (its arguments checked by the caller).
fn apply(
    cell: CellKind,
    dims: Dims,
    x: &Tensor,
    weight: &Tensor,
    state: &Tensor,
    slots: Option<&StateGradSlots>,
    head: Option<FusedHead>,
) -> Result<Tensor> {
    let save = x.track_op() || weight.track_op() || state.track_op();
    let imp = fused_cell(cell);
    let op = FusedLayer { cell, imp, dims, save, saved: Mutex::new(Vec::new()), slots: slots.cloned(), head };
    let (x, weight, state) = (x.contiguous()?, weight.contiguous()?, state.contiguous()?);
    if save {
        x.apply_op3(&weight, &state, op)
    } else {
        x.apply_op3_no_bwd(&weight, &state, &op)
    }
}
