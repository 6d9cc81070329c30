//! Parameters on disk: safetensors files with PyTorch `state_dict` names, written atomically.
//!
//! A file saved here loads with `safetensors.torch.load_file` into `nn.LSTM(...).load_state_dict`,
//! and a `state_dict` saved from PyTorch loads here unchanged.

use crate::util::write_atomic;
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Saves named tensors (and string metadata) as one safetensors file, atomically.
pub fn save_tensors<'a, I>(path: &Path, tensors: I, metadata: &BTreeMap<String, String>) -> Result<()>
where
    I: IntoIterator<Item = (&'a str, &'a Tensor)>,
{
    // Sorted names make the file byte-identical for identical parameters.
    let mut sorted: Vec<(&str, &Tensor)> = tensors.into_iter().collect();
    sorted.sort_by_key(|(name, _)| *name);
    let info: HashMap<String, String> = metadata.clone().into_iter().collect();
    let info = if info.is_empty() { None } else { Some(info) };
    let bytes = safetensors::serialize(sorted, info).context("serialising safetensors")?;
    write_atomic(path, &bytes)
}

/// Saves every variable of `varmap` under its registered name.
pub fn save_varmap(path: &Path, varmap: &VarMap, metadata: &BTreeMap<String, String>) -> Result<()> {
    let data = varmap.data().lock().expect("varmap lock poisoned");
    let tensors: Vec<(&str, &Tensor)> = data.iter().map(|(k, v)| (k.as_str(), v.as_tensor())).collect();
    save_tensors(path, tensors, metadata)
}

/// A loaded safetensors file: its tensors and its `__metadata__` strings.
pub struct Loaded {
    pub tensors: HashMap<String, Tensor>,
    pub metadata: BTreeMap<String, String>,
}

/// Loads a safetensors file, with errors that say which file is missing, truncated or corrupt.
pub fn load(path: &Path, device: &Device) -> Result<Loaded> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    load_bytes(&bytes, path, device)
}

/// [`load`] on the bytes of a file; `origin` names it in errors. Any byte string gives tensors
/// or an error, never a panic (fuzzed in tests/fuzz.rs).
pub fn load_bytes(bytes: &[u8], origin: &Path, device: &Device) -> Result<Loaded> {
    let parsed = safetensors::SafeTensors::deserialize(bytes).map_err(|e| {
        anyhow::anyhow!("{} is not a valid safetensors file (truncated or corrupt?): {e}", origin.display())
    })?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| anyhow::anyhow!("{}: unreadable safetensors header: {e}", origin.display()))?;
    let metadata = meta.metadata().clone().unwrap_or_default().into_iter().collect();
    let mut tensors = HashMap::new();
    for (name, view) in parsed.tensors() {
        let t = candle_core::safetensors::Load::load(&view, device)
            .with_context(|| format!("{}: tensor '{name}'", origin.display()))?;
        tensors.insert(name, t);
    }
    Ok(Loaded { tensors, metadata })
}

/// Overwrites every variable of `varmap` with the tensor of the same name in `path`. Missing
/// names and shape mismatches are errors that name the parameter, so a checkpoint of another
/// model is refused instead of half-loaded. Nothing is changed unless everything matches.
pub fn load_into_varmap(path: &Path, varmap: &VarMap) -> Result<BTreeMap<String, String>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    load_bytes_into_varmap(&bytes, path, varmap)
}

/// [`load_into_varmap`] on the bytes of a file; `origin` names it in errors.
pub fn load_bytes_into_varmap(
    bytes: &[u8],
    origin: &Path,
    varmap: &VarMap,
) -> Result<BTreeMap<String, String>> {
    let path = origin;
    let data = varmap.data().lock().expect("varmap lock poisoned");
    let device = match data.values().next() {
        Some(v) => v.device().clone(),
        None => bail!("the model has no parameters to load into"),
    };
    let loaded = load_bytes(bytes, path, &device)?;
    let mut missing = Vec::new();
    for (name, var) in data.iter() {
        match loaded.tensors.get(name) {
            None => missing.push(name.clone()),
            Some(t) if t.dims() != var.dims() => bail!(
                "{}: parameter '{name}' has shape {:?}, the model expects {:?} (checkpoint of another model?)",
                path.display(),
                t.dims(),
                var.dims()
            ),
            Some(t) if t.dtype() != var.dtype() => bail!(
                "{}: parameter '{name}' is {:?}, the model expects {:?}",
                path.display(),
                t.dtype(),
                var.dtype()
            ),
            Some(_) => {}
        }
    }
    if !missing.is_empty() {
        missing.sort();
        bail!(
            "{}: missing parameter(s) {} (checkpoint of another model?)",
            path.display(),
            missing.join(", ")
        );
    }
    for (name, var) in data.iter() {
        var.set(&loaded.tensors[name])?;
    }
    Ok(loaded.metadata)
}
