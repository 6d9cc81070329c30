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
