//! Running a call in a wider dtype (e.g. float64 relaxation for a float32 model).

use crate::error::Result;
use crate::model::Graph;
use crate::util;
use tch::{Kind, Tensor};

/// Promotes every floating-point variable of a model's store to `kind` for the duration of
/// a call, and restores the original data (bit for bit, since widening is exact) on drop,
/// also when the call fails.
pub(crate) struct Promoted {
    kind: Kind,
    saved: Vec<(Tensor, Tensor)>,
}

impl Promoted {
    pub fn new(graph: &Graph, kind: Kind) -> Result<Self> {
        let mut p = Promoted {
            kind,
            saved: Vec::new(),
        };
        tch::no_grad(|| -> Result<()> {
            let vars = graph.vars();
            for (_, mut v) in vars.trainable.into_iter().chain(vars.buffers) {
                if !util::is_float(v.kind()) || v.kind() == kind {
                    continue;
                }
                // Keep the original data alive and swap in a promoted copy.
                let original = v.f_detach()?;
                let wide = v.f_detach()?.f_to_kind(kind)?;
                v.f_set_data(&wide)?;
                p.saved.push((v, original));
            }
            Ok(())
        })?;
        Ok(p)
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }
}

impl Drop for Promoted {
    fn drop(&mut self) {
        tch::no_grad(|| {
            for (v, original) in self.saved.iter_mut() {
                let _ = v.f_set_data(original);
            }
        });
    }
}
