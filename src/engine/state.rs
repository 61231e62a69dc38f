//! Stateful layers: one fixed function per call.
//!
//! * **Buffers** (BatchNorm's running statistics, every non-trainable variable of the
//!   store) are saved when a call starts in training mode. The values they hold right after
//!   the feed-forward pass are what one backprop step would leave; relaxation sweeps and the
//!   update pass change them again. [`StateGuard::commit`] writes the feed-forward values
//!   back (in the buffers' own dtype), and a call that fails restores the saved ones.
//! * **Randomness** (dropout): in training mode the call draws two integers from the global
//!   generator; every evaluation of node `i` runs after `tch::manual_seed(base + i)`, so a
//!   node draws the same mask in the feed-forward pass, in every sweep and in the update
//!   pass. When the call ends (also on error) the global generator is seeded with the
//!   second integer: runs stay reproducible from the user's seed, and the stream after the
//!   call is not the one a plain forward pass would leave.

use crate::error::{PcError, Result};
use crate::model::Graph;
use crate::util;
use tch::{Device, Kind, Tensor};

/// Saved buffers and the dropout seeds of one call; restores on drop unless committed.
pub(crate) struct StateGuard {
    /// `(variable, saved copy)` of every buffer.
    saved: Vec<(Tensor, Tensor)>,
    /// The buffers' names, in the order of `saved`.
    names: Vec<String>,
    /// The seed the global generator gets when the call ends.
    reseed: Option<i64>,
    committed: bool,
}

impl StateGuard {
    /// Saves the buffers of `graph`'s store and draws the dropout seeds, in training mode;
    /// does nothing in evaluation mode. Returns the guard and the dropout seed base.
    pub fn new(graph: &Graph, device: Device) -> Result<(Self, Option<i64>)> {
        let mut guard = StateGuard {
            saved: Vec::new(),
            names: Vec::new(),
            reseed: None,
            committed: false,
        };
        if !graph.is_training() {
            return Ok((guard, None));
        }
        for (name, b) in graph.vars().buffers {
            let copy = util::copy(&b)?;
            guard.saved.push((b, copy));
            guard.names.push(name);
        }
        let seeds = Tensor::f_randint_low(1, 1 << 52, [2], (Kind::Int64, device))?;
        let base = seeds.f_int64_value(&[0])?;
        guard.reseed = Some(seeds.f_int64_value(&[1])?);
        Ok((guard, Some(base)))
    }

    /// Copies of the buffers' current values (taken right after the feed-forward pass).
    ///
    /// # Errors
    /// [`PcError::NonFiniteBuffer`] when the pass made a finite buffer non-finite (the
    /// running variance of a BatchNorm that saw one value per channel is NaN): committing it
    /// would silently break every later evaluation.
    pub fn capture(&self) -> Result<Vec<Tensor>> {
        let post: Vec<Tensor> = self
            .saved
            .iter()
            .map(|(b, _)| util::copy(b))
            .collect::<Result<_>>()?;
        let refs: Vec<&Tensor> = post.iter().collect();
        if !util::all_finite(&refs)? {
            for ((p, (_, before)), name) in post.iter().zip(&self.saved).zip(&self.names) {
                if !util::all_finite(&[p])? && util::all_finite(&[before])? {
                    return Err(PcError::NonFiniteBuffer(name.clone()));
                }
            }
        }
        Ok(post)
    }

    /// Whether there are buffers to track.
    pub fn has_buffers(&self) -> bool {
        !self.saved.is_empty()
    }

    /// Writes `post` (the feed-forward values, in any dtype) into the buffers, or restores
    /// the saved values where `post` is `None`; the guard then does nothing on drop but
    /// reseed.
    pub fn commit(mut self, post: Option<Vec<Tensor>>) -> Result<()> {
        if let Some(post) = post {
            tch::no_grad(|| -> Result<()> {
                for ((b, _), p) in self.saved.iter_mut().zip(&post) {
                    b.f_copy_(&p.f_to_kind(b.kind())?)?;
                }
                Ok(())
            })?;
            self.committed = true;
        }
        Ok(())
    }
}

impl Drop for StateGuard {
    fn drop(&mut self) {
        if !self.committed {
            tch::no_grad(|| {
                for (b, saved) in self.saved.iter_mut() {
                    if b.kind() == saved.kind() && b.size() == saved.size() {
                        let _ = b.f_copy_(saved);
                    } else {
                        let _ = b.f_set_data(saved);
                    }
                }
            });
        }
        if let Some(s) = self.reseed {
            tch::manual_seed(s);
        }
    }
}
