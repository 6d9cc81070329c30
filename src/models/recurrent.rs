//! The recurrent stack shared by `Rnn`, `Lstm` and `Gru`: configuration, PyTorch-named
//! parameters, the time loop, inter-layer dropout and the per-timestep state-gradient taps.
//!
//! The cell equations live in `cells.rs` (autograd path) and `crate::kernels` (fused path);
//! this file only drives them, and `backend.rs` chooses between the two.

mod saturation;

pub use saturation::{LayerSaturation, SATURATION_DERIVATIVE};

use super::backend::{recorded_tap, run_fused, FusedLayerOutput, RecurrentBackend};
use super::cells::{reference_cell, CellState, ReferenceCell, StepWeights};
use super::init::{InitScheme, Initializer};
use super::taps::{LayerTap, StateTaps};
use crate::cell::{CellKind, Nonlinearity};
use crate::kernels::StateGradSlots;
use crate::util::{dropout, unbind};
use candle_core::{bail, DType, Device, Module, Result, Tensor};
use candle_nn::{VarBuilder, VarMap};
use serde::{Deserialize, Serialize};

/// Everything needed to build a recurrent stack (burn style: a config with defaults plus `init`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RecurrentConfig {
    pub cell: CellKind,
    pub input_size: usize,
    pub hidden_size: usize,
    #[serde(default = "one")]
    pub num_layers: usize,
    /// Dropout on the outputs of every layer but the last, in training only (PyTorch semantics).
    #[serde(default)]
    pub dropout: f64,
    #[serde(default)]
    pub init: InitScheme,
    /// Overrides the scheme's gain (identity/orthogonal scale, Xavier/He gain).
    #[serde(default)]
    pub init_gain: Option<f64>,
    /// LSTM only: the forget-gate bias (set in `bias_ih`; the forget block of `bias_hh` is 0).
    #[serde(default)]
    pub forget_bias: Option<f64>,
}

fn one() -> usize {
    1
}

impl RecurrentConfig {
    pub fn new(cell: CellKind, input_size: usize, hidden_size: usize) -> Self {
        Self {
            cell,
            input_size,
            hidden_size,
            num_layers: 1,
            dropout: 0.0,
            init: InitScheme::Pytorch,
            init_gain: None,
            forget_bias: None,
        }
    }
    pub fn rnn(nonlinearity: Nonlinearity, input_size: usize, hidden_size: usize) -> Self {
        Self::new(CellKind::Rnn(nonlinearity), input_size, hidden_size)
    }
    pub fn lstm(input_size: usize, hidden_size: usize) -> Self {
        Self::new(CellKind::Lstm, input_size, hidden_size)
    }
    pub fn gru(input_size: usize, hidden_size: usize) -> Self {
        Self::new(CellKind::Gru, input_size, hidden_size)
    }
    pub fn with_layers(mut self, num_layers: usize) -> Self {
        self.num_layers = num_layers;
        self
    }
    pub fn with_dropout(mut self, dropout: f64) -> Self {
        self.dropout = dropout;
        self
    }
    pub fn with_init(mut self, init: InitScheme, gain: Option<f64>) -> Self {
        self.init = init;
        self.init_gain = gain;
        self
    }
    pub fn with_forget_bias(mut self, bias: f64) -> Self {
        self.forget_bias = Some(bias);
        self
    }

    /// Checks sizes and ranges; every model constructor calls it.
    pub fn validate(&self) -> Result<()> {
        if self.input_size == 0 || self.hidden_size == 0 || self.num_layers == 0 {
            bail!(
                "input_size, hidden_size and num_layers must be ≥ 1 (got {}, {}, {})",
                self.input_size,
                self.hidden_size,
                self.num_layers
            );
        }
        if !(0.0..1.0).contains(&self.dropout) {
            bail!("dropout must be in [0, 1), got {}", self.dropout);
        }
        if self.forget_bias.is_some() && self.cell != CellKind::Lstm {
            bail!("forget_bias applies to lstm only, not {}", self.cell);
        }
        Ok(())
    }

    fn layer_input_size(&self, layer: usize) -> usize {
        if layer == 0 {
            self.input_size
        } else {
            self.hidden_size
        }
    }

    /// Seeded initial parameters under PyTorch's `state_dict` names, in layer order.
    pub fn init_tensors(&self, seed: u64, device: &Device) -> Result<Vec<(String, Tensor)>> {
        self.validate()?;
        let (h, g) = (self.hidden_size, self.cell.gates());
        let gain = self.init_gain.unwrap_or(self.init.default_gain());
        let mut rng = Initializer::new(seed);
        let mut out = Vec::with_capacity(4 * self.num_layers);
        let recurrent = self.cell.has_recurrent_weights();
        for k in 0..self.num_layers {
            let n_in = self.layer_input_size(k);
            // PyTorch's bound: nn.RNN/LSTM/GRU use 1/√H; the min cells are nn.Linear maps of x_t,
            // whose default is 1/√fan_in.
            let bound = 1.0 / (if recurrent { h } else { n_in } as f64).sqrt();
            // One (H, n) block per gate: fan-in/out and orthogonality are per gate, as in Keras.
            let block = |rng: &mut Initializer, n: usize, recurrent: bool| -> Vec<f32> {
                match self.init {
                    InitScheme::Pytorch => rng.uniform(h * n, bound),
                    InitScheme::Xavier => rng.xavier(h, n, gain),
                    InitScheme::He => rng.he(h, n, gain),
                    InitScheme::Orthogonal if recurrent => rng.orthogonal(h, n, gain),
                    InitScheme::Orthogonal => rng.xavier(h, n, 1.0),
                    InitScheme::Identity if recurrent => Initializer::identity(h, gain),
                    InitScheme::Identity => rng.normal(h * n, 1e-3),
                }
            };
            let w_ih: Vec<f32> = (0..g).flat_map(|_| block(&mut rng, n_in, false)).collect();
            out.push((format!("weight_ih_l{k}"), Tensor::from_vec(w_ih, (g * h, n_in), device)?));
            if !recurrent {
                let b_ih = match self.init {
                    InitScheme::Pytorch => rng.uniform(g * h, bound),
                    _ => vec![0f32; g * h],
                };
                out.push((format!("bias_ih_l{k}"), Tensor::from_vec(b_ih, g * h, device)?));
                continue;
            }
            let w_hh: Vec<f32> = (0..g).flat_map(|_| block(&mut rng, h, true)).collect();
            let (mut b_ih, b_hh) = match self.init {
                InitScheme::Pytorch => (rng.uniform(g * h, bound), rng.uniform(g * h, bound)),
                _ => (vec![0f32; g * h], vec![0f32; g * h]),
            };
            let mut b_hh = b_hh;
            if let Some(fb) = self.forget_bias {
                // Gate order i, f, g, o: the forget block is rows H..2H.
                b_ih[h..2 * h].iter_mut().for_each(|v| *v = fb as f32);
                b_hh[h..2 * h].iter_mut().for_each(|v| *v = 0.0);
            }
            out.push((format!("weight_hh_l{k}"), Tensor::from_vec(w_hh, (g * h, h), device)?));
            out.push((format!("bias_ih_l{k}"), Tensor::from_vec(b_ih, g * h, device)?));
            out.push((format!("bias_hh_l{k}"), Tensor::from_vec(b_hh, g * h, device)?));
        }
        Ok(out)
    }

    /// Fresh seeded parameters registered in `varmap` under `prefix`, and the stack built on them.
    pub fn init(&self, varmap: &VarMap, prefix: &str, seed: u64, device: &Device) -> Result<Recurrent> {
        let vb = super::register(varmap, prefix, self.init_tensors(seed, device)?, device)?;
        Recurrent::new(self, vb)
    }
}

/// The final state of every layer.
#[derive(Clone, Debug)]
pub struct RecurrentState {
    /// (L, B, H)
    pub h: Tensor,
    /// (L, B, H), LSTM only.
    pub c: Option<Tensor>,
}

impl RecurrentState {
    /// Cuts the autograd history (truncated BPTT across batches).
    pub fn detach(&self) -> RecurrentState {
        RecurrentState { h: self.h.detach(), c: self.c.as_ref().map(Tensor::detach) }
    }
}

/// What a forward pass returns.
pub struct RecurrentOutput {
    /// The last layer's hidden state at every step: (B, T, H).
    pub output: Tensor,
    /// Every layer's state after the last step.
    pub state: RecurrentState,
    /// Present when [`ForwardOptions::record_state_grads`] was set: read ∂L/∂h_t after backward.
    pub taps: Option<StateTaps>,
    /// From [`Rnn::forward_fusing_readout`] on the fused path: the readout's outputs (B, T, O),
    /// computed inside the last layer's op. `output` and the last layer's final state are then
    /// values only, outside the graph: gradients reach the model through this tensor.
    pub readout: Option<Tensor>,
}

/// Per-call switches. `Default` is inference: no dropout, no taps, automatic backend.
#[derive(Clone, Debug, Default)]
pub struct ForwardOptions {
    /// Training mode: inter-layer dropout is active.
    pub train: bool,
    /// Seed of this call's dropout masks (change it every step).
    pub dropout_seed: u64,
    /// Tap every layer's h_t (and c_t) so ∂L/∂h_t can be read after `backward()`.
    pub record_state_grads: bool,
    /// Which implementation runs the recurrent layers. `Auto` (the default) takes the fused CPU
    /// kernels for f32 on the CPU and candle's per-op autograd elsewhere; ignored by the GPT.
    pub backend: RecurrentBackend,
    /// No backward pass will run through this call (PyTorch's `torch.no_grad()`): the recurrent
    /// layers see detached inputs and weights, so the fused kernels keep no activations (for an
    /// LSTM at B = 64, T = 1000, H = 128, 164 MB of gates and cell states) and the per-op path
    /// builds no graph. Gradients through the outputs then reach no parameter of these layers.
    /// Evaluation and generation set it.
    pub no_grad: bool,
}

struct LayerWeights {
    /// (G·H, I_k)ᵀ = (I_k, G·H): a transposed view, so the GEMM reads PyTorch's layout directly.
    w_ih_t: Tensor,
    /// (G·H,)
    b_ih: Tensor,
    /// W_hhᵀ (H, G·H) and b_hh (G·H,), for a cell with recurrent weights.
    recurrent: Option<(Tensor, Tensor)>,
}

impl LayerWeights {
    /// The same weights, cut from the graph (see [`ForwardOptions::no_grad`]).
    fn detached(&self) -> Self {
        let d = Tensor::detach;
        let recurrent = self.recurrent.as_ref().map(|(w, b)| (d(w), d(b)));
        Self { w_ih_t: d(&self.w_ih_t), b_ih: d(&self.b_ih), recurrent }
    }

    /// The bias of the whole-sequence input projection: b_ih, plus b_hh where the cell folds it in.
    fn projection_bias(&self, cell: &dyn ReferenceCell) -> Result<Tensor> {
        match &self.recurrent {
            Some((_, b_hh)) if cell.folds_recurrent_bias() => &self.b_ih + b_hh,
            _ => Ok(self.b_ih.clone()),
        }
    }

    /// x W_ihᵀ + bias for every step as one GEMM: `input` (B, T, I_k) → (B, T, G·H).
    fn project_inputs(&self, input: &Tensor, cell: &dyn ReferenceCell) -> Result<Tensor> {
        let (b, t, n_in) = input.dims3()?;
        let gh = self.w_ih_t.dim(1)?;
        input
            .contiguous()?
            .reshape((b * t, n_in))?
            .matmul(&self.w_ih_t)?
            .broadcast_add(&self.projection_bias(cell)?)?
            .reshape((b, t, gh))
    }

    fn step_weights(&self) -> StepWeights<'_> {
        StepWeights { recurrent: self.recurrent.as_ref().map(|(w, b)| (w, b)) }
    }
}

/// A stack of recurrent layers with PyTorch's equations, gate order and parameter names.
pub struct Recurrent {
    config: RecurrentConfig,
    layers: Vec<LayerWeights>,
}

impl Recurrent {
    /// Reads `weight_ih_l{k}`, `bias_ih_l{k}` and, for cells with recurrent weights,
    /// `weight_hh_l{k}`, `bias_hh_l{k}` from `vb`.
    pub fn new(config: &RecurrentConfig, vb: VarBuilder) -> Result<Self> {
        config.validate()?;
        let gh = config.cell.gates() * config.hidden_size;
        let layers = (0..config.num_layers)
            .map(|k| {
                let n_in = config.layer_input_size(k);
                let w_ih_t = vb.get((gh, n_in), &format!("weight_ih_l{k}"))?.t()?;
                let recurrent = match config.cell.has_recurrent_weights() {
                    true => Some((
                        vb.get((gh, config.hidden_size), &format!("weight_hh_l{k}"))?.t()?,
                        vb.get(gh, &format!("bias_hh_l{k}"))?,
                    )),
                    false => None,
                };
                Ok(LayerWeights { w_ih_t, b_ih: vb.get(gh, &format!("bias_ih_l{k}"))?, recurrent })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { config: config.clone(), layers })
    }

    pub fn config(&self) -> &RecurrentConfig {
        &self.config
    }

    /// Inference forward: `x` is (B, T, I), `state` optionally holds h0 (and c0), each (L, B, H).
    pub fn forward_seq(&self, x: &Tensor, state: Option<&RecurrentState>) -> Result<RecurrentOutput> {
        self.forward_with(x, state, &ForwardOptions::default())
    }

    /// Forward pass with explicit training/dropout/tap switches.
    pub fn forward_with(
        &self,
        x: &Tensor,
        state: Option<&RecurrentState>,
        opts: &ForwardOptions,
    ) -> Result<RecurrentOutput> {
        self.forward_impl(x, state, opts, None)
    }

    /// [`Self::forward_with`] followed, on the fused path, by the linear readout
    /// y = h_t·`weight`ᵀ + `bias` (weight (O, H), bias (O)) inside the last layer's op:
    /// [`RecurrentOutput::readout`] holds y, and `output` and the last layer's final state are
    /// values outside the graph (see [`crate::kernels::fused_layer_with_head`] for why). On
    /// the autograd path `readout` is None and nothing else changes: apply the readout to
    /// `output` as usual.
    pub fn forward_fusing_readout(
        &self,
        x: &Tensor,
        state: Option<&RecurrentState>,
        opts: &ForwardOptions,
        (weight, bias): (&Tensor, &Tensor),
    ) -> Result<RecurrentOutput> {
        self.forward_impl(x, state, opts, Some((weight, bias)))
    }

    fn forward_impl(
        &self,
        x: &Tensor,
        state: Option<&RecurrentState>,
        opts: &ForwardOptions,
        head: Option<(&Tensor, &Tensor)>,
    ) -> Result<RecurrentOutput> {
        let cfg = &self.config;
        let (b, t, i) = x.dims3()?;
        if i != cfg.input_size {
            bail!("input has {i} features per step, the model expects {}", cfg.input_size);
        }
        if t == 0 {
            bail!("the input sequence is empty (T = 0)");
        }
        let (l, h) = (cfg.num_layers, cfg.hidden_size);
        let zeros = || Tensor::zeros((l, b, h), x.dtype(), x.device());
        let h0 = match state {
            Some(s) => s.h.clone(),
            None => zeros()?,
        };
        let c0 = match (cfg.cell.has_cell_state(), state.and_then(|s| s.c.clone())) {
            (true, Some(c)) => Some(c),
            (true, None) => Some(zeros()?),
            (false, _) => None,
        };
        for s in [Some(&h0), c0.as_ref()].into_iter().flatten() {
            if s.dims() != [l, b, h] {
                bail!("initial state has shape {:?}, expected (L, B, H) = ({l}, {b}, {h})", s.dims());
            }
        }
        let fused = opts.backend.use_fused(x.device(), x.dtype())?;
        if opts.no_grad && opts.record_state_grads {
            bail!(
                "recording ∂L/∂h_t needs a backward pass, and this forward pass was asked for none (no_grad)"
            );
        }
        let (x, h0, c0) = match opts.no_grad {
            true => (x.detach(), h0.detach(), c0.as_ref().map(Tensor::detach)),
            false => (x.clone(), h0, c0),
        };
        // Under no_grad nothing may track: a head weight that does would make the op keep every
        // activation for a backward pass that never comes.
        let head = head.map(|(w, b)| match opts.no_grad {
            true => (w.detach(), b.detach()),
            false => (w.clone(), b.clone()),
        });
        let head = head.as_ref().map(|(w, b)| (w, b));
        let h0s = unbind(&h0, 0)?;
        let c0s = c0.as_ref().map(|c| unbind(c, 0)).transpose()?;

        let mut layer_input = x.clone();
        let mut h_final = Vec::with_capacity(l);
        let mut c_final = Vec::with_capacity(l);
        let mut taps = Vec::with_capacity(l);
        let mut readout = None;
        for (k, w) in self.layers.iter().enumerate() {
            let detached;
            let w = if opts.no_grad {
                detached = w.detached();
                &detached
            } else {
                w
            };
            let (tap, slots) = match (opts.record_state_grads, fused) {
                (false, _) => (None, None),
                (true, true) => {
                    let (tap, slots) = recorded_tap(cfg.cell, (b, t, h), x.device());
                    (Some(tap), Some(slots))
                }
                (true, false) => (
                    Some(LayerTap::zeros(cfg.cell.has_cell_state(), (b, t, h), x.dtype(), x.device())?),
                    None,
                ),
            };
            let c0 = c0s.as_ref().map(|c| &c[k]);
            let FusedLayerOutput { h: out, h_n, c_n, readout: y } = if fused {
                let head = head.filter(|_| k + 1 == l);
                self.run_layer_fused(w, &layer_input, &h0s[k], c0, slots.as_ref(), head)?
            } else {
                let (h, h_n, c_n) = self.run_layer(w, &layer_input, &h0s[k], c0, tap.as_ref())?;
                FusedLayerOutput { h, h_n, c_n, readout: None }
            }; // (B, T, H)
            readout = y;
            h_final.push(h_n);
            c_final.extend(c_n);
            taps.extend(tap);
            layer_input = if k + 1 < l && opts.train && cfg.dropout > 0.0 {
                dropout(&out, cfg.dropout, opts.dropout_seed.wrapping_add(k as u64))?
            } else {
                out
            };
        }
        Ok(RecurrentOutput {
            output: layer_input,
            state: RecurrentState {
                h: Tensor::stack(&h_final, 0)?,
                c: if c_final.is_empty() { None } else { Some(Tensor::stack(&c_final, 0)?) },
            },
            taps: opts.record_state_grads.then(|| StateTaps::new(taps)),
            readout,
        })
    }

    /// [`Self::run_layer`] as one fused custom op; `slots` receive ∂L/∂h_t (∂L/∂c_t) in backward,
    /// and `head` is a readout to fuse into it.
    fn run_layer_fused(
        &self,
        w: &LayerWeights,
        input: &Tensor,
        h0: &Tensor,
        c0: Option<&Tensor>,
        slots: Option<&StateGradSlots>,
        head: Option<(&Tensor, &Tensor)>,
    ) -> Result<FusedLayerOutput> {
        let recurrent = w.recurrent.as_ref().map(|(w, b)| (w, b));
        run_fused(self.config.cell, input, (&w.w_ih_t, &w.b_ih), recurrent, h0, c0, slots, head)
    }

    /// One layer over the whole sequence with per-op autograd; returns (outputs (B, T, H),
    /// h_{T-1}, c_{T-1}).
    fn run_layer(
        &self,
        w: &LayerWeights,
        input: &Tensor,
        h0: &Tensor,
        c0: Option<&Tensor>,
        tap: Option<&LayerTap>,
    ) -> Result<(Tensor, Tensor, Option<Tensor>)> {
        let cell = reference_cell(self.config.cell);
        let t = input.dim(1)?;
        let xw = unbind(&w.project_inputs(input, cell.as_ref())?, 1)?; // T × (B, G·H)
        let tap_h = tap.map(|tp| unbind(tp.h_tensor(), 1)).transpose()?;
        let tap_c = tap.and_then(|tp| tp.c_tensor()).map(|c| unbind(c, 1)).transpose()?;

        let weights = w.step_weights();
        let mut state = CellState { h: h0.clone(), c: c0.cloned() };
        let mut hs = Vec::with_capacity(t);
        for (step, xw_t) in xw.iter().enumerate() {
            let c_tap = tap_c.as_ref().map(|v| &v[step]);
            let next = cell.step(xw_t, &state, &weights, c_tap)?;
            let h = match &tap_h {
                Some(taps) => (next.h + &taps[step])?,
                None => next.h,
            };
            hs.push(h.clone());
            state = CellState { h, c: next.c };
        }
        Ok((Tensor::stack(&hs, 1)?, state.h, state.c))
    }
}

impl Module for Recurrent {
    /// (B, T, I) -> (B, T, H), zero initial state, inference mode.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.forward_seq(x, None)?.output)
    }
}

/// A zero state of the right shape for `cfg` and batch `b`.
pub fn zero_state(cfg: &RecurrentConfig, b: usize, dtype: DType, device: &Device) -> Result<RecurrentState> {
    let z = Tensor::zeros((cfg.num_layers, b, cfg.hidden_size), dtype, device)?;
    Ok(RecurrentState { c: cfg.cell.has_cell_state().then(|| z.clone()), h: z })
}
