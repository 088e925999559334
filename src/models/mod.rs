//! Networks: FlowNetS and FlowNetC (`flownet`), the dense descriptor network (`descriptor`), their weights
//! (`weights`), and flow estimation between two images (`estimate`).

pub mod descriptor;
pub mod estimate;
pub mod flownet;
pub mod pretrained;
pub mod weights;

pub use descriptor::Descriptor;
pub use estimate::{decode_frame, load_frame, EstimateReport};
pub use flownet::{Arch, FlowNet, Passes, Pyramid, Variant};
pub use weights::{StoreAs, Weights};
