//! Parameters on disk: safetensors files with PyTorch `state_dict` names, written atomically.
//!
//! A file saved here loads with `safetensors.torch.load_file` into `nn.LSTM(...).load_state_dict`,
//! and a `state_dict` saved from PyTorch loads here unchanged.

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` so that readers see either the old file or the complete new one:
/// write a temporary file in the same directory, fsync it, rename it over `path`, fsync the
/// directory. An interrupt at any moment never leaves a truncated `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(dir).with_context(|| format!("creating directory {}", dir.display()))?;
    let name = path.file_name().with_context(|| format!("{} has no file name", path.display()))?;
    let tmp = dir.join(format!(".{}.tmp-{}", name.to_string_lossy(), std::process::id()));
    let result = (|| -> Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename is durable once the directory entry is.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", path.display()))
}

/// Removes the temporary files [`write_atomic`] of another process left in `dir` when it was
/// killed mid-write (`.NAME.tmp-PID`): a `kill -9` during a checkpoint of a large model would
/// otherwise leave a stale copy of it behind for good. Call it only on a directory no other
/// process is writing. Returns how many were removed.
pub fn remove_stale_temporaries(dir: &Path) -> Result<usize> {
    let own = format!(".tmp-{}", std::process::id());
    let mut removed = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let stale = name.starts_with('.')
            && name
                .rsplit_once(".tmp-")
                .is_some_and(|(_, pid)| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
            && !name.ends_with(&own);
        if stale && entry.file_type()?.is_file() {
            std::fs::remove_file(entry.path())
                .with_context(|| format!("removing {}", entry.path().display()))?;
            removed += 1;
        }
    }
    Ok(removed)
}

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
