//! Helpers shared across the crate: tensor helpers for the models, and atomic file writes.

mod files;

pub use files::{remove_stale_temporaries, write_atomic};

use candle_core::{Result, Tensor};

/// Splits `x` along `dim` into its `x.dim(dim)` slices, each with `dim` removed.
///
/// candle's backward of `narrow` materialises a zero tensor the size of the *whole* argument for
/// every slice, so slicing T steps one by one costs O(T²) in the backward pass. Splitting in halves
/// recursively makes each level of the tree cost O(size), O(size · log T) in all.
pub fn unbind(x: &Tensor, dim: usize) -> Result<Vec<Tensor>> {
    fn split(x: &Tensor, dim: usize, out: &mut Vec<Tensor>) -> Result<()> {
        let len = x.dim(dim)?;
        if len == 1 {
            out.push(x.squeeze(dim)?);
            return Ok(());
        }
        let half = len / 2;
        split(&x.narrow(dim, 0, half)?, dim, out)?;
        split(&x.narrow(dim, half, len - half)?, dim, out)
    }
    let mut out = Vec::with_capacity(x.dim(dim)?);
    if x.dim(dim)? > 0 {
        split(x, dim, &mut out)?;
    }
    Ok(out)
}

/// Inverted dropout (`x · mask / (1 - p)`) with the mask drawn from a generator seeded by `seed`,
/// so a training step is reproducible and a resumed run draws the same masks.
pub fn dropout(x: &Tensor, p: f64, seed: u64) -> Result<Tensor> {
    use rand::{rngs::StdRng, Rng, SeedableRng};
    if p <= 0.0 {
        return Ok(x.clone());
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let keep = 1.0 - p;
    let scale = (1.0 / keep) as f32;
    let mask: Vec<f32> =
        (0..x.elem_count()).map(|_| if rng.random::<f64>() < keep { scale } else { 0.0 }).collect();
    let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
    x.mul(&mask)
}

/// A candle error's message without the backtrace candle attaches when RUST_BACKTRACE is set.
pub fn candle_message(e: &candle_core::Error) -> String {
    match e {
        candle_core::Error::WithBacktrace { inner, .. } => candle_message(inner),
        other => other.to_string(),
    }
}

/// Stack size for threads that build or walk long autograd graphs.
///
/// candle walks the graph recursively in `backward()` (and dropping a long chain of tensors
/// recurses too); a sequence of T steps makes a graph ~20·T deep, which overflows the default 8 MiB
/// main-thread stack near T ≈ 7,000.
pub const DEEP_GRAPH_STACK_BYTES: usize = 1 << 30;

/// Runs `f` on a thread with [`DEEP_GRAPH_STACK_BYTES`] of stack and returns its result.
///
/// The stack is virtual memory: only the pages a deep recursion touches are ever committed.
pub fn with_deep_stack<R: Send, F: FnOnce() -> R + Send>(f: F) -> R {
    std::thread::scope(|scope| {
        std::thread::Builder::new()
            .name("gradscope-deep-graph".into())
            .stack_size(DEEP_GRAPH_STACK_BYTES)
            .spawn_scoped(scope, f)
            .expect("could not spawn a thread for a deep autograd graph")
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn unbind_matches_index_and_backprops() -> Result<()> {
        let x = Var::from_tensor(&Tensor::arange(0f32, 30., &Device::Cpu)?.reshape((2, 5, 3))?)?;
        let parts = unbind(x.as_tensor(), 1)?;
        assert_eq!(parts.len(), 5);
        for (t, part) in parts.iter().enumerate() {
            assert_eq!(part.dims(), &[2, 3]);
            let want = x.as_tensor().narrow(1, t, 1)?.squeeze(1)?;
            assert_eq!(part.to_vec2::<f32>()?, want.to_vec2::<f32>()?);
        }
        // d/dx of sum_t (t+1) * x_t is (t+1) at every element of slice t.
        let mut loss = parts[0].sum_all()?;
        for (t, part) in parts.iter().enumerate().skip(1) {
            loss = (loss + (part.sum_all()? * (t + 1) as f64)?)?;
        }
        let grad = loss.backward()?.get(x.as_tensor()).unwrap().clone();
        let g = grad.to_vec3::<f32>()?;
        for row in g.iter() {
            for (t, v) in row.iter().enumerate() {
                assert!(v.iter().all(|&e| e == (t + 1) as f32));
            }
        }
        Ok(())
    }
}

/// serde helpers for floats that may be NaN or ±∞: JSON writes those as `null`, and these read
/// `null` back as NaN instead of failing, so a diverged curve never makes a file unreadable.
pub mod nullable {
    use serde::{Deserialize, Deserializer};

    pub fn f64<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }

    pub fn vec_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
        Ok(Vec::<Option<f64>>::deserialize(d)?.into_iter().map(|v| v.unwrap_or(f64::NAN)).collect())
    }

    pub fn named_f64s<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(String, f64)>, D::Error> {
        Ok(Vec::<(String, Option<f64>)>::deserialize(d)?
            .into_iter()
            .map(|(name, v)| (name, v.unwrap_or(f64::NAN)))
            .collect())
    }
}

/// What a run may plan to use, in bytes: the machine's physical memory (`MemTotal` of
/// /proc/meminfo on Linux), or 16 GB where that cannot be read.
pub fn memory_limit_bytes() -> f64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            let line = t.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kb * 1024.0)
        })
        .filter(|b| *b > 0.0)
        .unwrap_or(16e9)
}

/// Runs `f`, turning a panic inside it into an error that starts with `what`, without the panic
/// message on stderr. For third-party parsers that panic on some malformed input (the
/// `tokenizers` crate, see tests/fuzz.rs): users get an error and exit code 2, not a crash.
/// Panics on other threads are reported as usual.
pub fn catch_panic<T>(what: &str, f: impl FnOnce() -> T) -> anyhow::Result<T> {
    use std::cell::Cell;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    thread_local! {
        static QUIET: Cell<bool> = const { Cell::new(false) };
    }
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(Cell::get) {
                previous(info);
            }
        }));
    });
    let was = QUIET.with(|q| q.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(was));
    result.map_err(|payload| {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown error".into());
        anyhow::anyhow!("{what}: {msg}")
    })
}
