//! An experiment's report directory: `results.json` (every measured number), `report.md` (the
//! claim, the findings, the table, the figures) and the figures as PNG + SVG.

use super::depth::{DepthRun, DepthTraining};
use super::figures::{depth_figures, recurrent_figures};
use super::fmt_num;
use super::recurrent::{RecurrentRun, RecurrentSettings};
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
