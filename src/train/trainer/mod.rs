//! The training loop: batches from a task, forward/backward, clipping, the optimiser, periodic
//! evaluation on a fixed held-out set, checkpoints, exact resume and a clean stop on Ctrl-C.

use super::config::{OnNonFinite, TrainConfig};
use super::nonfinite::{first_nonfinite, first_nonfinite_parameter, locate_in_time};
use super::run_dir::{
    MetricsRecord, RunDir, Summary, CHECKPOINT, CONFIG, MODEL, MODEL_CONFIG, PROBE, SUMMARY,
};
use super::{clip_grad_norm, clip_grad_value, global_grad_norm, Optimizer};
use crate::checkpoint::{load, save_tensors, save_varmap};
use crate::device::parse_device;
use crate::models::{parameter_count, ForwardOptions, RecurrentState, SeqModel, SeqModelConfig};
use crate::probe::{measure, LossKind, ProbeRecord};
use crate::tasks::{Batch, Metrics, Task};
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor, Var};
use candle_nn::VarMap;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// The held-out set's seed is fixed, independent of `--seed`: every model sees the same sequences.
pub const EVAL_SEED: u64 = 0xE7A1_5E75;

/// `--on-nonfinite rollback` gives up after this many events.
const MAX_ROLLBACKS: u64 = 20;

/// Where and how to run.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub out: PathBuf,
    /// Continue the run in `out` from its checkpoint.
    pub resume: bool,
    /// No progress bar.
    pub quiet: bool,
    /// Set by a Ctrl-C handler: the loop checkpoints and stops.
    pub interrupt: Option<Arc<AtomicBool>>,
    /// Stop (with a summary) once this much wall time has passed.
    pub max_seconds: Option<f64>,
}

/// Training stopped on request; the checkpoint at `step` holds everything to resume.
#[derive(Debug, thiserror::Error)]
#[error("interrupted at step {step}; checkpoint written, continue with --resume {dir}")]
pub struct Interrupted {
    pub step: u64,
    pub dir: String,
}

/// A stateless, well-mixed seed per (run seed, step, purpose): batches and dropout masks depend
/// only on these, so a resumed run draws exactly what the uninterrupted one would have.
pub fn derive_seed(seed: u64, step: u64, salt: u64) -> u64 {
    let mut z = seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ salt.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The fixed evaluation set of a task, in batches of at most `batch`.
pub fn eval_set(task: &dyn Task, size: usize, batch: usize, device: &Device) -> Result<Vec<Batch>> {
    let mut rng = StdRng::seed_from_u64(EVAL_SEED);
    let mut out = Vec::new();
    let mut left = size;
    while left > 0 {
        let n = left.min(batch);
        out.push(task.eval_batch(n, &mut rng, device)?);
        left -= n;
    }
    Ok(out)
}

/// Metrics over a whole evaluation set, weighted by batch size.
pub fn evaluate(model: &SeqModel, task: &dyn Task, set: &[Batch]) -> Result<Metrics> {
    let (mut total, mut n) = (Metrics::default(), 0.0);
    let add = |acc: &mut Option<f64>, v: Option<f64>, w: f64| {
        if let Some(v) = v {
            *acc = Some(acc.unwrap_or(0.0) + v * w);
        }
    };
    for batch in set {
        let out =
            model.forward(&batch.inputs, None, &ForwardOptions { no_grad: true, ..Default::default() })?;
        let m = task.metrics(&out.outputs, batch)?;
        let w = batch.size()? as f64;
        total.loss += m.loss * w;
        add(&mut total.accuracy, m.accuracy, w);
        add(&mut total.mse, m.mse, w);
        add(&mut total.bits_per_char, m.bits_per_char, w);
        n += w;
    }
    total.bits_per_char = total.bits_per_char.map(|v| v / n);
    total.loss /= n;
    total.accuracy = total.accuracy.map(|v| v / n);
    total.mse = total.mse.map(|v| v / n);
    Ok(total)
}

/// What a checkpoint records besides tensors: everything the loop needs to continue exactly.
#[derive(Clone, Debug, Default)]
struct LoopState {
    step: u64,
    elapsed: f64,
    steps_to_solve: Option<u64>,
    /// Multiplies the schedule's rate; each rollback halves it.
    lr_scale: f64,
    /// Steps whose loss or gradient was NaN/Inf (skipped or rolled back).
    nonfinite_events: u64,
    /// --tbptt: the hidden state carried into the next batch.
    carried: Option<RecurrentState>,
}

/// Trains as `cfg` says, writing the run directory `opts.out`. Call it on a thread with a deep
/// stack (see [`crate::util::with_deep_stack`]) for long sequences.
pub fn train(cfg: &TrainConfig, opts: &RunOptions) -> Result<Summary> {
    cfg.validate()?;
    let device = parse_device(&cfg.device)?;
    let task = cfg.build_task_in(opts.resume.then_some(opts.out.as_path()))?;
    let model_cfg = cfg.model_config(task.as_ref());
    // validate() guessed the text task's vocabulary; now it is known.
    cfg.check_memory(&model_cfg)?;
    let dir = RunDir::new(&opts.out);
    if !opts.resume && dir.holds_a_run() {
        bail!(
            "{} already holds a run; pass --resume {0} to continue it or choose another --out",
            opts.out.display()
        );
    }
    if opts.resume && !dir.path(CHECKPOINT).exists() {
        bail!("--resume {}: no {CHECKPOINT} there to resume from", opts.out.display());
    }

    let varmap = VarMap::new();
    let model = model_cfg.init(&varmap, cfg.seed, &device)?;
    let mut named: Vec<(String, Var)> =
        varmap.data().lock().expect("varmap lock").clone().into_iter().collect();
    named.sort_by(|a, b| a.0.cmp(&b.0));
    let params: Vec<Var> = named.iter().map(|(_, v)| v.clone()).collect();
    let mut optimizer = Optimizer::new(cfg.optimizer_config()?, named.clone())?;
    // nanoGPT's groups: decay matrices and embeddings, not biases or LayerNorm gains.
    optimizer.exempt_from_weight_decay(|_, var| var.rank() < 2);
    let schedule = cfg.schedule()?;

    let mut state = if opts.resume {
        let c = restore(&dir, &model_cfg, &named, &mut optimizer, &device)?;
        // Half-written files of the process that was killed (never read: renames are atomic).
        crate::checkpoint::remove_stale_temporaries(&opts.out)?;
        dir.truncate_records(c.step)?;
        // Until this run finishes, the directory must not look finished.
        let _ = std::fs::remove_file(dir.path(SUMMARY));
        c
    } else {
        std::fs::create_dir_all(&opts.out).with_context(|| format!("creating {}", opts.out.display()))?;
        crate::checkpoint::write_atomic(&dir.path(CONFIG), cfg.to_toml()?.as_bytes())?;
        dir.write_json(MODEL_CONFIG, &model_cfg)?;
        task.save_artifacts(&opts.out)?;
        let fresh = LoopState { lr_scale: 1.0, ..LoopState::default() };
        // Step 0 is a good state to roll back to before the first evaluation.
        save_checkpoint(&dir, &varmap, &named, &optimizer, &fresh)?;
        fresh
    };
    let start_step = state.step;
    let elapsed_before = state.elapsed;

    let evalset = eval_set(task.as_ref(), cfg.eval_size, cfg.batch, &device)?;
    let tokens_per_step = (cfg.batch * task.spec().steps) as f64;
    let bar = progress_bar(cfg, opts.quiet, start_step);
    let started = Instant::now();
    let (mut loss_sum, mut norm_sum, mut since) = (0.0, 0.0, 0u64);
    let mut last: Option<(Metrics, u64)> = None;
    let mut stopped = "completed";
    let mut step = start_step;
    let mut last_good = start_step;
    // A fixed slice of the held-out set, so curves at different steps compare like with like.
    let probe_batch = match cfg.probe_every {
        Some(_) => Some(eval_set(task.as_ref(), 16.min(cfg.eval_size), 16, &device)?.remove(0)),
        None => None,
    };
    let record_probe = |step: u64| -> Result<()> {
        if let Some(batch) = &probe_batch {
            let p = measure(&model, &varmap, task.as_ref(), batch, LossKind::Last, cfg.model.name())?;
            dir.append_line(PROBE, &ProbeRecord { step, curves: p.curves })?;
        }
        Ok(())
    };
    if start_step == 0 {
        record_probe(0)?;
    }

    while step < cfg.steps {
        let lr = schedule.lr_at(step) * state.lr_scale;
        let batch = if cfg.tbptt {
            if step.is_multiple_of(task.sequential_period(cfg.batch)) {
                state.carried = None; // the streams start over
            }
            task.sequential_batch(cfg.batch, step, &device)?.context("this task has no sequential batches")?
        } else {
            task.batch(cfg.batch, &mut StdRng::seed_from_u64(derive_seed(cfg.seed, step, 1)), &device)?
        };
        let fwd = ForwardOptions {
            train: true,
            dropout_seed: derive_seed(cfg.seed, step, 2),
            record_state_grads: false,
            backend: cfg.backend,
            no_grad: false,
        };
        let out = model.forward(&batch.inputs, state.carried.as_ref(), &fwd)?;
        let next_carried = if cfg.tbptt { out.state.as_ref().map(RecurrentState::detach) } else { None };
        let loss = task.loss(&out.outputs, &batch)?;
        let loss_value = loss.to_scalar::<f32>()? as f64;
        let mut grads = loss.backward()?;
        let norm = match cfg.clip {
            Some(max) => clip_grad_norm(&mut grads, &params, max)?,
            None => global_grad_norm(&grads, &params)?,
        };
        let fault = if !loss_value.is_finite() {
            Some(format!("the training loss is {loss_value}"))
        } else if !norm.is_finite() {
            Some(format!(
                "the gradient of '{}' is not finite",
                first_nonfinite(&grads, &named)?.unwrap_or_default()
            ))
        } else {
            None
        };
        if let Some(mut what) = fault {
            if cfg.probe_every.is_some() {
                let task = task.as_ref();
                if let Some(when) = locate_in_time(&model, task, &batch, state.carried.as_ref(), &fwd)? {
                    what = format!("{what}; {when}");
                }
            }
            state.nonfinite_events += 1;
            match cfg.on_nonfinite {
                OnNonFinite::Stop => bail!(
                    "non-finite value at step {step}: {what}; stopped, the last good checkpoint (step \
                     {last_good}) is kept (--on-nonfinite skip|rollback carry on instead)"
                ),
                OnNonFinite::Skip => {
                    note(&bar, format!("step {step}: {what}; update skipped"));
                    drop((grads, loss, out));
                    step += 1;
                    bar.set_position(step);
                    continue;
                }
                OnNonFinite::Rollback => {
                    if state.nonfinite_events > MAX_ROLLBACKS {
                        bail!("non-finite value at step {step}: {what}; gave up after {MAX_ROLLBACKS} rollbacks");
                    }
                    drop((grads, loss, out));
                    let (events, scale) = (state.nonfinite_events, state.lr_scale * 0.5);
                    state = restore(&dir, &model_cfg, &named, &mut optimizer, &device)?;
                    (state.nonfinite_events, state.lr_scale) = (events, scale);
                    dir.truncate_records(state.step)?;
                    note(
                        &bar,
                        format!(
                            "step {step}: {what}; rolled back to step {} with the learning rate halved (×{})",
                            state.step, state.lr_scale
                        ),
                    );
                    step = state.step;
                    (loss_sum, norm_sum, since) = (0.0, 0.0, 0);
                    bar.set_position(step);
                    continue;
                }
            }
        }
        if let Some(v) = cfg.clip_value {
            clip_grad_value(&mut grads, &params, v)?;
        }
        optimizer.step(&grads, lr)?;
        drop((grads, loss, out));
        state.carried = next_carried;
        step += 1;
        if cfg.probe_every.is_some_and(|n| step.is_multiple_of(n)) {
            record_probe(step)?;
        }
        loss_sum += loss_value;
        norm_sum += norm;
        since += 1;

        let elapsed = elapsed_before + started.elapsed().as_secs_f64();
        let out_of_time = opts.max_seconds.is_some_and(|m| started.elapsed().as_secs_f64() >= m);
        let interrupted = opts.interrupt.as_ref().is_some_and(|f| f.load(Ordering::SeqCst));
        if step.is_multiple_of(cfg.eval_every) || step == cfg.steps || out_of_time || interrupted {
            let metrics = evaluate(&model, task.as_ref(), &evalset)?;
            let solved = task.solved(&metrics);
            if solved && state.steps_to_solve.is_none() {
                state.steps_to_solve = Some(step);
            }
            let record = MetricsRecord {
                step,
                train_loss: loss_sum / since as f64,
                eval_loss: metrics.loss,
                eval_accuracy: metrics.accuracy,
                eval_mse: metrics.mse,
                eval_bpc: metrics.bits_per_char,
                eval_perplexity: metrics.bits_per_char.map(|_| metrics.loss.exp()),
                grad_norm: norm_sum / since as f64,
                lr,
                elapsed_seconds: elapsed,
                tokens_per_second: tokens_per_step * (step - start_step) as f64
                    / started.elapsed().as_secs_f64(),
            };
            dir.append_metrics(&record)?;
            if let Some(name) = first_nonfinite_parameter(&named)? {
                bail!("parameter '{name}' became non-finite by step {step}; the last good checkpoint (step {last_good}) is kept");
            }
            (state.step, state.elapsed) = (step, elapsed);
            save_checkpoint(&dir, &varmap, &named, &optimizer, &state)?;
            last_good = step;
            let (name, value) = task.headline(&metrics);
            bar.set_message(format!(
                "loss {:.4} | eval {name} {value:.4} | {:.0} tok/s",
                record.train_loss, record.tokens_per_second
            ));
            (loss_sum, norm_sum, since) = (0.0, 0.0, 0);
            last = Some((metrics, step));
            if interrupted {
                bar.abandon();
                return Err(Interrupted { step, dir: opts.out.display().to_string() }.into());
            }
            if solved && cfg.stop_when_solved {
                stopped = "solved";
                break;
            }
            if out_of_time {
                stopped = "time-budget";
                break;
            }
        }
        bar.set_position(step);
    }
    bar.finish();

    let (metrics, _) = match last {
        Some(l) => l,
        None => (evaluate(&model, task.as_ref(), &evalset)?, step),
    };
    let wall = elapsed_before + started.elapsed().as_secs_f64();
    let summary = Summary {
        task: task.name().to_string(),
        model: cfg.model.to_string(),
        label: cfg.label(),
        seq_len: cfg.seq_len,
        hidden: cfg.hidden,
        layers: cfg.layers,
        parameters: parameter_count(&varmap),
        steps: step,
        eval_loss: metrics.loss,
        eval_accuracy: metrics.accuracy,
        eval_mse: metrics.mse,
        eval_bpc: metrics.bits_per_char,
        eval_perplexity: metrics.bits_per_char.map(|_| metrics.loss.exp()),
        baseline: task.baseline(),
        solved: task.solved(&metrics) || state.steps_to_solve.is_some(),
        steps_to_solve: state.steps_to_solve,
        nonfinite_events: state.nonfinite_events,
        wall_seconds: wall,
        tokens_per_second: tokens_per_step * (step - start_step) as f64
            / started.elapsed().as_secs_f64().max(1e-9),
        stopped: stopped.into(),
    };
    dir.write_json(SUMMARY, &summary)?;
    Ok(summary)
}

/// A message above the progress bar, or on stderr when there is no bar (--quiet, not a terminal).
fn note(bar: &ProgressBar, msg: String) {
    if bar.is_hidden() {
        eprintln!("{msg}");
    } else {
        bar.println(msg);
    }
}

fn progress_bar(cfg: &TrainConfig, quiet: bool, start: u64) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(cfg.steps);
    bar.set_style(
        ProgressStyle::with_template(
            "{prefix} [{elapsed_precise}] {bar:28.cyan/blue} {pos}/{len} {msg} (eta {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_prefix(cfg.label());
    bar.set_position(start);
    bar
}

fn save_checkpoint(
    dir: &RunDir,
    varmap: &VarMap,
    named: &[(String, Var)],
    optimizer: &Optimizer,
    state: &LoopState,
) -> Result<()> {
    let mut tensors: Vec<(String, Tensor)> =
        named.iter().map(|(n, v)| (format!("model.{n}"), v.as_tensor().clone())).collect();
    tensors.extend(optimizer.state_tensors()?.into_iter().map(|(n, t)| (format!("optim.{n}"), t)));
    if let Some(carried) = &state.carried {
        tensors.push(("tbptt.h".into(), carried.h.clone()));
        tensors.extend(carried.c.clone().map(|c| ("tbptt.c".to_string(), c)));
    }
    let meta = BTreeMap::from([
        ("format".to_string(), "gradscope-checkpoint-1".to_string()),
        ("step".to_string(), state.step.to_string()),
        ("elapsed_seconds".to_string(), state.elapsed.to_string()),
        ("steps_to_solve".to_string(), state.steps_to_solve.map_or(String::new(), |s| s.to_string())),
        ("lr_scale".to_string(), state.lr_scale.to_string()),
        ("nonfinite_events".to_string(), state.nonfinite_events.to_string()),
        ("model_config".to_string(), std::fs::read_to_string(dir.path(MODEL_CONFIG)).unwrap_or_default()),
    ]);
    save_tensors(&dir.path(CHECKPOINT), tensors.iter().map(|(n, t)| (n.as_str(), t)), &meta)?;
    let step = BTreeMap::from([("step".to_string(), state.step.to_string())]);
    save_varmap(&dir.path(MODEL), varmap, &step)
}

fn restore(
    dir: &RunDir,
    model_cfg: &SeqModelConfig,
    named: &[(String, Var)],
    optimizer: &mut Optimizer,
    device: &Device,
) -> Result<LoopState> {
    let path = dir.path(CHECKPOINT);
    let loaded = load(&path, device)?;
    let meta = |k: &str| loaded.metadata.get(k).cloned().unwrap_or_default();
    if meta("format") != "gradscope-checkpoint-1" {
        bail!("{} is not a gradscope training checkpoint", path.display());
    }
    let saved: SeqModelConfig = serde_json::from_str(&meta("model_config"))
        .with_context(|| format!("{}: unreadable model_config", path.display()))?;
    if &saved != model_cfg {
        let describe = |m: &SeqModelConfig| {
            format!(
                "{} h{} ×{}, input {:?}, {} outputs",
                m.family, m.hidden, m.layers, m.input, m.output_size
            )
        };
        let hint = if (saved.input, saved.output_size) != (model_cfg.input, model_cfg.output_size) {
            " (the input or output size differs: was the tokenizer or the task changed?)"
        } else {
            ""
        };
        bail!(
            "{} was written by a different model ({}) than the config asks for ({}){hint}",
            path.display(),
            describe(&saved),
            describe(model_cfg)
        );
    }
    for (name, var) in named {
        let t = loaded
            .tensors
            .get(&format!("model.{name}"))
            .with_context(|| format!("{}: missing parameter '{name}'", path.display()))?;
        var.set(t).with_context(|| format!("{}: parameter '{name}'", path.display()))?;
    }
    let optim: std::collections::HashMap<String, Tensor> = loaded
        .tensors
        .iter()
        .filter_map(|(k, t)| k.strip_prefix("optim.").map(|n| (n.to_string(), t.clone())))
        .collect();
    optimizer.load_state(&optim).with_context(|| format!("{}: optimiser state", path.display()))?;
    Ok(LoopState {
        step: meta("step").parse().with_context(|| format!("{}: bad step", path.display()))?,
        elapsed: meta("elapsed_seconds").parse().unwrap_or(0.0),
        steps_to_solve: meta("steps_to_solve").parse().ok(),
        lr_scale: meta("lr_scale").parse().unwrap_or(1.0),
        nonfinite_events: meta("nonfinite_events").parse().unwrap_or(0),
        carried: loaded
            .tensors
            .get("tbptt.h")
            .map(|h| RecurrentState { h: h.clone(), c: loaded.tensors.get("tbptt.c").cloned() }),
    })
}
