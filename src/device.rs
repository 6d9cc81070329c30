//! Run-time device selection: `cpu`, `cuda`, `cuda:N`, `metal`.

use anyhow::{bail, Context, Result};
use candle_core::Device;

/// Parses a device name as users type it on the command line.
///
/// `cuda` and `metal` work only when gradscope was built with the matching cargo feature; the
/// error says so instead of failing later inside candle.
pub fn parse_device(name: &str) -> Result<Device> {
    let name = name.trim().to_ascii_lowercase();
    match name.as_str() {
        "cpu" => Ok(Device::Cpu),
        "metal" => {
            if !cfg!(feature = "metal") {
                bail!("device 'metal' needs gradscope built with `--features metal`");
            }
            Device::new_metal(0).context("could not open the metal device")
        }
        _ => {
            let ordinal = match name.strip_prefix("cuda") {
                Some("") => 0,
                Some(rest) => match rest.strip_prefix(':').and_then(|n| n.parse::<usize>().ok()) {
                    Some(n) => n,
                    None => bail!("invalid device '{name}': expected cpu, cuda, cuda:N or metal"),
                },
                None => bail!("invalid device '{name}': expected cpu, cuda, cuda:N or metal"),
            };
            if !cfg!(feature = "cuda") {
                bail!("device '{name}' needs gradscope built with `--features cuda`");
            }
            Device::new_cuda(ordinal).with_context(|| format!("could not open cuda device {ordinal}"))
        }
    }
}

/// Process-wide CPU settings for this workload mix; call once at the start of `main`, before any
/// other thread exists (the binary, the benches and the examples do).
///
/// - candle's elementwise pool gets one thread (`CANDLE_NUM_THREADS=1`) unless the variable is
///   already set: its workers spin-wait at a barrier after every op, which costs the small
///   elementwise ops more than a second thread gains them. GEMMs keep rayon's pool
///   (`RAYON_NUM_THREADS`, default one thread per core).
/// - glibc's malloc keeps freed blocks up to 1 GiB in the heap, so that each multi-megabyte
///   activation is not returned to the kernel and faulted back in as fresh zeroed pages on the
///   next step.
pub fn tune_cpu_runtime() {
    if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
        // Only called before other threads start, so nothing reads the environment concurrently.
        std::env::set_var("CANDLE_NUM_THREADS", "1");
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        const ONE_GIB: libc::c_int = 1 << 30;
        // SAFETY: mallopt only changes allocator parameters; glibc documents it as safe to call
        // at any time (it takes the arena lock). M_MMAP_THRESHOLD cannot exceed 32 MiB, less than
        // one (B, nh, T, T) attention buffer, so mmap is switched off instead (M_MMAP_MAX = 0).
        unsafe {
            libc::mallopt(libc::M_MMAP_MAX, 0);
            libc::mallopt(libc::M_TRIM_THRESHOLD, ONE_GIB);
            // One arena for every thread: a rayon worker's own arena grows by mmap'd 64 MiB
            // heaps whatever M_MMAP_MAX says, and unmaps them on free, so the kernels' per-shard
            // buffers would be page-faulted in afresh on every step.
            libc::mallopt(libc::M_ARENA_MAX, 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_and_rejects_garbage() {
        assert!(parse_device("cpu").unwrap().is_cpu());
        assert!(parse_device("CPU").unwrap().is_cpu());
        let err = parse_device("tpu").unwrap_err().to_string();
        assert!(err.contains("expected cpu, cuda, cuda:N or metal"), "{err}");
        assert!(parse_device("cuda:x").is_err());
    }
}
