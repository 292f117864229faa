//! accelprobe: proves that a freshly provisioned accelerator node is what was ordered.
//!
//! The library is organised as the flow in `DESIGN.md`: [`probe`] touches hardware and returns
//! a [`report::Report`]; [`render`] turns a report into text and is the only code that prints
//! (strings, that `main` writes out). Errors are typed ([`error::Error`]) and mapped to exit
//! codes in one place, `main`.

pub mod bench;
pub mod cli;
pub mod compare;
pub mod error;
pub mod feedback;
pub mod manifests;
pub mod probe;
pub mod render;
pub mod report;
pub mod serve;
pub mod verify;

pub use error::Error;
