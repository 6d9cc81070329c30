//! Every model against PyTorch's reference values.
//!
//! Reads every `*.safetensors` in `../shared/fixtures/` (when present) and `tests/fixtures/`, or
//! only the directory in `GRADSCOPE_FIXTURES`, and
//! checks every stored tensor at the fixtures' tolerance, |value - ref| <= 1e-5 + 1e-4·|ref|.
//! All sizes come from the files. Every recurrent fixture is checked on both backends (candle's
//! per-op autograd and the fused CPU kernels). The references were made like this (see the
//! fixtures' README):
//!
//! ```python
//! rnn = nn.LSTM(I, H, num_layers=L, batch_first=True)        # weights from the file
//! output, (h_n, c_n) = rnn(input, (h0, c0))
//! loss1 = (output * proj).sum(); loss1.backward()             # grad.* tensors
//! loss2 = (output[:, -1] * proj_last).sum()                   # dL2_dh[:, t] = dL2/dh_t (retain_grad)
//! ```

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use gradscope::checkpoint::{load, Loaded};
use gradscope::models::{
    register, CellKind, ForwardOptions, Gpt, GptConfig, Lru, LruConfig, Mamba, MambaConfig, Recurrent,
    RecurrentBackend, RecurrentConfig, RecurrentState,
};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const RTOL: f64 = 1e-4;
const ATOL: f64 = 1e-5;

/// Every fixture set to check: `GRADSCOPE_FIXTURES` when set; otherwise the project's shared set
/// beside the checkout (`../shared/fixtures`, which may hold other sizes than the committed copy)
/// when present, and the committed copy in `tests/fixtures/`.
fn fixture_dirs() -> Vec<PathBuf> {
    if let Some(d) = std::env::var_os("GRADSCOPE_FIXTURES") {
        return vec![PathBuf::from(d)];
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = root.join("../shared/fixtures");
    let mut dirs = vec![root.join("tests/fixtures")];
    if shared.is_dir() {
        dirs.insert(0, shared);
    }
    dirs
}

fn fixture_files_in(dir: &Path) -> Vec<PathBuf> {
    let entries = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("fixture directory {} is unreadable: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "safetensors"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no *.safetensors fixtures in {}", dir.display());
    files
}

fn fixture_files() -> Vec<PathBuf> {
    fixture_dirs().iter().flat_map(|d| fixture_files_in(d)).collect()
}

/// Records comparisons of one fixture file; every stored tensor must be compared or used.
struct Checker<'a> {
    file: &'a Loaded,
    seen: BTreeSet<String>,
    failures: Vec<String>,
}

impl<'a> Checker<'a> {
    fn new(file: &'a Loaded) -> Self {
        Self { file, seen: BTreeSet::new(), failures: Vec::new() }
    }

    /// A stored tensor used as an input (weights, data): counted as covered.
    fn input(&mut self, name: &str) -> Tensor {
        self.seen.insert(name.to_string());
        self.file.tensors.get(name).unwrap_or_else(|| panic!("fixture lacks tensor '{name}'")).clone()
    }

    fn has(&self, name: &str) -> bool {
        self.file.tensors.contains_key(name)
    }

    fn compare(&mut self, name: &str, value: &Tensor) {
        let want = self.input(name);
        if want.dims() != value.dims() {
            self.failures.push(format!("{name}: shape {:?}, reference {:?}", value.dims(), want.dims()));
            return;
        }
        let got: Vec<f32> = value.to_dtype(DType::F32).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        let want: Vec<f32> = want.flatten_all().unwrap().to_vec1().unwrap();
        let mut worst = (0.0f64, 0usize);
        for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
            let excess = ((g - w).abs() as f64) / (ATOL + RTOL * (w.abs() as f64));
            // A NaN never passes.
            let excess = if excess.is_nan() { f64::INFINITY } else { excess };
            if excess > worst.0 {
                worst = (excess, i);
            }
        }
        if worst.0 > 1.0 {
            let i = worst.1;
            self.failures.push(format!(
                "{name}: element {i} is {} but the reference is {} ({:.1}× the tolerance)",
                got[i], want[i], worst.0
            ));
        }
    }

    fn finish(mut self) -> Vec<String> {
        for name in self.file.tensors.keys() {
            if !self.seen.contains(name) {
                self.failures.push(format!("{name}: stored but never checked"));
            }
        }
        self.failures
    }
}

fn var(t: &Tensor) -> Var {
    Var::from_tensor(t).unwrap()
}

/// Every backend a model can run on the CPU (the GPT's fused ops follow the same switch).
const BACKENDS: [RecurrentBackend; 2] = [RecurrentBackend::Autograd, RecurrentBackend::Fused];

fn check_recurrent(file: &Loaded, kind: &str, backend: RecurrentBackend) -> Vec<String> {
    let mut ck = Checker::new(file);
    let cell: CellKind = kind.parse().unwrap();
    let input = var(&ck.input("input"));
    let h0 = var(&ck.input("h0"));
    let (_, t, i) = input.dims3().unwrap();
    let (l, _, h) = h0.dims3().unwrap();
    let c0 = cell.has_cell_state().then(|| var(&ck.input("c0")));
    let cfg = RecurrentConfig::new(cell, i, h).with_layers(l);

    let names: Vec<String> =
        (0..l).flat_map(|k| cell.parameter_names().iter().map(move |p| format!("{p}_l{k}"))).collect();
    let params: Vec<(String, Tensor)> = names.iter().map(|n| (n.clone(), ck.input(n))).collect();
    let varmap = VarMap::new();
    let vb = register(&varmap, "", params, &Device::Cpu).unwrap();
    let model = Recurrent::new(&cfg, vb).unwrap();
    let state = RecurrentState { h: h0.as_tensor().clone(), c: c0.as_ref().map(|c| c.as_tensor().clone()) };

    // Loss 1: outputs, final states and every gradient through candle's autograd.
    let opts = ForwardOptions { backend, ..Default::default() };
    let out = model.forward_with(input.as_tensor(), Some(&state), &opts).unwrap();
    ck.compare("output", &out.output);
    ck.compare("h_n", &out.state.h);
    if let Some(c_n) = &out.state.c {
        ck.compare("c_n", c_n);
    }
    let loss1 = (&out.output * ck.input("proj")).unwrap().sum_all().unwrap();
    ck.compare("loss1", &loss1.reshape(1).unwrap());
    let grads = loss1.backward().unwrap();
    let data = varmap.data().lock().unwrap();
    let mut leaves: Vec<(String, Tensor)> = vec![("input".into(), input.as_tensor().clone())];
    leaves.push(("h0".into(), h0.as_tensor().clone()));
    if let Some(c0) = &c0 {
        leaves.push(("c0".into(), c0.as_tensor().clone()));
    }
    leaves.extend(names.iter().map(|n| (n.clone(), data[n].as_tensor().clone())));
    for (name, leaf) in &leaves {
        match grads.get(leaf) {
            Some(g) => ck.compare(&format!("grad.{name}"), g),
            None => ck.failures.push(format!("grad.{name}: autograd produced no gradient")),
        }
    }

    // Loss 2: per-timestep ∂L2/∂h_t (and ∂L2/∂c_t) through the state taps.
    let opts = ForwardOptions { record_state_grads: true, backend, ..Default::default() };
    let out = model.forward_with(input.as_tensor(), Some(&state), &opts).unwrap();
    let last = out.output.narrow(1, t - 1, 1).unwrap().squeeze(1).unwrap(); // (B, H)
    let loss2 = (last * ck.input("proj_last")).unwrap().sum_all().unwrap();
    ck.compare("loss2", &loss2.reshape(1).unwrap());
    let state_grads = out.taps.unwrap().grads(&loss2.backward().unwrap()).unwrap();
    ck.compare("dL2_dh", &state_grads.h[l - 1]);
    let norms = state_grads.h_norms(l - 1).unwrap();
    ck.compare("dL2_dh_norm", &Tensor::new(norms, &Device::Cpu).unwrap());
    if ck.has("dL2_dc") {
        let c = state_grads.c.expect("lstm taps carry ∂L/∂c_t");
        ck.compare("dL2_dc", &c[l - 1]);
    }
    ck.finish().into_iter().map(|f| format!("[{backend}] {f}")).collect()
}

fn check_gpt(file: &Loaded, backend: RecurrentBackend) -> Vec<String> {
    let mut ck = Checker::new(file);
    let meta = |key: &str| file.metadata.get(key).unwrap_or_else(|| panic!("metadata lacks '{key}'")).clone();
    let wte = ck.input("wte.weight");
    let wpe = ck.input("wpe.weight");
    let (vocab, c) = wte.dims2().unwrap();
    let n_layer = (0..).take_while(|k| ck.has(&format!("h.{k}.ln_1.weight"))).count();
    let mut cfg = GptConfig::new(vocab, wpe.dim(0).unwrap(), n_layer, meta("n_head").parse().unwrap(), c);
    cfg.layer_norm_eps = meta("layer_norm_eps").parse().unwrap();

    let names: Vec<String> = file.tensors.keys().filter(|k| ck.has(&format!("grad.{k}"))).cloned().collect();
    let params: Vec<(String, Tensor)> = names.iter().map(|n| (n.clone(), ck.input(n))).collect();
    let varmap = VarMap::new();
    let vb = register(&varmap, "", params, &Device::Cpu).unwrap();
    let model = Gpt::new(&cfg, vb).unwrap();

    let opts = ForwardOptions { backend, ..Default::default() };
    let logits = model.forward_with(&ck.input("tokens"), &opts).unwrap().logits;
    ck.compare("logits", &logits);
    let loss = model.loss(&logits, &ck.input("targets")).unwrap();
    ck.compare("loss", &loss.reshape(1).unwrap());
    let grads = loss.backward().unwrap();
    let data = varmap.data().lock().unwrap();
    for name in &names {
        match grads.get(data[name].as_tensor()) {
            Some(g) => ck.compare(&format!("grad.{name}"), g),
            None => ck.failures.push(format!("grad.{name}: autograd produced no gradient")),
        }
    }
    ck.finish().into_iter().map(|f| format!("[{backend}] {f}")).collect()
}

/// The LRU stack (tests/fixtures/make_lru.py): outputs, every gradient and ∂L2/∂s_t of the last
/// block's complex state, as [re | im].
fn check_lru(file: &Loaded, backend: RecurrentBackend) -> Vec<String> {
    let mut ck = Checker::new(file);
    let meta = |key: &str| file.metadata[key].parse::<usize>().unwrap();
    let input = var(&ck.input("input"));
    let (_, t, i) = input.dims3().unwrap();
    let mut cfg = LruConfig::new(i, meta("hidden_size"));
    (cfg.state_size, cfg.num_layers) = (meta("state_size"), meta("num_layers"));
    let names: Vec<String> =
        file.tensors.keys().filter(|k| *k != "input" && ck.has(&format!("grad.{k}"))).cloned().collect();
    let params: Vec<(String, Tensor)> = names.iter().map(|n| (n.clone(), ck.input(n))).collect();
    let varmap = VarMap::new();
    let model = Lru::new(&cfg, register(&varmap, "", params, &Device::Cpu).unwrap()).unwrap();

    let opts = ForwardOptions { backend, ..Default::default() };
    let out = model.forward_with(input.as_tensor(), &opts).unwrap();
    ck.compare("output", &out.output);
    let loss1 = (&out.output * ck.input("proj")).unwrap().sum_all().unwrap();
    ck.compare("loss1", &loss1.reshape(1).unwrap());
    let grads = loss1.backward().unwrap();
    let data = varmap.data().lock().unwrap();
    let leaves = std::iter::once(("input".to_string(), input.as_tensor().clone()))
        .chain(names.iter().map(|n| (n.clone(), data[n].as_tensor().clone())));
    for (name, leaf) in leaves {
        match grads.get(&leaf) {
            Some(g) => ck.compare(&format!("grad.{name}"), g),
            None => ck.failures.push(format!("grad.{name}: autograd produced no gradient")),
        }
    }

    let opts = ForwardOptions { record_state_grads: true, backend, ..Default::default() };
    let out = model.forward_with(input.as_tensor(), &opts).unwrap();
    let last = out.output.narrow(1, t - 1, 1).unwrap().squeeze(1).unwrap(); // (B, H)
    let loss2 = (last * ck.input("proj_last")).unwrap().sum_all().unwrap();
    ck.compare("loss2", &loss2.reshape(1).unwrap());
    let state_grads = out.taps.unwrap().grads(&loss2.backward().unwrap()).unwrap();
    let l = cfg.num_layers;
    ck.compare("dL2_ds", &state_grads.h[l - 1]);
    ck.compare("dL2_ds_norm", &Tensor::new(state_grads.h_norms(l - 1).unwrap(), &Device::Cpu).unwrap());
    ck.finish().into_iter().map(|f| format!("[{backend}] {f}")).collect()
}

/// The Mamba stack (tests/fixtures/make_mamba.py): outputs, every gradient and ∂L2/∂h_t of the
/// last block's SSM state. The fused path records ‖∂L2/∂h_t‖ per sequence and step, (B, T, 1),
/// so there it is compared with the same norms of the reference tensor.
fn check_mamba(file: &Loaded, backend: RecurrentBackend) -> Vec<String> {
    let mut ck = Checker::new(file);
    let meta = |key: &str| file.metadata[key].parse::<usize>().unwrap();
    let input = var(&ck.input("input"));
    let (_, t, i) = input.dims3().unwrap();
    let cfg = MambaConfig {
        state_size: meta("state_size"),
        expand: meta("expand"),
        conv: meta("conv"),
        dt_rank: meta("dt_rank"),
        num_layers: meta("num_layers"),
        ..MambaConfig::new(i, meta("hidden_size"))
    };
    let names: Vec<String> =
        file.tensors.keys().filter(|k| *k != "input" && ck.has(&format!("grad.{k}"))).cloned().collect();
    let params: Vec<(String, Tensor)> = names.iter().map(|n| (n.clone(), ck.input(n))).collect();
    let varmap = VarMap::new();
    let model = Mamba::new(&cfg, register(&varmap, "", params, &Device::Cpu).unwrap()).unwrap();

    let opts = ForwardOptions { backend, ..Default::default() };
    let out = model.forward_with(input.as_tensor(), &opts).unwrap();
    ck.compare("output", &out.output);
    let loss1 = (&out.output * ck.input("proj")).unwrap().sum_all().unwrap();
    ck.compare("loss1", &loss1.reshape(1).unwrap());
    let grads = loss1.backward().unwrap();
    let data = varmap.data().lock().unwrap();
    let leaves = std::iter::once(("input".to_string(), input.as_tensor().clone()))
        .chain(names.iter().map(|n| (n.clone(), data[n].as_tensor().clone())));
    for (name, leaf) in leaves {
        match grads.get(&leaf) {
            Some(g) => ck.compare(&format!("grad.{name}"), g),
            None => ck.failures.push(format!("grad.{name}: autograd produced no gradient")),
        }
    }

    let opts = ForwardOptions { record_state_grads: true, backend, ..Default::default() };
    let out = model.forward_with(input.as_tensor(), &opts).unwrap();
    let last = out.output.narrow(1, t - 1, 1).unwrap().squeeze(1).unwrap(); // (B, H)
    let loss2 = (last * ck.input("proj_last")).unwrap().sum_all().unwrap();
    ck.compare("loss2", &loss2.reshape(1).unwrap());
    let state_grads = out.taps.unwrap().grads(&loss2.backward().unwrap()).unwrap();
    let dh = &state_grads.h[cfg.num_layers - 1];
    if dh.dim(2).unwrap() == 1 {
        let want = ck.input("dL2_dh").sqr().unwrap().sum_keepdim(2).unwrap().sqrt().unwrap();
        let (got, want) = (dh.flatten_all().unwrap(), want.flatten_all().unwrap());
        let excess = (got - &want).unwrap().abs().unwrap().to_vec1::<f32>().unwrap();
        let want = want.to_vec1::<f32>().unwrap();
        if let Some(k) = (0..want.len()).find(|&k| excess[k] as f64 > ATOL + RTOL * want[k] as f64) {
            ck.failures.push(format!("‖dL2_dh‖ per sequence and step: element {k} is off by {}", excess[k]));
        }
    } else {
        ck.compare("dL2_dh", dh);
    }
    ck.compare(
        "dL2_dh_norm",
        &Tensor::new(state_grads.h_norms(cfg.num_layers - 1).unwrap(), &Device::Cpu).unwrap(),
    );
    ck.finish().into_iter().map(|f| format!("[{backend}] {f}")).collect()
}

fn check_file(path: &Path) -> Vec<String> {
    let file = load(path, &Device::Cpu).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
    let kind = file.metadata.get("kind").cloned().expect("fixture metadata has no 'kind'");
    match kind.as_str() {
        "gpt" => BACKENDS.into_iter().flat_map(|backend| check_gpt(&file, backend)).collect(),
        "lru" => BACKENDS.into_iter().flat_map(|backend| check_lru(&file, backend)).collect(),
        "mamba" => BACKENDS.into_iter().flat_map(|backend| check_mamba(&file, backend)).collect(),
        _ => BACKENDS.into_iter().flat_map(|backend| check_recurrent(&file, &kind, backend)).collect(),
    }
}

#[test]
fn every_fixture_matches_pytorch() {
    let mut report = Vec::new();
    for dir in fixture_dirs() {
        let files = fixture_files_in(&dir);
        for path in &files {
            for failure in check_file(path) {
                report.push(format!("{}: {failure}", path.display()));
            }
        }
        eprintln!("checked {} fixture files in {}", files.len(), dir.display());
    }
    assert!(report.is_empty(), "{} mismatches:\n{}", report.len(), report.join("\n"));
}

/// The checker is not vacuous: a layout error (gate blocks i and f swapped) is caught.
#[test]
fn a_swapped_gate_order_is_caught() {
    let path = fixture_files()
        .into_iter()
        .find(|p| load(p, &Device::Cpu).unwrap().metadata.get("kind").map(String::as_str) == Some("lstm"));
    let path = path.expect("an lstm fixture");
    let mut file = load(&path, &Device::Cpu).unwrap();
    let w = file.tensors["weight_hh_l0"].clone();
    let h = w.dim(1).unwrap();
    let swapped = Tensor::cat(
        &[w.narrow(0, h, h).unwrap(), w.narrow(0, 0, h).unwrap(), w.narrow(0, 2 * h, 2 * h).unwrap()],
        0,
    )
    .unwrap();
    file.tensors.insert("weight_hh_l0".into(), swapped);
    for backend in BACKENDS {
        let failures = check_recurrent(&file, "lstm", backend);
        assert!(failures.iter().any(|f| f.starts_with(&format!("[{backend}] output"))), "{failures:?}");
    }
}
