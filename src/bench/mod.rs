//! Measurements shared by the criterion benches and `corrflow bench`: the adapter's arithmetic peak and
//! the correlation layer's throughput.

pub mod correlation;
pub mod flownet;
pub mod peak;
