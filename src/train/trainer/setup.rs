//! Opening a run: a fresh run directory (config, model.json, the task's artifacts, a step-0
//! checkpoint) or a resumed one, and the model, optimiser and held-out sets the loop reads.

use super::state::{restore, save_checkpoint, LoopState};
use super::{eval_set, progress_bar, RunOptions, Trainer, Window};
use crate::device::parse_device;
use crate::train::config::TrainConfig;
use crate::train::run_dir::{RunDir, CHECKPOINT, CONFIG, MODEL_CONFIG, SUMMARY};
use crate::train::Optimizer;
use anyhow::{bail, Context, Result};
use candle_core::Var;
use candle_nn::VarMap;
use std::time::Instant;

impl<'a> Trainer<'a> {
    pub(super) fn open(cfg: &'a TrainConfig, opts: &'a RunOptions) -> Result<Self> {
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

        let state = if opts.resume {
            let state = restore(&dir, &model_cfg, &named, &mut optimizer, &device)?;
            // Half-written files of the process that was killed (never read: renames are atomic).
            crate::util::remove_stale_temporaries(&opts.out)?;
            dir.truncate_records(state.step)?;
            // Until this run finishes, the directory must not look finished.
            let _ = std::fs::remove_file(dir.path(SUMMARY));
            state
        } else {
            std::fs::create_dir_all(&opts.out).with_context(|| format!("creating {}", opts.out.display()))?;
            crate::util::write_atomic(&dir.path(CONFIG), cfg.to_toml()?.as_bytes())?;
            dir.write_json(MODEL_CONFIG, &model_cfg)?;
            task.save_artifacts(&opts.out)?;
            let fresh = LoopState::fresh();
            // Step 0 is a good state to roll back to before the first evaluation.
            save_checkpoint(&dir, &varmap, &named, &optimizer, &fresh)?;
            fresh
        };

        let evalset = eval_set(task.as_ref(), cfg.eval_size, cfg.batch, &device)?;
        // A fixed slice of the held-out set, so curves at different steps compare like with like.
        let probe_batch = match cfg.probe_every {
            Some(_) => Some(eval_set(task.as_ref(), 16.min(cfg.eval_size), 16, &device)?.remove(0)),
            None => None,
        };
        let (start_step, elapsed_before) = (state.step, state.elapsed);
        Ok(Trainer {
            cfg,
            opts,
            bar: progress_bar(cfg, opts.quiet, start_step),
            dir,
            device,
            task,
            model_cfg,
            varmap,
            model,
            named,
            params,
            optimizer,
            schedule,
            state,
            evalset,
            probe_batch,
            step: start_step,
            last_good: start_step,
            start_step,
            elapsed_before,
            started: Instant::now(),
            window: Window::default(),
            last: None,
            skipped_in_a_row: 0,
        })
    }
}
