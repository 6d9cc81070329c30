//! `gradscope plot`: redraw and overlay figures from saved runs and probe outputs.

use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct PlotArgs {
    /// Run directories (metrics.jsonl, probe.jsonl) and `grad` outputs (curves.json).
    #[arg(required = true, value_name = "DIR")]
    pub dirs: Vec<PathBuf>,
    /// Where to write the figures. [default: the directory, when only one is given]
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

pub fn run(args: PlotArgs) -> Result<()> {
    let out = match (&args.out, args.dirs.as_slice()) {
        (Some(out), _) => out.clone(),
        (None, [one]) => one.clone(),
        (None, _) => bail!("--out is required when overlaying several directories"),
    };
    for stem in crate::figures::redraw(&args.dirs, &out)? {
        println!("wrote {}.png and .svg", stem.display());
    }
    Ok(())
}
