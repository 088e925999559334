//! Every registered WGSL kernel parses and validates with naga (no GPU needed), and its `Params` struct
//! matches the Rust twin the registry names for it ([`Kernel::params`]): same size, and the same fields in
//! the same order at the same offsets with the same sizes. New kernels are covered by registering them.

use corrflow::runtime::Kernel;

#[test]
fn every_shader_validates_and_params_match_field_by_field() {
    for &k in Kernel::ALL {
        let module = naga::front::wgsl::parse_str(k.source())
            .unwrap_or_else(|e| panic!("{}: {}", k.name(), e.emit_to_string(k.source())));
        naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all())
            .validate(&module)
            .unwrap_or_else(|e| panic!("{}: {e:?}", k.name()));
        assert!(module.entry_points.iter().any(|e| e.name == "main"), "{} has no `main` entry point", k.name());
        let (_, ty) = module
            .types
            .iter()
            .find(|(_, t)| t.name.as_deref() == Some("Params"))
            .unwrap_or_else(|| panic!("{} has no Params struct", k.name()));
        let rust = k.params();
        let wgsl_size = ty.inner.size(module.to_ctx()) as usize;
        assert_eq!(
            wgsl_size,
            rust.size,
            "{}: WGSL Params is {wgsl_size} bytes, Rust {} {}",
            k.name(),
            rust.name,
            rust.size
        );
        let naga::TypeInner::Struct { members, .. } = &ty.inner else { panic!("{}: Params is not a struct", k.name()) };
        let wgsl: Vec<(String, usize, usize)> = members
            .iter()
            .map(|m| {
                let size = module.types[m.ty].inner.size(module.to_ctx()) as usize;
                (m.name.clone().unwrap_or_default(), m.offset as usize, size)
            })
            .collect();
        let ours: Vec<(String, usize, usize)> =
            rust.fields.iter().map(|f| (f.name.to_string(), f.offset, f.size)).collect();
        assert_eq!(wgsl, ours, "{}: WGSL Params (name, offset, size) vs Rust {}", k.name(), rust.name);
    }
}

#[test]
fn shader_files_are_all_registered() {
    let on_disk = wgsl_names("shaders");
    let mut registered: Vec<String> = Kernel::ALL.iter().map(|k| k.name().to_string()).collect();
    registered.sort();
    assert_eq!(on_disk, registered, "every shaders/*.wgsl must be in Kernel::ALL and vice versa");
}

/// Every file under `shaders/lib/` is put in front of at least one kernel (and every library a kernel names
/// is there), so a shared function cannot be left behind unused.
#[test]
fn shader_libraries_are_all_used() {
    let on_disk: Vec<String> = wgsl_names("shaders/lib").iter().map(|n| format!("lib/{n}")).collect();
    let mut named: Vec<String> = Kernel::ALL.iter().filter_map(|k| k.library()).map(str::to_string).collect();
    named.sort();
    named.dedup();
    assert_eq!(on_disk, named, "every shaders/lib/*.wgsl must be named by a kernel and vice versa");
    for k in Kernel::ALL {
        if let Some(lib) = k.library() {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("shaders/{lib}.wgsl"));
            let text = std::fs::read_to_string(path).unwrap();
            assert!(k.source().starts_with(&text), "{}: source does not start with {lib}", k.name());
        }
    }
}

/// The `.wgsl` files directly in `dir` (relative to the crate), names without extension, sorted.
fn wgsl_names(dir: &str) -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter_map(|n| n.strip_suffix(".wgsl").map(str::to_string))
        .collect();
    names.sort();
    names
}
