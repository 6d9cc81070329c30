//! Subnormal f32 values flushed to zero inside the recurrent kernels.
//!
//! BPTT through a long sequence drives ∂L/∂h_t, ∂L/∂a_t and the products made from them down
//! geometrically with distance from the loss, below f32's smallest normal value (1.2e-38) well
//! before BPTT reaches the start of a thousand-step sequence, so much of the backward pass
//! multiplies subnormals, and Intel cores take a slow microcode assist for each such operand or
//! result (AMD's Zen cores do not). PyTorch keeps them unless `torch.set_flush_denormal(True)`;
//! TensorFlow and XLA flush them by default.
//!
//! So each fused recurrent shard sets the CPU's flush-to-zero and denormals-are-zero modes for the
//! time it runs and restores the thread's previous modes afterwards. What changes: values whose
//! magnitude is below 1.2e-38 read and come out as 0. A gradient that small is below f32's
//! rounding noise of every weight gradient it is summed into, and the decay fits ignore norms
//! below 1e-6 of the curve's largest (`probe::fit`); the one visible difference is that a tapped
//! ∂L/∂h_t reaches exactly 0 a few tens of steps sooner. `GRADSCOPE_DENORMALS=keep` (read once)
//! keeps IEEE subnormals, as the per-op autograd path always does.

/// MXCSR's flush-to-zero (bit 15) and denormals-are-zero (bit 6) bits.
#[cfg(target_arch = "x86_64")]
const FTZ_DAZ: u32 = 0x8040;

/// Whether the kernels flush subnormals: unless `GRADSCOPE_DENORMALS=keep` (read once).
pub fn flushing() -> bool {
    static FLUSH: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *FLUSH.get_or_init(|| std::env::var("GRADSCOPE_DENORMALS").as_deref() != Ok("keep"))
}

/// Flushes subnormals on the current thread until dropped (see the module docs), then restores
/// the thread's previous floating-point modes. Does nothing when [`flushing`] is off, or on CPUs
/// other than x86-64 (whose subnormal arithmetic is not known here to be slow).
pub(crate) struct FlushDenormals {
    #[cfg(target_arch = "x86_64")]
    saved: Option<u32>,
}

impl FlushDenormals {
    pub(crate) fn new() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let saved = flushing().then(|| {
                let saved = mxcsr::read();
                mxcsr::write(saved | FTZ_DAZ);
                saved
            });
            Self { saved }
        }
        #[cfg(not(target_arch = "x86_64"))]
        Self {}
    }
}

impl Drop for FlushDenormals {
    fn drop(&mut self) {
        #[cfg(target_arch = "x86_64")]
        if let Some(saved) = self.saved {
            mxcsr::write(saved);
        }
    }
}

/// The SSE control and status register (std's `_mm_getcsr`/`_mm_setcsr` are deprecated in favour
/// of inline assembly).
#[cfg(target_arch = "x86_64")]
mod mxcsr {
    pub fn read() -> u32 {
        let mut v = 0u32;
        // SAFETY: stmxcsr stores the 4-byte register at a valid, aligned, writable address.
        unsafe { std::arch::asm!("stmxcsr [{}]", in(reg) &mut v, options(nostack, preserves_flags)) };
        v
    }

    pub fn write(v: u32) {
        // SAFETY: ldmxcsr loads 4 bytes from a valid address; `v` comes from `read` with only
        // the FTZ/DAZ mode bits changed, so no reserved bit is set (which would fault).
        unsafe { std::arch::asm!("ldmxcsr [{}]", in(reg) &v, options(nostack, preserves_flags, readonly)) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest normal f32 halved is subnormal: kept outside the guard, 0 inside it, and the
    /// thread's modes are back afterwards.
    #[test]
    fn subnormals_flush_inside_the_guard_only() {
        let half_min = |x: f32| std::hint::black_box(x) * std::hint::black_box(0.5f32);
        assert!(half_min(f32::MIN_POSITIVE) > 0.0);
        {
            let _flush = FlushDenormals::new();
            let v = half_min(f32::MIN_POSITIVE);
            if flushing() && cfg!(target_arch = "x86_64") {
                assert_eq!(v, 0.0);
            }
        }
        assert!(half_min(f32::MIN_POSITIVE) > 0.0, "modes not restored");
    }
}
