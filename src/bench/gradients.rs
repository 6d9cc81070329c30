//! The gradient view of a bench report: for every model at the longest length of each task,
//! ‖∂L/∂h_t‖ against distance at initialisation and after training, saved under `out/grad/` for
//! the report to draw and tabulate.

use super::report::{cells, ResultRow};
use crate::probe::report::{write_probe_outputs, CURVES_JSON, PLOT_STEM};
use crate::probe::{DecayMetrics, LossKind, Probe};
use crate::train::run_dir::CONFIG;
use crate::train::{probe_gradients, Summary, TrainConfig};
use anyhow::{Context, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Held-out sequences per probe: the `grad` command's default.
const PROBE_BATCH: usize = 32;

/// `out/grad/<task>-T<T>-<when>`, when = `init` or `trained`.
pub fn grad_dir(out: &Path, task: &str, seq_len: usize, when: &str) -> PathBuf {
    out.join("grad").join(format!("{task}-T{seq_len}-{when}"))
}

/// The image a report embeds for one probe directory, relative to the report.
pub fn grad_figure(task: &str, seq_len: usize, when: &str) -> String {
    format!("grad/{task}-T{seq_len}-{when}/{PLOT_STEM}.png")
}

/// A run's label without its task and length (`lstm h64`): unique within one (task, T).
pub fn model_name(s: &Summary) -> String {
    let suffix = format!(" {} T={}", s.task, s.seq_len);
    s.label.strip_suffix(&suffix).unwrap_or(&s.label).to_string()
}

/// Per task, the longest T in `rows`.
pub fn longest_lengths(rows: &[ResultRow]) -> BTreeMap<String, usize> {
    let mut longest = BTreeMap::new();
    for r in rows.iter().filter(|r| r.summary.task != "text") {
        let t = longest.entry(r.summary.task.clone()).or_insert(0);
        *t = (*t).max(r.summary.seq_len);
    }
    longest
}

/// Probes every cell at each task's longest T (its first seed's run), fresh from the run's
/// seeded initialisation and as trained; the loss at the last step, as `grad` does by default.
pub fn probe_longest(rows: &[ResultRow], out: &Path) -> Result<()> {
    for (task, seq_len) in longest_lengths(rows) {
        let mut init = Vec::new();
        let mut trained = Vec::new();
        for cell in cells(rows).into_iter().filter(|c| c.runs[0].summary.task == task) {
            let run = cell.runs[0];
            if run.summary.seq_len != seq_len {
                continue;
            }
            let cfg = TrainConfig::from_toml_file(&run.dir.join(CONFIG))
                .with_context(|| format!("the config of {}", run.dir.display()))?;
            let name = model_name(&run.summary);
            init.push(probe_gradients(&name, &cfg, None, PROBE_BATCH, LossKind::Last)?);
            trained.push(probe_gradients(&name, &cfg, Some(&run.dir), PROBE_BATCH, LossKind::Last)?);
        }
        for (when, probes, what) in
            [("init", init, "at initialisation"), ("trained", trained, "after training")]
        {
            let title = format!("Gradient vs distance: {task} T={seq_len}, {what}, loss at the last step");
            write_probe_outputs(&probes, &grad_dir(out, &task, seq_len, when), &title)?;
        }
    }
    Ok(())
}

/// The decay metrics of the saved probes, by (task, T, [`model_name`]): the first curve of each
/// model (the layer nearest the input), at initialisation and after training.
#[derive(Default)]
pub struct GradIndex {
    pub metrics: BTreeMap<(String, usize, String), InitAndTrained>,
}

/// A curve's decay metrics at initialisation and after training, where measured.
pub type InitAndTrained = (Option<DecayMetrics>, Option<DecayMetrics>);

impl GradIndex {
    pub fn load(out: &Path, rows: &[ResultRow]) -> Result<Self> {
        let mut index = GradIndex::default();
        for (task, seq_len) in longest_lengths(rows) {
            for (k, when) in ["init", "trained"].into_iter().enumerate() {
                let path = grad_dir(out, &task, seq_len, when).join(CURVES_JSON);
                if !path.exists() {
                    continue;
                }
                let text =
                    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
                let probes: Vec<Probe> =
                    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
                for p in probes {
                    let Some(curve) = p.curves.first() else { continue };
                    let e = index.metrics.entry((task.clone(), seq_len, p.model.clone())).or_default();
                    *(if k == 0 { &mut e.0 } else { &mut e.1 }) = Some(curve.metrics.clone());
                }
            }
        }
        Ok(index)
    }

    pub fn get(&self, run: &Summary) -> Option<&InitAndTrained> {
        self.metrics.get(&(run.task.clone(), run.seq_len, model_name(run)))
    }
}
