//! Running user code (layers, losses) without letting a panic escape or print.
//!
//! tch's infallible methods (which `nn::Module::forward` implementations use) panic when
//! libtorch raises an error, for instance on a shape mismatch. The library catches such
//! panics and turns them into [`PcError`]s. While a guarded closure runs, the panic message
//! is not printed: a process-wide panic hook, installed once, stays silent for panics raised
//! inside a guarded region of the current thread and delegates to the previous hook otherwise.

use crate::error::PcError;
use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

thread_local! {
    static QUIET_DEPTH: Cell<u32> = const { Cell::new(0) };
}

static INSTALL: Once = Once::new();

fn install_hook() {
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if QUIET_DEPTH.with(|d| d.get()) == 0 {
                previous(info);
            }
        }));
    });
}

struct Quiet;

impl Quiet {
    fn enter() -> Self {
        QUIET_DEPTH.with(|d| d.set(d.get() + 1));
        Quiet
    }
}

impl Drop for Quiet {
    fn drop(&mut self) {
        QUIET_DEPTH.with(|d| d.set(d.get().saturating_sub(1)));
    }
}

/// What a caught panic said, or the [`PcError`] it carried.
pub(crate) enum Caught {
    /// A `PcError` raised with `std::panic::panic_any` (the panicking twins of this crate's
    /// fallible functions do this), returned as is.
    Error(PcError),
    /// Any other panic, with its message cleaned of libtorch's C++ backtrace.
    Message(String),
}

/// Runs `f`, catching any panic silently.
pub(crate) fn catch<T>(f: impl FnOnce() -> T) -> Result<T, Caught> {
    install_hook();
    let _quiet = Quiet::enter();
    panic::catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        let payload = match payload.downcast::<PcError>() {
            Ok(e) => return Caught::Error(*e),
            Err(p) => p,
        };
        let msg = if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else if let Some(s) = payload.downcast_ref::<&str>() {
            (*s).to_string()
        } else {
            "unknown panic".to_string()
        };
        Caught::Message(clean_message(&msg))
    })
}

/// Keeps the informative part of a tch/libtorch error message.
pub(crate) fn clean_message(msg: &str) -> String {
    let msg = msg
        .strip_prefix("called `Result::unwrap()` on an `Err` value: ")
        .unwrap_or(msg);
    let msg = msg.strip_prefix("Torch(\"").unwrap_or(msg);
    let msg = msg.split("Exception raised from").next().unwrap_or(msg);
    let msg = msg.trim_end_matches(['"', ')', ' ', '\n']);
    let msg = msg.trim_end_matches("\\n");
    msg.replace("\\n", " ").trim().to_string()
}

/// Raises `e` as a panic whose payload is the error itself, so that the guarded callers
/// in this crate can recover the typed error. Used by the panicking twins of fallible
/// functions (e.g. [`crate::loss::cross_entropy`]).
pub(crate) fn raise(e: PcError) -> ! {
    panic::panic_any(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catches_messages_and_errors() {
        match catch(|| -> i32 { panic!("boom") }) {
            Err(Caught::Message(m)) => assert_eq!(m, "boom"),
            _ => panic!("expected a message"),
        }
        match catch(|| -> i32 { raise(PcError::EmptyModel) }) {
            Err(Caught::Error(PcError::EmptyModel)) => {}
            _ => panic!("expected the typed error"),
        }
        assert!(matches!(catch(|| 3), Ok(3)));
    }

    #[test]
    fn cleans_tch_messages() {
        let m = "called `Result::unwrap()` on an `Err` value: Torch(\"mat1 and mat2 shapes cannot be multiplied\\nException raised from foo\")";
        assert_eq!(
            clean_message(m),
            "mat1 and mat2 shapes cannot be multiplied"
        );
    }
}
