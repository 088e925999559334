//! Kernel parameter structs: each kernel's `Params` uniform (binding 0) has a `#[repr(C)]` Rust twin
//! declared with [`gpu_params!`], which also records every field's name, offset and size
//! ([`GpuParams::FIELDS`]) so that a test can compare the twin with the WGSL struct naga lays out, field by
//! field, for every registered kernel ([`super::Kernel::params`]).

use std::any::TypeId;

/// One field of a parameter struct: name, byte offset and byte size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamField {
    pub name: &'static str,
    pub offset: usize,
    pub size: usize,
}

/// A kernel parameter struct (declare it with the crate's `gpu_params!` macro).
pub trait GpuParams: bytemuck::Pod {
    /// The Rust type's name, for error messages.
    const NAME: &'static str;
    /// Every field in declaration order.
    const FIELDS: &'static [ParamField];
}

/// What a kernel's parameter struct is on the Rust side ([`super::Kernel::params`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParamsInfo {
    pub name: &'static str,
    pub size: usize,
    pub fields: &'static [ParamField],
    pub(crate) type_id: TypeId,
}

impl ParamsInfo {
    pub fn of<P: GpuParams>() -> Self {
        ParamsInfo { name: P::NAME, size: std::mem::size_of::<P>(), fields: P::FIELDS, type_id: TypeId::of::<P>() }
    }
}

/// Declares a kernel parameter struct: `#[repr(C)]`, `Pod`, `Default`, and its [`GpuParams`] field table.
/// Fields are `pub` scalars (`u32`, `i32`, `f32`), named as in the WGSL `Params` struct.
macro_rules! gpu_params {
    ($(#[$meta:meta])* pub struct $name:ident { $($(#[$fmeta:meta])* pub $field:ident : $ty:ty),* $(,)? }) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
        pub struct $name {
            $($(#[$fmeta])* pub $field: $ty,)*
        }

        impl $crate::runtime::GpuParams for $name {
            const NAME: &'static str = stringify!($name);
            const FIELDS: &'static [$crate::runtime::ParamField] = &[$($crate::runtime::ParamField {
                name: stringify!($field),
                offset: std::mem::offset_of!($name, $field),
                size: std::mem::size_of::<$ty>(),
            }),*];
        }
    };
}
pub(crate) use gpu_params;
