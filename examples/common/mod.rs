//! The code that the `resnet` and `depth` examples share, one concept per module; each
//! includes it with `#[path = "../common/mod.rs"] mod common;`. (The `mnist` example
//! includes `font.rs` and `shuffle.rs`, `alignment` `font.rs` alone.)

pub mod cli;
pub mod data;
pub mod figure;
pub mod fit;
pub mod font;
pub mod mlp;
pub mod output;
pub mod shuffle;
pub mod stats;
pub mod sweep;
