//! Bench reports: gather run directories' `summary.json` and `metrics.jsonl`, write
//! `results.json`, `results.csv`, `report.md` and learning-curve plots. Reads saved data only,
//! so `gradscope report` merges shards written anywhere.

use crate::plot::{line_chart, LineChart, Series};
use crate::train::run_dir::{RunDir, Summary, SUMMARY};
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
    ["rnn", "lstm", "gru", "gpt"].iter().position(|m| *m == model).unwrap_or(9)
}

/// The table and findings as printed at the end of `bench` and `report`.
pub fn report_text(rows: &[ResultRow]) -> String {
    let mut s = markdown_table(rows);
    s.push('\n');
    for f in findings(rows) {
        s.push_str(&format!("- {f}\n"));
    }
    s
}

/// The results as a Markdown table (also printed by `bench` and `report`).
pub fn markdown_table(rows: &[ResultRow]) -> String {
    let mut s = String::from(
        "| task | T | model | params | metric | final | baseline | solved | steps to solve | steps | wall (s) | tokens/s |\n\
         |---|---:|---|---:|---|---:|---:|---|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let m = &r.summary;
        let (name, value) = r.metric();
        let baseline = match name {
            "accuracy" => format!("loss {:.4}", m.baseline),
            _ => format!("{:.4}", m.baseline),
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.4} | {} | {} | {} | {} | {:.1} | {:.0} |\n",
            m.task,
            m.seq_len,
            m.model,
            m.parameters,
            name,
            value,
            baseline,
            if m.solved { "yes" } else { "no" },
            m.steps_to_solve.map_or("—".into(), |s| s.to_string()),
            m.steps,
            m.wall_seconds,
            m.tokens_per_second
        ));
    }
    s
}

fn csv(rows: &[ResultRow]) -> String {
    let mut s = String::from(
        "run,task,seq_len,model,hidden,layers,parameters,eval_loss,eval_accuracy,eval_mse,baseline,solved,steps_to_solve,steps,wall_seconds,tokens_per_second\n",
    );
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v}"));
    for r in rows {
        let m = &r.summary;
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            r.run,
            m.task,
            m.seq_len,
            m.model,
            m.hidden,
            m.layers,
            m.parameters,
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

/// Per task, the longest T each model solved (the story of the suite in one line per model).
pub fn findings(rows: &[ResultRow]) -> Vec<String> {
    let mut by: BTreeMap<(String, String), (Option<usize>, usize)> = BTreeMap::new();
    for r in rows {
        let e = by.entry((r.summary.task.clone(), r.summary.model.clone())).or_insert((None, 0));
        e.1 = e.1.max(r.summary.seq_len);
        if r.summary.solved {
            e.0 = Some(e.0.map_or(r.summary.seq_len, |s: usize| s.max(r.summary.seq_len)));
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
    let mut md = String::from("# gradscope benchmark report\n\n");
    md.push_str(&markdown_table(rows));
    md.push_str("\n## Findings\n\n");
    for f in findings(rows) {
        md.push_str(&format!("- {f}\n"));
    }
    let mut tasks: Vec<String> = rows.iter().map(|r| r.summary.task.clone()).collect();
    tasks.dedup();
    md.push_str("\n## Learning curves\n\n");
    for task in &tasks {
        let chart = learning_curves(rows, task)?;
        let stem = out.join(format!("curves-{task}"));
        line_chart(&chart, &stem)?;
        md.push_str(&format!("![{task}](curves-{task}.png)\n\n"));
    }
    write_atomic(&out.join("report.md"), md.as_bytes())
}

fn learning_curves(rows: &[ResultRow], task: &str) -> Result<LineChart> {
    let mut series = Vec::new();
    let mut baseline = None;
    let mut metric = "mse";
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
            label: format!("{} T={}", r.summary.model, r.summary.seq_len),
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
