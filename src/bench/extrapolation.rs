//! The report's tables of trained models on lengths and distributions they did not train on
//! (`--eval-lengths`, `extrapolate`, flip-flop's tails): one table per task, a column for each.

use super::report::{cells, ResultRow};
use crate::train::ExtraEvaluation;

/// Markdown, empty when no run has extra evaluations. Each value is the seeds' mean of the
/// task's metric (accuracy, or MSE).
pub fn extra_evaluations_section(rows: &[ResultRow]) -> String {
    let mut tasks: Vec<&str> = Vec::new();
    for r in rows.iter().filter(|r| !r.summary.evaluations.is_empty()) {
        if !tasks.contains(&r.summary.task.as_str()) {
            tasks.push(&r.summary.task);
        }
    }
    let mut out = String::new();
    for task in tasks {
        let task_cells: Vec<_> = cells(rows)
            .into_iter()
            .filter(|c| c.runs[0].summary.task == task && !c.runs[0].summary.evaluations.is_empty())
            .collect();
        let mut names: Vec<&str> = Vec::new();
        for c in &task_cells {
            for e in &c.runs[0].summary.evaluations {
                if !names.contains(&e.name.as_str()) {
                    names.push(&e.name);
                }
            }
        }
        let metric = task_cells[0].runs[0].metric().0;
        out.push_str(&format!(
            "**{task}** ({metric}; trained at T, evaluated on held-out sets of the same size)\n\n\
             | model | T | at T | {} |\n|---|---|---|{}\n",
            names.join(" | "),
            "---|".repeat(names.len())
        ));
        for c in &task_cells {
            let mean = |values: Vec<Option<f64>>| -> String {
                let v: Vec<f64> = values.into_iter().flatten().collect();
                if v.is_empty() {
                    "—".into()
                } else {
                    format!("{:.3}", v.iter().sum::<f64>() / v.len() as f64)
                }
            };
            let first = &c.runs[0].summary;
            let at_t = mean(c.runs.iter().map(|r| Some(r.metric().1)).collect());
            let others: Vec<String> = names
                .iter()
                .map(|name| {
                    mean(
                        c.runs
                            .iter()
                            .map(|r| r.summary.evaluations.iter().find(|e| e.name == *name).and_then(value))
                            .collect(),
                    )
                })
                .collect();
            out.push_str(&format!(
                "| {} | {} | {at_t} | {} |\n",
                first.model,
                first.seq_len,
                others.join(" | ")
            ));
        }
        out.push('\n');
    }
    out
}

fn value(e: &ExtraEvaluation) -> Option<f64> {
    e.eval_accuracy.or(e.eval_mse)
}
