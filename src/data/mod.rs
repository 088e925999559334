//! Data the library makes itself: the demo frame pair shipped with the command line.

pub mod demo;
