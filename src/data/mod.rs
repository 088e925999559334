//! Data the library makes itself: the demo frame pair shipped with the command line, and a seeded
//! generator for initialisation and tests.

pub mod augment;
pub mod correspondence;
pub mod demo;
pub mod filter;
pub mod homography;
mod rng;
pub mod synthetic;
pub mod texture;

pub use rng::Rng;
