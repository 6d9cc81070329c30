//! The adding problem.
//!
//! Default form (Le et al. 2015; Arjovsky et al. 2016): input (T, 2), first channel U[0, 1], second
//! channel a marker that is 1 at exactly two steps, one uniform in the first half and one in the
//! second half; the target is the sum of the two marked values, read at the last step. Predicting
//! 1 gives MSE 1/6. The original variant (Hochreiter & Schmidhuber 1997) draws values from
//! U[−1, 1], puts the first marker in the first 10 steps and the second in the first half, and
//! asks for 0.5 + (X1 + X2)/4; predicting 0.5 gives MSE 1/24.

use super::{Batch, InputKind, Metrics, Task, TaskSpec};
use candle_core::{bail, Device, Result, Tensor};
use rand::rngs::StdRng;
use rand::Rng;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AddingVariant {
    /// Le et al. 2015 / Arjovsky et al. 2016.
    #[default]
    Standard,
    /// Hochreiter & Schmidhuber 1997, experiment 4.
    Hochreiter,
}

impl std::str::FromStr for AddingVariant {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "standard" | "arjovsky" | "le" => Ok(AddingVariant::Standard),
            "hochreiter" | "1997" => Ok(AddingVariant::Hochreiter),
            _ => Err(format!("unknown adding variant '{s}': expected standard or hochreiter")),
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct AddingTask {
    pub seq_len: usize,
    pub variant: AddingVariant,
}

impl AddingTask {
    pub fn new(seq_len: usize, variant: AddingVariant) -> Result<Self> {
        let min = match variant {
            AddingVariant::Standard => 2,
            AddingVariant::Hochreiter => 20,
        };
        if seq_len < min {
            bail!("--seq-len must be ≥ {min} for the {variant:?} adding problem (got {seq_len})");
        }
        Ok(Self { seq_len, variant })
    }
}

impl Task for AddingTask {
    fn name(&self) -> &'static str {
        "adding"
    }

    fn seq_len(&self) -> usize {
        self.seq_len
    }

    fn spec(&self) -> TaskSpec {
        TaskSpec { input: InputKind::Real { features: 2 }, output_size: 1, steps: self.seq_len }
    }

    fn batch(&self, batch: usize, rng: &mut StdRng, device: &Device) -> Result<Batch> {
        let t = self.seq_len;
        let mut inputs = vec![0f32; batch * t * 2];
        let mut targets = Vec::with_capacity(batch);
        let mut dependency = Vec::with_capacity(batch);
        for b in 0..batch {
            let row = &mut inputs[b * t * 2..(b + 1) * t * 2];
            for step in 0..t {
                row[2 * step] = match self.variant {
                    AddingVariant::Standard => rng.random::<f32>(),
                    AddingVariant::Hochreiter => rng.random_range(-1.0f32..1.0),
                };
            }
            let (first, second) = match self.variant {
                AddingVariant::Standard => (rng.random_range(0..t / 2), rng.random_range(t / 2..t)),
                AddingVariant::Hochreiter => {
                    let first = rng.random_range(0..10);
                    let mut second = rng.random_range(0..t / 2);
                    while second == first {
                        second = rng.random_range(0..t / 2);
                    }
                    (first, second)
                }
            };
            row[2 * first + 1] = 1.0;
            row[2 * second + 1] = 1.0;
            dependency.push(first.min(second));
            let sum = row[2 * first] + row[2 * second];
            targets.push(match self.variant {
                AddingVariant::Standard => sum,
                AddingVariant::Hochreiter => 0.5 + sum / 4.0,
            });
        }
        Ok(Batch {
            inputs: Tensor::from_vec(inputs, (batch, t, 2), device)?,
            targets: Tensor::from_vec(targets, batch, device)?,
            dependency: Some(dependency),
        })
    }

    /// MSE of the output at the last step.
    fn loss(&self, outputs: &Tensor, batch: &Batch) -> Result<Tensor> {
        let t = outputs.dim(1)?;
        let last = outputs.narrow(1, t - 1, 1)?.flatten_all()?; // (B,)
        (last - &batch.targets)?.sqr()?.mean_all()
    }

    /// The adding problem's loss is already at the last step.
    fn last_step_loss(&self, outputs: &Tensor, batch: &Batch) -> Result<Tensor> {
        self.loss(outputs, batch)
    }

    fn metrics(&self, outputs: &Tensor, batch: &Batch) -> Result<Metrics> {
        let mse = self.loss(outputs, batch)?.to_scalar::<f32>()? as f64;
        Ok(Metrics { loss: mse, accuracy: None, mse: Some(mse), bits_per_char: None })
    }

    fn baseline(&self) -> f64 {
        match self.variant {
            AddingVariant::Standard => 1.0 / 6.0,
            AddingVariant::Hochreiter => 1.0 / 24.0,
        }
    }

    fn solved(&self, m: &Metrics) -> bool {
        let threshold = match self.variant {
            AddingVariant::Standard => 0.01,
            // A quarter of the scale: the same relative precision.
            AddingVariant::Hochreiter => 0.01 / 16.0,
        };
        m.mse.is_some_and(|v| v < threshold)
    }

    fn headline(&self, m: &Metrics) -> (&'static str, f64) {
        ("mse", m.mse.unwrap_or(f64::NAN))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn markers_and_targets() {
        for variant in [AddingVariant::Standard, AddingVariant::Hochreiter] {
            let task = AddingTask::new(40, variant).unwrap();
            let b = task.batch(200, &mut StdRng::seed_from_u64(3), &Device::Cpu).unwrap();
            let x = b.inputs.to_vec3::<f32>().unwrap();
            let y = b.targets.to_vec1::<f32>().unwrap();
            for (seq, &target) in x.iter().zip(&y) {
                let marked: Vec<usize> = (0..40).filter(|&s| seq[s][1] == 1.0).collect();
                assert_eq!(marked.len(), 2);
                let sum = seq[marked[0]][0] + seq[marked[1]][0];
                match variant {
                    AddingVariant::Standard => {
                        assert!(marked[0] < 20 && marked[1] >= 20);
                        assert_eq!(target, sum);
                    }
                    AddingVariant::Hochreiter => {
                        assert!(marked[0] < 20 && marked[1] < 20);
                        assert!(marked.iter().any(|&m| m < 10));
                        assert_eq!(target, 0.5 + sum / 4.0);
                    }
                }
            }
        }
    }

    #[test]
    fn predicting_the_mean_scores_the_baseline() {
        let task = AddingTask::new(50, AddingVariant::Standard).unwrap();
        let b = task.batch(20_000, &mut StdRng::seed_from_u64(9), &Device::Cpu).unwrap();
        let out = Tensor::ones((20_000, 50, 1), candle_core::DType::F32, &Device::Cpu).unwrap();
        let m = task.metrics(&out, &b).unwrap();
        assert!((m.loss - task.baseline()).abs() < 0.005, "{}", m.loss);
        assert!(!task.solved(&m));
        let perfect = b.targets.reshape((20_000, 1, 1)).unwrap().broadcast_as((20_000, 50, 1)).unwrap();
        assert!(task.solved(&task.metrics(&perfect.contiguous().unwrap(), &b).unwrap()));
    }
}
