//! `corrflow info`: the adapters wgpu sees, best first.

use corrflow::{Error, Result};

pub fn run() -> Result<()> {
    let adapters = pollster::block_on(corrflow::runtime::adapter_summaries());
    if adapters.is_empty() {
        return Err(Error::NoAdapter { detail: String::new() });
    }
    for (i, a) in adapters.iter().enumerate() {
        say!("{}{}", if i == 0 { "* " } else { "  " }, a);
        say!(
            "    max buffer {} MiB, max storage binding {} MiB, workgroup storage {} KiB, {} invocations/workgroup, {} workgroups/dimension",
            a.max_buffer_size >> 20,
            a.max_storage_buffer_binding_size >> 20,
            a.max_compute_workgroup_storage_size >> 10,
            a.max_compute_invocations_per_workgroup,
            a.max_compute_workgroups_per_dimension
        );
    }
    say!("(* = the adapter corrflow picks; set WGPU_ADAPTER_NAME or WGPU_BACKEND to choose another)");
    Ok(())
}
