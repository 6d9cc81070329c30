//! An experiment's report directory: `results.json` (every measured number), `report.md` (the
//! claim, the findings, the table, the figures) and the figures as PNG + SVG.

use super::depth::{DepthRun, DepthTraining};
use super::fmt_num;
use super::recurrent::{RecurrentRun, RecurrentSettings};
use crate::plot::{line_chart, LineChart, Series};
use crate::probe::report::curves_chart;
use crate::probe::Curve;
use crate::util::write_atomic;
use anyhow::Result;
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const RESULTS_JSON: &str = "results.json";
pub const REPORT_MD: &str = "report.md";

/// How the measured numbers stand against the literature's claim, by the finding's criterion.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Agrees,
    Contradicts,
    /// Some of the claim's parts hold and some do not.
    Mixed,
    /// The measurement cannot decide (e.g. nothing trained within the budget).
    Inconclusive,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Agrees => "agrees",
            Verdict::Contradicts => "contradicts",
            Verdict::Mixed => "mixed",
            Verdict::Inconclusive => "inconclusive",
        }
    }

    /// Agrees if every part agrees, contradicts if every part contradicts, mixed otherwise.
    pub fn combine(parts: &[bool]) -> Verdict {
        match (parts.iter().all(|&p| p), parts.iter().all(|&p| !p)) {
            _ if parts.is_empty() => Verdict::Inconclusive,
            (true, _) => Verdict::Agrees,
            (_, true) => Verdict::Contradicts,
            _ => Verdict::Mixed,
        }
    }
}

/// One finding: a sentence built from the measured numbers and, for a claim, the verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// What was measured, with the numbers in it.
    pub evidence: String,
    /// The literature's claim being judged ("sigmoid makes the gradient vanish with depth").
    pub claim: Option<String>,
    pub verdict: Option<Verdict>,
    /// The stated rule that turned the numbers into the verdict.
    pub criterion: Option<String>,
}

impl Finding {
    pub fn judged(claim: &str, verdict: Verdict, criterion: &str, evidence: String) -> Self {
        Self {
            evidence,
            claim: Some(claim.into()),
            verdict: Some(verdict),
            criterion: Some(criterion.into()),
        }
    }

    pub fn measured(evidence: String) -> Self {
        Self { evidence, claim: None, verdict: None, criterion: None }
    }

    /// The finding as one paragraph of markdown.
    pub fn sentence(&self) -> String {
        let mut s = self.evidence.trim_end_matches('.').to_string();
        s.push('.');
        if let (Some(claim), Some(v)) = (&self.claim, self.verdict) {
            let verb = match v {
                Verdict::Agrees => "**Agrees** with",
                Verdict::Contradicts => "**Contradicts**",
                Verdict::Mixed => "**Partly agrees** with",
                Verdict::Inconclusive => "**Does not settle**",
            };
            s.push_str(&format!(" {verb} the literature's claim that {claim}"));
            if let Some(c) = &self.criterion {
                s.push_str(&format!(" (criterion: {c})"));
            }
            s.push('.');
        }
        s
    }
}

/// A figure written next to the report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// File stem: `<stem>.png` and `<stem>.svg`.
    pub stem: String,
    pub caption: String,
}

/// Everything one experiment measured and concluded; `results.json` is this, serialised.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExperimentReport {
    pub name: String,
    pub title: String,
    /// The claim under test, in the literature's words.
    pub claim: String,
    /// The command that reproduces the report.
    pub command: String,
    /// `quick` (the default) or `full`.
    pub size: String,
    pub seed: u64,
    pub wall_seconds: f64,
    pub depth_training: Option<DepthTraining>,
    pub depth: Vec<DepthRun>,
    pub recurrent_settings: Option<RecurrentSettings>,
    pub recurrent: Vec<RecurrentRun>,
    pub findings: Vec<Finding>,
    pub figures: Vec<Figure>,
    /// Caveats worth reading next to the numbers.
    pub notes: Vec<String>,
}

fn opt(v: Option<f64>) -> String {
    v.map_or("—".into(), fmt_num)
}

/// One row per MLP config.
pub fn depth_table(runs: &[DepthRun]) -> String {
    let mut s = String::from(
        "| config | depth | ‖∂L/∂h₁‖ / ‖∂L/∂h_last‖ at init | max/min over layers at init | ‖∂L/∂W₁‖ / ‖∂L/∂W_last‖ at init | h-ratio after training | eval loss / baseline | steps | wall (s) |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in runs {
        let trained = match (r.diverged_at, r.relative_loss()) {
            (Some(step), _) => format!("diverged at step {step}"),
            (None, Some(rel)) => fmt_num(rel),
            (None, None) => "—".into(),
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.1} |\n",
            r.label,
            r.config.depth,
            fmt_num(r.ratio_init),
            fmt_num(r.init_profile.spread()),
            fmt_num(r.init_profile.weight_first_to_last()),
            opt(r.ratio_trained),
            trained,
            r.steps,
            r.wall_seconds
        ));
    }
    s
}

fn curve_cell(c: Option<&Curve>, f: impl Fn(&Curve) -> String) -> String {
    c.map_or("—".into(), f)
}

fn trend(c: &Curve) -> String {
    let m = &c.metrics;
    if m.exploding {
        "exploding".into()
    } else if m.decades.abs() < 0.5 {
        "flat".into()
    } else if m.decades > 0.0 {
        "vanishing".into()
    } else {
        "growing".into()
    }
}

/// One row per recurrent config.
pub fn recurrent_table(runs: &[RecurrentRun]) -> String {
    let mut s = String::from(
        "| config | task | decades lost over T at init | e-folding at init (steps) | trend at init | decades lost after training | eval loss | eval loss / baseline | solved | steps | wall (s) |\n\
         |---|---|---:|---:|---|---:|---:|---:|---|---:|---:|\n",
    );
    for r in runs {
        let init = r.init_curve();
        let (loss, rel, solved, steps) = match (&r.summary, &r.diverged) {
            (_, Some(_)) => (
                "diverged".to_string(),
                "—".to_string(),
                "no".to_string(),
                r.metrics.last().map_or("—".into(), |m| format!("≤{}", m.step)),
            ),
            (Some(sm), None) => (
                fmt_num(sm.eval_loss),
                opt(r.relative_loss()),
                if sm.solved { "yes".into() } else { "no".into() },
                sm.steps.to_string(),
            ),
            (None, None) => ("—".into(), "—".into(), "—".into(), "—".into()),
        };
        s.push_str(&format!(
            "| {} | {} T={} | {} | {} | {} | {} | {} | {} | {} | {} | {:.1} |\n",
            r.label,
            r.config.task,
            r.config.seq_len,
            curve_cell(init, |c| fmt_num(c.metrics.decades)),
            curve_cell(init, |c| opt(c.metrics.e_folding)),
            curve_cell(init, trend),
            curve_cell(r.trained_curve(), |c| fmt_num(c.metrics.decades)),
            loss,
            rel,
            solved,
            steps,
            r.wall_seconds
        ));
    }
    s
}

/// Draws `chart` unless none of its series has a drawable point; keeps the series that do.
fn draw(
    mut chart: LineChart,
    out: &Path,
    stem: &str,
    caption: String,
    figures: &mut Vec<Figure>,
) -> Result<()> {
    let drawable = |y: f64| y.is_finite() && (!chart.log_y || y > 0.0);
    chart.series.retain(|s| s.y.iter().any(|&y| drawable(y)));
    if chart.series.is_empty() {
        return Ok(());
    }
    line_chart(&chart, &out.join(stem))?;
    figures.push(Figure { stem: stem.into(), caption });
    Ok(())
}

/// Per-layer gradient norms, ratio against depth, loss curves and the ratio during training.
pub fn depth_figures(runs: &[DepthRun], name: &str, out: &Path) -> Result<Vec<Figure>> {
    let mut figs = Vec::new();
    let Some(max_depth) = runs.iter().map(|r| r.config.depth).max() else { return Ok(figs) };
    let deepest: Vec<&DepthRun> = runs.iter().filter(|r| r.config.depth == max_depth).collect();
    let per_layer = |pick: &dyn Fn(&DepthRun) -> Option<Vec<f64>>| -> Vec<Series> {
        deepest
            .iter()
            .filter_map(|r| {
                pick(r).map(|h| Series::new(r.label.clone(), (1..=h.len()).map(|l| l as f64).collect(), h))
            })
            .collect()
    };
    let layer_chart = |title: String, series| LineChart {
        title,
        x_label: "hidden layer l (1 = nearest the input)".into(),
        y_label: "‖∂L/∂h_l‖ (log scale)".into(),
        log_y: true,
        series,
        hline: None,
    };
    draw(
        layer_chart(
            format!("{name}: gradient per layer at initialisation, depth {max_depth}"),
            per_layer(&|r| Some(r.init_profile.hidden.clone())),
        ),
        out,
        "grad-per-layer-init",
        format!("‖∂L/∂h_l‖ per hidden layer at initialisation (depth {max_depth}), one line per config"),
        &mut figs,
    )?;
    draw(
        layer_chart(
            format!("{name}: gradient per layer after training, depth {max_depth}"),
            per_layer(&|r| r.trained_profile.as_ref().map(|p| p.hidden.clone())),
        ),
        out,
        "grad-per-layer-trained",
        format!("‖∂L/∂h_l‖ per hidden layer after training (depth {max_depth})"),
        &mut figs,
    )?;
    draw(
        LineChart {
            title: format!("{name}: weight gradient per layer at initialisation, depth {max_depth}"),
            x_label: "weight layer l (1 = nearest the input)".into(),
            y_label: "‖∂L/∂W_l‖ (log scale)".into(),
            log_y: true,
            series: deepest
                .iter()
                .map(|r| {
                    let w = &r.init_profile.weights;
                    Series::new(r.label.clone(), (1..=w.len()).map(|l| l as f64).collect(), w.clone())
                })
                .collect(),
            hline: None,
        },
        out,
        "weight-grad-per-layer-init",
        format!("‖∂L/∂W_l‖ per weight layer at initialisation (depth {max_depth})"),
        &mut figs,
    )?;

    let mut depths: Vec<usize> = runs.iter().map(|r| r.config.depth).collect();
    depths.sort();
    depths.dedup();
    if depths.len() > 1 {
        let mut variants: Vec<String> = Vec::new();
        for r in runs {
            let v = r.config.variant_label();
            if !variants.contains(&v) {
                variants.push(v);
            }
        }
        let series = variants
            .iter()
            .map(|v| {
                let mut pts: Vec<(f64, f64)> = runs
                    .iter()
                    .filter(|r| &r.config.variant_label() == v)
                    .map(|r| (r.config.depth as f64, r.ratio_init))
                    .collect();
                pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                Series::new(v.clone(), pts.iter().map(|p| p.0).collect(), pts.iter().map(|p| p.1).collect())
            })
            .collect();
        draw(
            LineChart {
                title: format!("{name}: first-layer gradient relative to the last, against depth"),
                x_label: "depth (weight layers)".into(),
                y_label: "‖∂L/∂h₁‖ / ‖∂L/∂h_last‖ at init (log scale)".into(),
                log_y: true,
                series,
                hline: Some((1.0, "no decay".into())),
            },
            out,
            "ratio-vs-depth",
            "First hidden layer's gradient norm over the last one's at initialisation, per depth".into(),
            &mut figs,
        )?;
    }

    let trained: Vec<&DepthRun> = runs.iter().filter(|r| r.curve.len() > 1).collect();
    if !trained.is_empty() {
        let baseline = trained[0].baseline;
        let series = trained
            .iter()
            .map(|r| {
                let steps = r.curve.iter().map(|p| p.step as f64).collect();
                Series::new(r.label.clone(), steps, r.curve.iter().map(|p| p.eval_loss).collect())
            })
            .collect();
        draw(
            held_out_loss_chart(name, series, Some((baseline, "input-blind baseline".into()))),
            out,
            "loss",
            "Held-out loss against training step".into(),
            &mut figs,
        )?;
        draw(
            LineChart {
                title: format!("{name}: first/last-layer gradient ratio during training"),
                x_label: "training step".into(),
                y_label: "‖∂L/∂h₁‖ / ‖∂L/∂h_last‖ (log scale)".into(),
                log_y: true,
                series: trained
                    .iter()
                    .map(|r| {
                        Series::new(
                            r.label.clone(),
                            r.curve.iter().map(|p| p.step as f64).collect(),
                            r.curve.iter().map(|p| p.first_to_last).collect(),
                        )
                    })
                    .collect(),
                hline: Some((1.0, "no decay".into())),
            },
            out,
            "ratio-during-training",
            "First hidden layer's gradient over the last one's, on a fixed batch, during training".into(),
            &mut figs,
        )?;
    }
    Ok(figs)
}

/// Gradient against distance at init and after training, and the learning curves.
pub fn recurrent_figures(runs: &[RecurrentRun], name: &str, out: &Path) -> Result<Vec<Figure>> {
    let mut figs = Vec::new();
    let init: Vec<&Curve> = runs.iter().filter_map(|r| r.init_curve()).collect();
    if !init.is_empty() {
        let mut chart = curves_chart(&init, &format!("{name}: gradient vs distance at initialisation"));
        for (s, r) in chart.series.iter_mut().zip(runs.iter().filter(|r| r.init_curve().is_some())) {
            s.label = r.label.clone();
        }
        draw(
            chart,
            out,
            "grad-vs-distance-init",
            "‖∂L/∂h_t‖ (last layer; loss at the last step) against distance at initialisation; band: 10–90 % of sequences".into(),
            &mut figs,
        )?;
    }
    let trained: Vec<(&RecurrentRun, &Curve)> =
        runs.iter().filter_map(|r| r.trained_curve().map(|c| (r, c))).collect();
    if !trained.is_empty() {
        let curves: Vec<&Curve> = trained.iter().map(|(_, c)| *c).collect();
        let mut chart = curves_chart(&curves, &format!("{name}: gradient vs distance after training"));
        for (s, (r, _)) in chart.series.iter_mut().zip(&trained) {
            s.label = r.label.clone();
        }
        draw(
            chart,
            out,
            "grad-vs-distance-trained",
            "‖∂L/∂h_t‖ against distance after training".into(),
            &mut figs,
        )?;
    }
    let with_metrics: Vec<&RecurrentRun> = runs.iter().filter(|r| !r.metrics.is_empty()).collect();
    if !with_metrics.is_empty() {
        let baseline = with_metrics[0].baseline;
        let same = with_metrics.iter().all(|r| (r.baseline - baseline).abs() < 1e-12);
        let series = with_metrics
            .iter()
            .map(|r| {
                let steps = r.metrics.iter().map(|m| m.step as f64).collect();
                Series::new(r.label.clone(), steps, r.metrics.iter().map(|m| m.eval_loss).collect())
            })
            .collect();
        draw(
            held_out_loss_chart(name, series, same.then(|| (baseline, "memoryless baseline".into()))),
            out,
            "loss",
            "Held-out loss against training step".into(),
            &mut figs,
        )?;
        draw(
            LineChart {
                title: format!("{name}: gradient norm during training"),
                x_label: "training step".into(),
                y_label: "global ‖∂L/∂θ‖ before clipping, 50-step mean (log scale)".into(),
                log_y: true,
                series: with_metrics
                    .iter()
                    .map(|r| {
                        Series::new(
                            r.label.clone(),
                            r.metrics.iter().map(|m| m.step as f64).collect(),
                            r.metrics.iter().map(|m| m.grad_norm).collect(),
                        )
                    })
                    .collect(),
                hline: None,
            },
            out,
            "grad-norm",
            "Global gradient norm (before clipping) against training step, averaged between evaluations"
                .into(),
            &mut figs,
        )?;
    }
    Ok(figs)
}

/// The markdown report.
pub fn markdown(r: &ExperimentReport) -> String {
    let mut s = format!("# gradscope lab: {}\n\n{}\n\n", r.name, r.title);
    s.push_str(&format!("**Claim under test:** {}\n\n", r.claim));
    s.push_str(&format!(
        "Command: `{}` ({} size, seed {}); wall time {:.0} s.\n\n",
        r.command, r.size, r.seed, r.wall_seconds
    ));
    s.push_str("## Findings\n\n");
    for f in &r.findings {
        s.push_str(&format!("- {}\n", f.sentence()));
    }
    s.push_str("\n## Results\n\n");
    if !r.depth.is_empty() {
        s.push_str(&depth_table(&r.depth));
        s.push('\n');
    }
    if !r.recurrent.is_empty() {
        s.push_str(&recurrent_table(&r.recurrent));
        s.push('\n');
    }
    if !r.figures.is_empty() {
        s.push_str("## Figures\n\n");
        for f in &r.figures {
            s.push_str(&format!(
                "![{}]({}.png)\n\n{} ([SVG]({}.svg))\n\n",
                f.caption, f.stem, f.caption, f.stem
            ));
        }
    }
    s.push_str("## Settings\n\n");
    if let Some(t) = &r.depth_training {
        s.push_str(&format!(
            "- MLPs: task {}, {} optimiser at lr {}, batch {}, {} steps{}{}; gradients measured on a fixed batch of {} held-out examples; taps on every hidden representation h_l (a zero tensor added to h_l, whose gradient is ∂L/∂h_l).\n",
            t.task.name(),
            t.optimizer,
            t.lr,
            t.batch,
            t.steps,
            t.clip.map_or(String::new(), |c| format!(", gradient norm clipped to {c}")),
            t.max_seconds.map_or(String::new(), |m| format!(", at most {m} s per config")),
            t.probe_size
        ));
        s.push_str("- Gradients are float32: norms below ~1e-38 are subnormal (few significant digits) and 0 means the gradient underflowed.\n");
    }
    if let Some(rs) = &r.recurrent_settings {
        s.push_str(&format!(
            "- Recurrent runs: `gradscope train` run directories under `runs/`; gradients measured with the loss at the last step on {} held-out sequences{}.\n",
            rs.probe_batch,
            rs.max_seconds.map_or(String::new(), |m| format!("; at most {m} s of training per config"))
        ));
    }
    for n in &r.notes {
        s.push_str(&format!("- {n}\n"));
    }
    s.push_str(&format!("- Every number: `{RESULTS_JSON}`.\n"));
    s
}

/// Writes figures, `results.json` and `report.md` into `out`; returns the report with its figures.
pub fn write_report(mut report: ExperimentReport, out: &Path) -> Result<ExperimentReport> {
    std::fs::create_dir_all(out)?;
    let mut figs = depth_figures(&report.depth, &report.name, out)?;
    figs.extend(recurrent_figures(&report.recurrent, &report.name, out)?);
    report.figures = figs;
    let mut json = serde_json::to_string_pretty(&report)?;
    json.push('\n');
    write_atomic(&out.join(RESULTS_JSON), json.as_bytes())?;
    write_atomic(&out.join(REPORT_MD), markdown(&report).as_bytes())?;
    Ok(report)
}

/// Held-out loss against the training step, on a log axis, with an optional baseline line.
fn held_out_loss_chart(name: &str, series: Vec<Series>, hline: Option<(f64, String)>) -> LineChart {
    LineChart {
        title: format!("{name}: held-out loss during training"),
        x_label: "training step".into(),
        y_label: "held-out loss (log scale)".into(),
        log_y: true,
        series,
        hline,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts_combine_and_sentences_carry_the_criterion() {
        assert_eq!(Verdict::combine(&[true, true]), Verdict::Agrees);
        assert_eq!(Verdict::combine(&[false, false]), Verdict::Contradicts);
        assert_eq!(Verdict::combine(&[true, false]), Verdict::Mixed);
        assert_eq!(Verdict::combine(&[]), Verdict::Inconclusive);
        let f = Finding::judged("x causes y", Verdict::Contradicts, "ratio < 0.01", "ratio 0.5".into());
        assert_eq!(
            f.sentence(),
            "ratio 0.5. **Contradicts** the literature's claim that x causes y (criterion: ratio < 0.01)."
        );
    }
}
