//! Bench reports: gather run directories' `summary.json` and `metrics.jsonl`, write
//! `results.json`, `results.csv`, `report.md` and learning-curve plots. Reads saved data only,
//! so `gradscope report` merges shards written anywhere.

use super::gradients::{grad_figure, longest_lengths, GradIndex};
use super::grid::{LrSearch, LR_SEARCH};
use crate::plot::{line_chart, LineChart, Series};
use crate::probe::DecayMetrics;
use crate::train::run_dir::{RunDir, StopReason, Summary, SUMMARY};
use crate::util::write_atomic;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One line of the results table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResultRow {
    pub run: String,
    #[serde(flatten)]
    pub summary: Summary,
    #[serde(skip)]
    pub dir: PathBuf,
}

impl ResultRow {
    /// The task's headline metric: accuracy on the answer (copy) or MSE (adding).
    pub fn metric(&self) -> (&'static str, f64) {
        match (self.summary.eval_accuracy, self.summary.eval_mse) {
            (Some(a), _) => ("accuracy", a),
            (_, Some(m)) => ("mse", m),
            _ => ("loss", self.summary.eval_loss),
        }
    }
}

/// Finds finished runs: each path is a run directory, a directory of runs, or a report
/// directory holding `runs/`.
pub fn collect_results(paths: &[PathBuf]) -> Result<Vec<ResultRow>> {
    let mut dirs = Vec::new();
    for p in paths {
        if !p.is_dir() {
            bail!("{} is not a directory", p.display());
        }
        if p.join(SUMMARY).exists() {
            dirs.push(p.clone());
            continue;
        }
        let base = if p.join("runs").is_dir() { p.join("runs") } else { p.clone() };
        let mut found: Vec<PathBuf> = std::fs::read_dir(&base)
            .with_context(|| format!("listing {}", base.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|d| d.join(SUMMARY).exists())
            .collect();
        found.sort();
        dirs.extend(found);
    }
    let mut rows = Vec::new();
    for dir in dirs {
        let summary: Summary = RunDir::new(&dir).read_json(SUMMARY)?;
        let run = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        rows.push(ResultRow { run, summary, dir });
    }
    rows.sort_by(|a, b| {
        (a.summary.task.as_str(), a.summary.seq_len, family_rank(&a.summary.model), a.run.as_str()).cmp(&(
            b.summary.task.as_str(),
            b.summary.seq_len,
            family_rank(&b.summary.model),
            b.run.as_str(),
        ))
    });
    Ok(rows)
}

fn family_rank(model: &str) -> usize {
    ["rnn", "lstm", "gru", "mingru", "minlstm", "lru", "mamba", "gpt"]
        .iter()
        .position(|m| *m == model)
        .unwrap_or(9)
}

/// One (task, T, model) of a report: its seeds' runs, sorted by seed.
pub struct Cell<'a> {
    pub runs: Vec<&'a ResultRow>,
}

impl Cell<'_> {
    fn first(&self) -> &Summary {
        &self.runs[0].summary
    }

    fn solved_count(&self) -> usize {
        self.runs.iter().filter(|r| r.summary.solved).count()
    }

    /// More than half of the seeds solved it.
    pub fn solved(&self) -> bool {
        2 * self.solved_count() > self.runs.len()
    }
}

/// Groups rows into cells (same task, T and model label), in the rows' order.
pub fn cells(rows: &[ResultRow]) -> Vec<Cell<'_>> {
    let mut out: Vec<Cell> = Vec::new();
    for r in rows {
        let key = |s: &Summary| (s.task.clone(), s.seq_len, s.label.clone());
        match out.iter_mut().find(|c| key(c.first()) == key(&r.summary)) {
            Some(c) => c.runs.push(r),
            None => out.push(Cell { runs: vec![r] }),
        }
    }
    for c in &mut out {
        c.runs.sort_by_key(|r| r.summary.seed);
    }
    out
}

/// The table and findings as printed at the end of `bench` and `report`.
pub fn report_text(rows: &[ResultRow], grads: &GradIndex) -> String {
    let mut s = markdown_table(rows, grads);
    s.push('\n');
    for f in findings(rows) {
        s.push_str(&format!("- {f}\n"));
    }
    let extra = super::extra_evaluations_section(rows);
    if !extra.is_empty() {
        s.push_str(&format!("\n{extra}"));
    }
    s
}

/// The results as a Markdown table, one row per cell (also printed by `bench` and `report`).
/// With several seeds, "solved" is the majority's verdict, steps to solve are listed per seed
/// and the final metric is the seeds' range; wall time and tokens/s are the seeds' means. At each
/// task's longest T, the e-folding distance and decades lost of ‖∂L/∂h_t‖ (first layer, loss at
/// the last step) at initialisation → after training.
pub fn markdown_table(rows: &[ResultRow], grads: &GradIndex) -> String {
    let mut s = String::from(
        "| task | T | model | params | lr | seeds | metric | final | baseline | solved | steps to solve | steps | wall (s) | tokens/s | e-folding init → trained | decades lost init → trained |\n\
         |---|---:|---|---:|---:|---:|---|---:|---:|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for cell in cells(rows) {
        let m = cell.first();
        let (name, _) = cell.runs[0].metric();
        let values: Vec<f64> = cell.runs.iter().map(|r| r.metric().1).collect();
        let (lo, hi) =
            values.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(*v), h.max(*v)));
        let n = cell.runs.len();
        let mean =
            |f: &dyn Fn(&Summary) -> f64| cell.runs.iter().map(|r| f(&r.summary)).sum::<f64>() / n as f64;
        let baseline = match name {
            "accuracy" => format!("loss {:.4}", m.baseline),
            _ => format!("{:.4}", m.baseline),
        };
        let diverged = cell.runs.iter().filter(|r| r.summary.stopped == StopReason::Diverged).count();
        let mut solved = match (n, cell.solved()) {
            (1, s) => {
                if s {
                    "yes".to_string()
                } else {
                    "no".to_string()
                }
            }
            (_, s) => format!("{} ({}/{n})", if s { "yes" } else { "no" }, cell.solved_count()),
        };
        if diverged > 0 {
            solved.push_str(&if n == 1 { " (diverged)".into() } else { format!(", {diverged} diverged") });
        }
        let (efold, decades) = match grads.get(m) {
            Some((a, b)) => {
                let e = |d: &Option<DecayMetrics>| d.as_ref().map_or("—".into(), efold_text);
                // JSON has no infinity: a curve that reaches 0 (∞ decades) reads back as NaN.
                let dec = |d: &Option<DecayMetrics>| match d {
                    Some(d) if d.decades.is_finite() => format!("{:.2}", d.decades),
                    Some(_) => "∞".into(),
                    None => "—".into(),
                };
                (format!("{} → {}", e(a), e(b)), format!("{} → {}", dec(a), dec(b)))
            }
            None => ("".into(), "".into()),
        };
        let to_solve: Vec<String> = cell
            .runs
            .iter()
            .map(|r| r.summary.steps_to_solve.map_or("—".into(), |s| s.to_string()))
            .collect();
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} | {:.0} | {} | {} |\n",
            m.task,
            m.seq_len,
            m.model,
            m.parameters,
            m.lr.map_or("—".into(), |lr| format!("{lr:e}")),
            n,
            name,
            if values.iter().any(|v| v.is_nan()) {
                "NaN".into()
            } else if n == 1 {
                format!("{lo:.4}")
            } else {
                format!("{lo:.4}–{hi:.4}")
            },
            baseline,
            solved,
            to_solve.join(", "),
            cell.runs.iter().map(|r| r.summary.steps).max().unwrap_or(0),
            mean(&|s| s.wall_seconds),
            mean(&|s| s.tokens_per_second),
            efold,
            decades,
        ));
    }
    s
}

fn csv(rows: &[ResultRow]) -> String {
    let mut s = String::from(
        "run,task,seq_len,model,hidden,layers,parameters,lr,seed,eval_loss,eval_accuracy,eval_mse,baseline,solved,steps_to_solve,steps,wall_seconds,tokens_per_second\n",
    );
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v}"));
    for r in rows {
        let m = &r.summary;
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            r.run,
            m.task,
            m.seq_len,
            m.model,
            m.hidden,
            m.layers,
            m.parameters,
            opt(m.lr),
            m.seed.map_or(String::new(), |s| s.to_string()),
            m.eval_loss,
            opt(m.eval_accuracy),
            opt(m.eval_mse),
            m.baseline,
            m.solved,
            m.steps_to_solve.map_or(String::new(), |s| s.to_string()),
            m.steps,
            m.wall_seconds,
            m.tokens_per_second
        ));
    }
    s
}

/// A curve's e-folding distance, "grows" for a rising one, "∞" for a flat one.
fn efold_text(m: &DecayMetrics) -> String {
    match (m.e_folding, m.exploding) {
        (_, true) => "grows".into(),
        (Some(e), _) if e >= 1e4 => format!("{e:.1e}"),
        (Some(e), _) if e >= 100.0 => format!("{e:.0}"),
        (Some(e), _) => format!("{e:.2}"),
        (None, _) => "∞".into(),
    }
}

/// Per task, the longest T each model solved (by the majority of its seeds): the story of the
/// suite in one line per model.
pub fn findings(rows: &[ResultRow]) -> Vec<String> {
    let mut by: BTreeMap<(String, String), (Option<usize>, usize)> = BTreeMap::new();
    for cell in cells(rows) {
        let m = cell.first();
        let e = by.entry((m.task.clone(), m.model.clone())).or_insert((None, 0));
        e.1 = e.1.max(m.seq_len);
        if cell.solved() {
            e.0 = Some(e.0.map_or(m.seq_len, |s: usize| s.max(m.seq_len)));
        }
    }
    by.into_iter()
        .map(|((task, model), (solved, longest))| match solved {
            Some(t) => format!("{task}: {model} solved up to T={t} (longest tried {longest})"),
            None => format!("{task}: {model} solved no length tried (up to T={longest})"),
        })
        .collect()
}

/// Writes `results.json`, `results.csv`, `report.md` and `curves-<task>.{png,svg}` into `out`.
pub fn write_report(rows: &[ResultRow], out: &Path) -> Result<()> {
    if rows.is_empty() {
        bail!("no finished runs (no summary.json) to report");
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    write_atomic(&out.join("results.json"), serde_json::to_string_pretty(rows)?.as_bytes())?;
    write_atomic(&out.join("results.csv"), csv(rows).as_bytes())?;
    let grads = GradIndex::load(out, rows)?;
    let mut md = String::from("# gradscope benchmark report\n\n");
    md.push_str(&gradient_section(rows, out));
    md.push_str("## Results\n\n");
    md.push_str(&markdown_table(rows, &grads));
    md.push_str("\n## Findings\n\n");
    for f in findings(rows) {
        md.push_str(&format!("- {f}\n"));
    }
    let extra = super::extra_evaluations_section(rows);
    if !extra.is_empty() {
        md.push_str(&format!("\n## Other lengths and distributions\n\n{extra}"));
    }
    md.push_str(&lr_section(rows)?);
    let mut tasks: Vec<String> = rows.iter().map(|r| r.summary.task.clone()).collect();
    tasks.dedup();
    md.push_str("\n## Learning curves\n\n");
    for task in &tasks {
        let mut chart = learning_curves(rows, task)?;
        // A diverged run's metrics are all NaN: it has no curve, and the table says so.
        let drawable = |y: f64| y.is_finite() && (!chart.log_y || y > 0.0);
        chart.series.retain(|s| s.y.iter().any(|&y| drawable(y)));
        if chart.series.is_empty() {
            md.push_str(&format!("No curve for {task}: every run's held-out metric is non-finite.\n\n"));
            continue;
        }
        let stem = out.join(format!("curves-{task}"));
        line_chart(&chart, &stem)?;
        md.push_str(&format!("![{task}](curves-{task}.png)\n\n"));
    }
    write_atomic(&out.join("report.md"), md.as_bytes())
}

/// The figures a reader should see first: per task at its longest T, the trained models'
/// ‖∂L/∂h_t‖ against distance, then the same at initialisation.
fn gradient_section(rows: &[ResultRow], out: &Path) -> String {
    let mut md = String::new();
    for (task, seq_len) in longest_lengths(rows) {
        for (when, what) in [("trained", "after training"), ("init", "at initialisation")] {
            let figure = grad_figure(&task, seq_len, when);
            if out.join(&figure).exists() {
                md.push_str(&format!("![{task} T={seq_len}: gradient vs distance {what}]({figure})\n\n"));
            }
        }
    }
    if !md.is_empty() {
        md.insert_str(
            0,
            "## How far back the training signal reaches\n\n‖∂L/∂h_t‖ against the distance from the last step's loss, \
             mean over 32 held-out sequences (band: 10–90 %), for every model at each task's longest length.\n\n",
        );
    }
    md
}

/// Each cell's learning-rate search, if the suite had a grid: every rate's trial and the choice.
fn lr_section(rows: &[ResultRow]) -> Result<String> {
    let mut lines = Vec::new();
    for cell in cells(rows) {
        let path = cell.runs[0].dir.join(LR_SEARCH);
        if !path.exists() {
            continue;
        }
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let search: LrSearch =
            serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        let trials: Vec<String> = search
            .trials
            .iter()
            .map(|t| match (&t.failed, t.steps_to_solve) {
                (Some(why), _) => {
                    format!("{:e}: failed ({})", t.lr, why.chars().take(100).collect::<String>())
                }
                (None, Some(k)) => format!("{:e}: solved at step {k}", t.lr),
                (None, None) => format!("{:e}: loss {:.4} after {} steps", t.lr, t.eval_loss, t.steps),
            })
            .collect();
        let m = cell.first();
        let how = match &search.from {
            Some(from) => format!("the rate {from} chose"),
            None => trials.join("; "),
        };
        lines.push(format!("- {} T={} {}: **{:e}** ({how})", m.task, m.seq_len, m.model, search.chosen));
    }
    if lines.is_empty() {
        return Ok(String::new());
    }
    Ok(format!(
        "\n## Learning rates\n\nEach rate of the grid trained for a share of the run's budget; kept: {}.\n\n{}\n",
        super::LR_CRITERION,
        lines.join("\n")
    ))
}

fn learning_curves(rows: &[ResultRow], task: &str) -> Result<LineChart> {
    let mut series = Vec::new();
    let mut baseline = None;
    let mut metric = "mse";
    let seeded = |r: &ResultRow| {
        rows.iter()
            .filter(|o| {
                (&o.summary.task, o.summary.seq_len, &o.summary.label)
                    == (&r.summary.task, r.summary.seq_len, &r.summary.label)
            })
            .count()
            > 1
    };
    for r in rows.iter().filter(|r| r.summary.task == task) {
        let records = RunDir::new(&r.dir).read_metrics()?;
        let (name, _) = r.metric();
        metric = name;
        let y: Vec<f64> = records
            .iter()
            .map(|m| match name {
                "accuracy" => m.eval_accuracy.unwrap_or(f64::NAN),
                "mse" => m.eval_mse.unwrap_or(f64::NAN),
                _ => m.eval_loss,
            })
            .collect();
        if name == "mse" {
            baseline = Some((r.summary.baseline, format!("predict 1 (MSE {:.3})", r.summary.baseline)));
        }
        series.push(Series {
            label: match r.summary.seed.filter(|_| seeded(r)) {
                Some(seed) => format!("{} T={} seed {seed}", r.summary.model, r.summary.seq_len),
                None => format!("{} T={}", r.summary.model, r.summary.seq_len),
            },
            x: records.iter().map(|m| m.step as f64).collect(),
            y,
            band: None,
        });
    }
    let (y_label, log_y) = match metric {
        "accuracy" => ("eval accuracy on the recalled symbols", false),
        _ => ("eval MSE (log scale)", true),
    };
    Ok(LineChart {
        title: format!("{task}: held-out {metric} during training"),
        x_label: "training step".into(),
        y_label: y_label.into(),
        log_y,
        series,
        hline: baseline,
    })
}
